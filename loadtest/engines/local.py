"""Local engine: N processes per function, each in its own 0.5-CPU / 512 MiB cgroup, behind a local nginx.

The pods' slice and the Swarm gateway's routing without Docker, so the experiment also runs on a laptop
(Linux, root for the cgroups). Each replica runs `python -m cloudpose.serve <function>` (what the images
run) in a UTS namespace of its own whose hostname, e.g. `local-pose-json-2`, is what it reports in
X-Served-By, as a pod reports its name. POSE_MAX_INFLIGHT=1: one inference at a time, as the service picks
for a 0.5-CPU pod (under cgroup v1 it cannot read its own quota from the host's /sys/fs/cgroup).
Scaling starts or stops replicas (highest number first) and reloads nginx.

    with LocalEngine() as engine:  # nginx on a free port, no replicas yet
        engine.scale(2); engine.wait_ready(); engine.base_url
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor

from cloudpose.deployment import CPU_CORES, FUNCTION_NAMES, MEMORY_BYTES

from .. import cgroup as cgroups
from ..nginx import Nginx
from ..nginx import available as nginx_available
from ..process import ServerProcess, free_port, wait_ready


def available(limits: bool = True) -> str | None:
    """None if this engine can run here, else the reason."""
    return nginx_available() or (cgroups.available() if limits else None)


def hostname_prefix(name: str) -> list[str]:
    """A command prefix that runs the command with hostname `name` (its own UTS namespace), if possible."""
    unshare = shutil.which("unshare")
    if not unshare:
        return []
    userns = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return [unshare, *userns, "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"', name]


class Replica:
    def __init__(self, function: str, index: int, tag: str, limits: bool) -> None:
        self.name = f"local-{function}-{index}"
        self.cgroup = cgroups.Cgroup(f"{tag}-{function}-{index}", CPU_CORES, MEMORY_BYTES).create() if limits else None
        prefix = (self.cgroup.prefix() if self.cgroup else []) + hostname_prefix(self.name)
        try:
            self.server = ServerProcess(
                ["-m", "cloudpose.serve", function], prefix=prefix, timeout=180,
                env={"POSE_MAX_INFLIGHT": str(max(1, int(CPU_CORES))), "POSE_THREADS": "1"},
            )  # fmt: skip
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        if hasattr(self, "server"):
            self.server.stop()
        if self.cgroup:
            self.cgroup.remove()


class LocalEngine:
    """The Engine protocol (loadtest.engines) over local processes and nginx."""

    def __init__(self, functions: tuple[str, ...] = FUNCTION_NAMES, port: int = 0, limits: bool = True) -> None:
        if reason := available(limits):
            raise RuntimeError(f"local engine: {reason}")
        self.functions, self.limits = functions, limits
        self.port = port or free_port()
        self.replicas: dict[str, list[Replica]] = {f: [] for f in functions}
        self.nginx: Nginx | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalEngine:
        self.nginx = self.nginx or Nginx(self.port, self._upstreams())
        return self

    def _upstreams(self) -> dict[str, list[int]]:
        return {f: [r.server.port for r in self.replicas.get(f, [])] for f in FUNCTION_NAMES}

    def scale(self, replicas: int) -> None:
        """Start or stop replicas of every function until each has `replicas`; then nginx balances over them."""
        self.start()
        jobs = [(f, i) for f in self.functions for i in range(len(self.replicas[f]) + 1, replicas + 1)]
        for f in self.functions:  # stop the surplus first: frees CPU for the ones starting
            while len(self.replicas[f]) > replicas:
                self.replicas[f].pop().stop()
        failures = []
        with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:  # model loads overlap
            for (f, _), fut in zip(jobs, [pool.submit(Replica, f, i, str(self.port), self.limits) for f, i in jobs]):
                try:
                    self.replicas[f].append(fut.result())
                except Exception as exc:
                    failures.append(exc)
        for f in self.functions:
            self.replicas[f].sort(key=lambda r: r.name)
        self.nginx.update(self._upstreams())
        if failures:
            raise RuntimeError(f"{len(failures)} replica(s) failed to start: {failures[0]}")

    def wait_ready(self, timeout: float = 300) -> None:
        for reps in self.replicas.values():
            for r in reps:
                wait_ready(r.server.url, r.server.proc, timeout)
        if self.nginx:
            self.nginx.wait_generation(timeout)

    def replica_names(self) -> list[str]:
        return [r.name for reps in self.replicas.values() for r in reps]

    def stop(self) -> None:
        for reps in self.replicas.values():
            while reps:
                reps.pop().stop()
        if self.nginx:
            self.nginx.stop()
            self.nginx = None

    def __enter__(self) -> LocalEngine:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
