"""Engines: the ways both functions can be deployed, behind one small interface for the experiment runner.

An engine is a running deployment of pose-json and pose-annotate behind one base URL that routes
`POST {base_url}/function/<name>` (gateway-style) and the course's `/api/...` paths. The runner
resizes it, waits until every replica is ready, and checks who answered (`X-Served-By`).

Each module here implements it for one platform (swarm.py: Docker Swarm behind nginx). Engines may add
`endpoint(function) -> (url, headers)` where a function is not at base_url + /function/<name>, and
`stop()` to tear down what they started.

The experiment runner (loadtest/experiment.py `--engine`) also has: local.py (processes in 0.5-CPU /
512 MiB cgroups behind a local nginx running the Swarm gateway's config), kubectl.py (plain Deployments,
a NodePort per function), knative.py (min = max = initial-scale, Host header through Kourier) and
openfaas.py (CE: at most 5 replicas).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Engine(Protocol):
    base_url: str  # e.g. http://127.0.0.1:8088, no trailing slash

    def scale(self, replicas: int) -> None:
        """Run `replicas` replicas of every function (returns once asked; `wait_ready` waits)."""
        ...

    def wait_ready(self, timeout: float = 300) -> None:
        """Return once every replica is ready and reachable through `base_url`; raise TimeoutError otherwise."""
        ...

    def replica_names(self) -> list[str]:
        """The names replicas answer with in `X-Served-By`, for checking that all of them served."""
        ...
