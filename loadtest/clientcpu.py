"""The load generator's own CPU per step: was the client, not the service, the limit?

A Locust process runs all its users on one core (gevent), so when the busiest Locust process nears 100 % of
a core, response times include the client's own queueing and the step says nothing about the service. Two
sources, both kept per step:

- `ProcessSampler`: the runner's psutil samples, every second, of every Locust process on this machine (the
  `locust` command and its descendants: the master and its `--processes` workers). Exact CPU seconds, so a
  step's figure is the busiest process's mean over the step.
- Locust's own usage monitor (each process, every 10 s, workers on other machines included; the locustfile
  collects them on the master) and its warning when a process is above 90 % ("CPU usage above 90%!", which
  Locust logs once per process but fires as an event every time; the locustfile records every one).

A step is client-limited when the busiest process was above `LIMIT` % over the step, or Locust found one
above it during the step (a 10-s sample, so a burst inside a longer step counts too).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psutil

LIMIT = 90.0  # % of one core: Locust's own CPU_WARNING_THRESHOLD
LOCUST_INTERVAL = 10.0  # s: Locust's CPU_MONITOR_INTERVAL; a sample at t covers (t - 10, t]


class ProcessSampler(threading.Thread):
    """CPU seconds (user + system) of a process and all its descendants, every `interval` s, until `stop()`."""

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        super().__init__(daemon=True, name=f"cpu-sampler-{pid}")
        self.root, self.interval = psutil.Process(pid), interval
        self.samples: list[tuple[float, dict[int, float]]] = []  # (epoch s, {pid: cpu s})
        self._done = threading.Event()

    def sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        now, cpu = time.time(), {}
        for p in procs:
            try:
                t = p.cpu_times()
                cpu[p.pid] = t.user + t.system
            except psutil.Error:
                continue
        if cpu:
            self.samples.append((now, cpu))

    def run(self) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(self.interval)

    def stop(self) -> list[tuple[float, dict[int, float]]]:
        self._done.set()
        self.join(5)
        return self.samples


def window_cpu(samples: Sequence[tuple[float, dict[int, float]]], start: float, end: float) -> dict[int, float]:
    """Per process, % of one core over [start, end]: from the last sample at or before `start` (or the process's
    first one after it) to the first at or after `end` (or its last one). Processes seen only once are left out."""
    out: dict[int, float] = {}
    pids = {pid for _, cpu in samples for pid in cpu}
    for pid in pids:
        mine = [(t, cpu[pid]) for t, cpu in samples if pid in cpu]
        before = [s for s in mine if s[0] <= start]
        after = [s for s in mine if s[0] >= end]
        a = before[-1] if before else next((s for s in mine if s[0] > start), None)
        b = after[0] if after else next((s for s in reversed(mine) if s[0] < end), None)
        if a is None or b is None or b[0] - a[0] < 0.5 or b[0] <= start or a[0] >= end:
            continue
        out[pid] = 100 * (b[1] - a[1]) / (b[0] - a[0])
    return out


@dataclass
class ClientLoad:
    """The client's CPU during one step."""

    cpu_pct: float = math.nan  # the busiest Locust process, % of one core
    locust_cpu_pct: float = math.nan  # the highest of Locust's own 10-s figures in the step (any process, anywhere)
    processes: int = 0  # Locust processes measured on this machine
    warnings: int = 0  # Locust's "above 90 %" events in the step

    @property
    def limited(self) -> bool:
        return self.cpu_pct > LIMIT or self.locust_cpu_pct > LIMIT or self.warnings > 0


def in_step(t: float, windows: Sequence[tuple[float, float]], i: int) -> bool:
    """Whether a Locust sample taken at `t` belongs to step `i` of contiguous `windows`: its 10-s interval's
    middle lies in the step (before the first step: the first; after the last: the last)."""
    mid = t - LOCUST_INTERVAL / 2
    start, end = windows[i]
    return (start <= mid < end) or (i == 0 and mid < start) or (i == len(windows) - 1 and mid >= end)


def per_step(
    windows: Sequence[tuple[float, float]],
    samples: Sequence[tuple[float, dict[int, float]]],
    usage: Sequence[dict],
    warnings: Sequence[dict],
) -> list[ClientLoad]:
    """One ClientLoad per (start, end) window: psutil's busiest process over the window, Locust's own figures
    (each process's first figure is Locust's psutil baseline, always 0, and is skipped)."""
    first = {}
    for u in sorted(usage, key=lambda u: u["t"]):
        first.setdefault(u["process"], u["t"])
    usage = [u for u in usage if u["t"] > first[u["process"]]]
    out = []
    for i, (start, end) in enumerate(windows):
        local = window_cpu(samples, start, end) if end > start else {}
        theirs = [u["cpu"] for u in usage if in_step(u["t"], windows, i)]
        out.append(ClientLoad(
            cpu_pct=max(local.values()) if local else math.nan,
            locust_cpu_pct=max(theirs) if theirs else math.nan,
            processes=len(local),
            warnings=sum(1 for w in warnings if in_step(w["t"], windows, i)),
        ))  # fmt: skip
    return out
