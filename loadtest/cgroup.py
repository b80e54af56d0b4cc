"""Run a process inside a CPU + memory limited cgroup: a pod's 0.5 CPU / 512 MiB without Docker.

Works with cgroup v2 (cpu.max, memory.max, memory.peak) and v1 (cpu.cfs_quota_us,
memory.limit_in_bytes, memory.max_usage_in_bytes). Needs root (or a delegated subtree).

    with Cgroup("bench-a", cpus=0.5, memory_bytes=512 << 20) as cg:
        ServerProcess([...], prefix=cg.prefix())      # the server starts inside the cgroup
        ...; cg.peak_memory(), cg.oom_kills()

`python -m loadtest.cgroup <procs-file>... -- cmd ...` is the launcher `prefix()` uses: it moves
itself into the cgroup, then execs the command, so nothing runs outside the limits.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


def version() -> int:
    return 2 if (ROOT / "cgroup.controllers").exists() else 1


def available() -> str | None:
    """None if limited cgroups can be made here, else the reason."""
    if os.geteuid() != 0:
        return "needs root to create cgroups"
    if version() == 1 and not ((ROOT / "cpu").is_dir() and (ROOT / "memory").is_dir()):
        return "cgroup v1 without cpu and memory hierarchies"
    return None


class Cgroup:
    def __init__(self, name: str, cpus: float, memory_bytes: int) -> None:
        self.name = f"cloudpose-{name}"
        self.cpus = cpus
        self.memory_bytes = memory_bytes
        if version() == 2:
            self.cpu_dir = self.mem_dir = self.acct_dir = ROOT / self.name
            self.dirs = [self.cpu_dir]
        else:  # separate hierarchies; cpuacct may be co-mounted with cpu or on its own
            self.cpu_dir, self.mem_dir = ROOT / "cpu" / self.name, ROOT / "memory" / self.name
            acct_root = ROOT / "cpuacct"
            self.acct_dir = acct_root / self.name if acct_root.resolve() != (ROOT / "cpu").resolve() else self.cpu_dir
            self.dirs = list(dict.fromkeys([self.cpu_dir, self.mem_dir, self.acct_dir]))

    def create(self) -> "Cgroup":
        self.remove()
        for d in self.dirs:
            d.mkdir(exist_ok=True)
        quota = int(self.cpus * PERIOD_US)
        if version() == 2:
            (ROOT / "cgroup.subtree_control").write_text("+cpu +memory")
            (self.cpu_dir / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            (self.mem_dir / "memory.max").write_text(str(self.memory_bytes))
            if (self.mem_dir / "memory.swap.max").exists():
                (self.mem_dir / "memory.swap.max").write_text("0")
        else:
            (self.cpu_dir / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.cpu_dir / "cpu.cfs_quota_us").write_text(str(quota))
            (self.mem_dir / "memory.limit_in_bytes").write_text(str(self.memory_bytes))
        return self

    def prefix(self) -> list[str]:
        """Command prefix that starts a process inside this cgroup."""
        return [sys.executable, "-m", "loadtest.cgroup", *(str(d / "cgroup.procs") for d in self.dirs), "--"]

    def peak_memory(self) -> int:
        """Highest memory use of the cgroup so far, bytes (page cache included, as the OOM killer counts)."""
        name = "memory.peak" if version() == 2 else "memory.max_usage_in_bytes"
        path = self.mem_dir / name
        return int(path.read_text()) if path.exists() else -1

    def oom_kills(self) -> int:
        path = self.mem_dir / ("memory.events" if version() == 2 else "memory.oom_control")
        for line in path.read_text().splitlines() if path.exists() else []:
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def cpu_seconds(self) -> float:
        """CPU time used by the cgroup so far."""
        if version() == 2:
            for line in (self.cpu_dir / "cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec"):
                    return int(line.split()[1]) / 1e6
            return 0.0
        return int((self.acct_dir / "cpuacct.usage").read_text()) / 1e9

    def remove(self) -> None:
        """Kill whatever is left inside and delete the cgroup (idempotent)."""
        for d in self.dirs:
            if not d.exists():
                continue
            for pid in (d / "cgroup.procs").read_text().split():
                try:
                    os.kill(int(pid), 9)
                except ProcessLookupError:
                    pass
            for _ in range(50):  # the killed processes take a moment to leave
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)

    def __enter__(self) -> "Cgroup":
        return self.create()

    def __exit__(self, *exc) -> None:
        self.remove()


def _launch(argv: list[str]) -> None:
    sep = argv.index("--")
    me = str(os.getpid())
    for procs in argv[:sep]:
        Path(procs).write_text(me)
    os.execvp(argv[sep + 1], argv[sep + 1 :])


if __name__ == "__main__":
    _launch(sys.argv[1:])
