"""StepLoadShape: start users, add `step` every `hold` seconds, stop at the first failed request or past `max_users`.

    locust -f loadtest/locustfile.py,loadtest/shapes.py --headless --host URL --step-start 5 --step-users 5 --step-hold 30

One continuous run rather than one run per step: users and their connections carry over, and the server's
queue at each step is the steady state of the step before, not leftovers of a stopped run. The class
attributes are the defaults; the --step-* options (also LOCUST_STEP_* variables) override them.
"""

from __future__ import annotations

from locust import LoadTestShape, events


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    g = parser.add_argument_group("CloudPose step load")
    g.add_argument("--step-start", env_var="LOCUST_STEP_START", type=int, default=None, help="users in the first step")
    g.add_argument("--step-users", env_var="LOCUST_STEP_USERS", type=int, default=None, help="users added per step")
    g.add_argument("--step-hold", env_var="LOCUST_STEP_HOLD", type=float, default=None, help="seconds per step")
    g.add_argument(
        "--step-spawn-rate", env_var="LOCUST_STEP_SPAWN_RATE", type=float, default=None, help="users started per second"
    )
    g.add_argument(
        "--step-max-users",
        env_var="LOCUST_STEP_MAX_USERS",
        type=int,
        default=None,
        help="stop after the step with this many",
    )
    g.add_argument("--step-until-failure", env_var="LOCUST_STEP_UNTIL_FAILURE", type=int, default=None,
                   help="1: stop at the first failed request (default); 0: run every step")  # fmt: skip


class StepLoadShape(LoadTestShape):
    start = 5
    step = 5
    hold = 30.0
    spawn_rate = 2.0
    max_users = 400
    until_failure = True

    def _option(self, name: str):
        opts = self.runner.environment.parsed_options if self.runner else None
        value = getattr(opts, "step_users" if name == "step" else f"step_{name}", None) if opts else None
        return getattr(self, name) if value is None else value

    def users_at(self, seconds: float) -> int | None:
        """Target users `seconds` into the run; None once past the last step."""
        users = self._option("start") + int(seconds // self._option("hold")) * self._option("step")
        return users if users <= self._option("max_users") else None

    def tick(self) -> tuple[int, float] | None:
        if self._option("until_failure") and self.runner and self.runner.stats.total.num_failures:
            return None
        users = self.users_at(self.get_run_time())
        return None if users is None else (users, self._option("spawn_rate"))
