"""Locust users for CloudPose: each posts the load photos (base64 JSON, a fresh UUID per request) and checks every answer.

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8088                 # web UI on :8089
    locust -f loadtest/locustfile.py --headless -u 20 -r 1 -t 60s --host URL      # headless
    locust -f loadtest/locustfile.py,loadtest/shapes.py --headless --host URL     # stepped users (shapes.py)

A request counts as a failure unless it is a 200 whose body is the right answer to *that* request: the same
id, the schema's keys, count == len(boxes) == len(keypoints), 17 × [x, y, p] per person (pose-json), or a
base64 JPEG (pose-annotate: its magic bytes, not a full decode, to keep the load generator cheap). A request
slower than --request-timeout fails too: "max users" in the experiment is the most users whose every request
is answered correctly within that time.

`--steps-out PATH` writes, when a test stops, per (target users, ramp|hold) bucket: requests, failures and
their reasons, average / p50 / p95 response time, throughput, and who answered (the X-Served-By header) —
exact numbers the experiment runner reads (loadtest/experiment.py). A request belongs to the bucket of the
target user count when it *started*; "hold" means every target user was running then. `--live-out PATH`
rewrites a small JSON with the last 5 seconds' numbers every second, for the runner's live display.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
import uuid
from collections import Counter, deque
from pathlib import Path
from typing import ClassVar

import gevent
from locust import FastHttpUser, between, events, task

try:
    from loadtest.payload import (
        DATA, PATHS, body, check_annotate, check_json, load_bodies, percentile, server_inference_ms,
    )
except ImportError:  # locust -f loadtest/locustfile.py from a clone where the package is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from loadtest.payload import (
        DATA, PATHS, body, check_annotate, check_json, load_bodies, percentile, server_inference_ms,
    )

try:
    from orjson import loads
except ImportError:  # a client machine with only locust installed
    from json import loads


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    g = parser.add_argument_group("CloudPose")
    g.add_argument("--images", env_var="LOCUST_IMAGES", default=str(DATA / "load-128"), help="folder of photos to post")
    g.add_argument(
        "--paths",
        env_var="LOCUST_PATHS",
        choices=sorted(PATHS),
        default="gateway",
        help="gateway: /function/<name>; course: /api/pose_estimation[_annotation]",
    )
    g.add_argument(
        "--json-path", env_var="LOCUST_JSON_PATH", default="", help="pose-json path or full URL (overrides --paths)"
    )
    g.add_argument("--annotate-path", env_var="LOCUST_ANNOTATE_PATH", default="", help="pose-annotate path or full URL")
    g.add_argument(
        "--json-host-header",
        env_var="LOCUST_JSON_HOST_HEADER",
        default="",
        help="Host header for pose-json (Knative via Kourier)",
    )
    g.add_argument(
        "--annotate-host-header",
        env_var="LOCUST_ANNOTATE_HOST_HEADER",
        default="",
        help="Host header for pose-annotate",
    )
    g.add_argument(
        "--annotate-weight",
        env_var="LOCUST_ANNOTATE_WEIGHT",
        type=float,
        default=0.0,
        help="share of requests sent to pose-annotate, 0..1 (the rest go to pose-json)",
    )
    g.add_argument(
        "--request-timeout",
        env_var="LOCUST_REQUEST_TIMEOUT",
        type=float,
        default=10.0,
        help="seconds; a slower answer is a failure",
    )
    # 1-2 s: a person looks at the result before sending the next photo; random, so users do not march in step.
    g.add_argument(
        "--wait-min", env_var="LOCUST_WAIT_MIN", type=float, default=1.0, help="think time between requests, s"
    )
    g.add_argument("--wait-max", env_var="LOCUST_WAIT_MAX", type=float, default=2.0)
    g.add_argument(
        "--steps-out", env_var="LOCUST_STEPS_OUT", default="", help="write per-step statistics (JSON) here at test stop"
    )
    g.add_argument(
        "--live-out", env_var="LOCUST_LIVE_OUT", default="", help="rewrite live numbers (JSON) here every second"
    )


class Recorder:
    """Per-bucket exact statistics and X-Served-By counts, from Locust's request event."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.buckets: dict[tuple[int, str], dict] = {}
        self.recent: deque[tuple[float, float, bool]] = deque()  # (end time, ms, failed), last 5 s

    def add(
        self, users: int, phase: str, start: float, ms: float, error: str | None, served_by: str | None,
        inference_ms: float | None = None,
    ) -> None:  # fmt: skip
        b = self.buckets.setdefault(
            (users, phase),
            {"times": [], "failures": 0, "reasons": Counter(), "served_by": Counter(), "first": start, "last": start,
             "inference": []},
        )  # fmt: skip
        if inference_ms is not None:
            b["inference"].append(inference_ms)
        b["times"].append(ms)
        b["first"], b["last"] = min(b["first"], start), max(b["last"], start)
        if error:
            b["failures"] += 1
            b["reasons"][error[:120]] += 1
        elif served_by:
            b["served_by"][served_by] += 1
        now = time.time()
        self.recent.append((now, ms, bool(error)))
        while self.recent and self.recent[0][0] < now - 5:
            self.recent.popleft()

    def summary(self) -> list[dict]:
        """One dict per bucket. Requests/s over the bucket's window: from its first request's start to the next
        bucket's (the last bucket: to its last request's start; none if that is under a second)."""
        order = sorted(self.buckets, key=lambda k: self.buckets[k]["first"])
        out = []
        for i, k in enumerate(order):
            b = self.buckets[k]
            times, n = sorted(b["times"]), len(b["times"])
            end = self.buckets[order[i + 1]]["first"] if i + 1 < len(order) else b["last"]
            span = end - b["first"]
            rps = (n if i + 1 < len(order) else n - 1) / span if span >= 1 else math.nan
            out.append({
                "users": k[0], "phase": k[1], "requests": n, "failures": b["failures"],
                "avg_ms": sum(times) / n, "p50_ms": percentile(times, 0.5), "p95_ms": percentile(times, 0.95),
                "max_ms": times[-1], "rps": rps, "span_s": span,
                "inference_ms": percentile(sorted(b["inference"]), 0.5) if b["inference"] else math.nan,
                "served_by": dict(b["served_by"]), "reasons": dict(b["reasons"].most_common(5)),
            })  # fmt: skip
        return sorted(out, key=lambda b: (b["users"], b["phase"]))

    def live(self, users: int) -> dict:
        times = [ms for _, ms, _ in self.recent]
        return {"users": users, "rps": len(times) / 5, "avg_ms": sum(times) / len(times) if times else 0.0,
                "failures_5s": sum(f for *_, f in self.recent),
                "requests": sum(len(b["times"]) for b in self.buckets.values()),
                "failures": sum(b["failures"] for b in self.buckets.values())}  # fmt: skip


RECORDER = Recorder()
LIVE: list[gevent.Greenlet] = []


def _write(path: str, data: object) -> None:
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)  # readers never see half a file


@events.request.add_listener
def _record(context: dict, start_time: float, response_time: float, exception=None, response=None, **_) -> None:
    if "users" not in context:
        return
    headers = response.headers if response is not None and response.headers else {}
    RECORDER.add(
        context["users"], context["phase"], start_time, response_time, str(exception) if exception else None,
        headers.get("X-Served-By"), server_inference_ms(headers.get("Server-Timing")),
    )  # fmt: skip


@events.test_start.add_listener
def _test_start(environment, **_) -> None:
    RECORDER.reset()
    opts = environment.parsed_options
    if opts and opts.live_out and not LIVE:

        def loop() -> None:
            while True:
                runner = environment.runner
                _write(opts.live_out, RECORDER.live(runner.user_count if runner else 0))
                gevent.sleep(1)

        LIVE.append(gevent.spawn(loop))


@events.test_stop.add_listener
def _test_stop(environment, **_) -> None:
    opts = environment.parsed_options
    while LIVE:
        LIVE.pop().kill(block=False)
    if opts and opts.steps_out:
        _write(opts.steps_out, RECORDER.summary())


@events.reset_stats.add_listener
def _reset() -> None:
    RECORDER.reset()


@events.init.add_listener
def _init(environment, **_) -> None:
    opts = environment.parsed_options
    if opts is None:  # used as a library without options
        return
    PoseUser.network_timeout = PoseUser.connection_timeout = opts.request_timeout
    PoseUser.wait_time = between(opts.wait_min, max(opts.wait_min, opts.wait_max))
    PoseUser.bodies = load_bodies(Path(opts.images))
    json_path, annotate_path = PATHS[opts.paths]
    PoseUser.targets = {
        "pose-json": (opts.json_path or json_path, {"Host": opts.json_host_header} if opts.json_host_header else {}),
        "pose-annotate": (opts.annotate_path or annotate_path, {"Host": opts.annotate_host_header} if opts.annotate_host_header else {}),
    }  # fmt: skip
    PoseUser.annotate_weight = opts.annotate_weight


def transport_error(error: BaseException | None, timeout: float) -> str:
    """A short reason for a request that got no answer (geventhttpclient wraps the cause in RetriesExceeded)."""
    text = str(error).split("original=")[-1]
    return f"timeout (> {timeout:g} s)" if "timed out" in text else f"{type(error).__name__}: {text}"[:120]


class PoseUser(FastHttpUser):
    """One person using the service: post a photo, check the answer, think 1-2 s, repeat (photos in turn)."""

    wait_time = between(1.0, 2.0)
    network_timeout = connection_timeout = 10.0
    bodies: ClassVar[list[bytes]] = []
    targets: ClassVar[dict[str, tuple[str, dict[str, str]]]] = {
        "pose-json": (PATHS["gateway"][0], {}),
        "pose-annotate": (PATHS["gateway"][1], {}),
    }
    annotate_weight = 0.0

    def on_start(self) -> None:
        if not self.bodies:
            type(self).bodies = load_bodies(DATA / "load-128")
        self.next_image = random.randrange(len(self.bodies))  # users start at different photos

    @task
    def post_image(self) -> None:
        function = "pose-annotate" if random.random() < self.annotate_weight else "pose-json"
        path, extra = self.targets[function]
        request_id = str(uuid.uuid4())
        image = self.bodies[self.next_image % len(self.bodies)]
        self.next_image += 1
        runner = self.environment.runner
        target = runner.target_user_count if runner else 0
        phase = "hold" if runner is None or runner.user_count >= target else "ramp"
        headers = {"Content-Type": "application/json", **extra}
        with self.client.post(path, data=body(image, request_id), headers=headers, name=function, catch_response=True,
                              context={"users": target, "phase": phase}) as resp:  # fmt: skip
            if resp.status_code == 0 or resp.content is None:
                resp.failure(transport_error(resp.error, self.network_timeout))
                return
            try:
                answer = loads(resp.content)
            except ValueError:
                answer = None
            if resp.status_code != 200:
                error = answer.get("error") if isinstance(answer, dict) else None
                code = error.get("code") if isinstance(error, dict) else None
                resp.failure(f"HTTP {resp.status_code}" + (f" {code}" if code else ""))
                return
            if answer is None:
                resp.failure("answer is not JSON")
                return
            problem = (check_json if function == "pose-json" else check_annotate)(answer, request_id)
            if problem:
                resp.failure(problem)
            else:
                resp.success()
