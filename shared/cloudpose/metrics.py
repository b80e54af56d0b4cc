"""Prometheus metrics of one service process: `GET /metrics` in the Prometheus text format.

One registry per app (not prometheus_client's global one), so several apps in one process, as in the
tests, never share counters. Stage timings come from the same numbers as the `speed_*` fields and the
Server-Timing header; gauges read the service's own counters when scraped, so a scrape costs a few
string formats and never takes the inference lock.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import PlatformCollector, ProcessCollector, disable_created_metrics

STAGES = ("queue", "decode", "preprocess", "inference", "postprocess", "render")
# Seconds: from a 5 ms photo step to a 16-image batch queued behind others (the 60 s request budget).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
REJECTED_STATUSES = (413, 429, 503)


class Metrics:
    """The instruments; `service.py` records into them, `render()` answers a scrape."""

    def __init__(self) -> None:
        disable_created_metrics()  # the *_created series only double the output
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("cloudpose_requests", "HTTP requests answered, by function, path and status code",
                                ["function", "path", "code"], registry=r)  # fmt: skip
        self.latency = Histogram("cloudpose_request_duration_seconds", "Whole request, from arrival to the answer",
                                 ["function"], buckets=BUCKETS, registry=r)  # fmt: skip
        self.stages = Histogram("cloudpose_stage_duration_seconds", "Time per request in each stage (queue: waiting for an inference slot)",
                                ["function", "stage"], buckets=BUCKETS, registry=r)  # fmt: skip
        self.rejected = Counter("cloudpose_rejected_requests", "Requests refused for a limit (413) or load (429/503), by reason",
                                ["function", "reason"], registry=r)  # fmt: skip
        self.model_info = Gauge("cloudpose_model_info", "The model each task serves (1 once loaded)",
                                ["task", "variant", "backend", "input_size", "runs_as"], registry=r)  # fmt: skip
        ProcessCollector(registry=r)  # process_resident_memory_bytes, process_cpu_seconds_total, open fds
        PlatformCollector(registry=r)

    def gauges(self, in_progress: Callable[[], float], running: Callable[[], float], queued: Callable[[], float],
               held_bytes: Callable[[], float], draining: Callable[[], float]) -> None:
        """Gauges read at scrape time from the service's own state."""
        r = self.registry
        for name, doc, read in (
            ("cloudpose_requests_in_progress", "Requests admitted and not yet answered (running and waiting)", in_progress),
            ("cloudpose_inferences_running", "Requests holding an inference slot", running),
            ("cloudpose_requests_queued", "Requests waiting for an inference slot", queued),
            ("cloudpose_request_bytes_held", "Request bodies held (being read or waiting)", held_bytes),
            ("cloudpose_draining", "1 after SIGTERM: not ready, finishing what it holds", draining),
        ):
            Gauge(name, doc, registry=r).set_function(read)

    def model_loaded(self, task: str, description: dict) -> None:
        shapes = description.get("shapes") or []
        size = description.get("imgsz") or (max(max(s) for s in shapes) if shapes else 0)
        self.model_info.labels(task, description.get("variant", ""), description.get("backend", ""), str(size),
                               description.get("runs_as", "")).set(1)  # fmt: skip

    def observe(self, function: str, timing_ms: dict[str, float]) -> None:
        """One answered request's stage timings (ms, as in Server-Timing)."""
        for stage in STAGES:
            self.stages.labels(function, stage).observe(timing_ms.get(stage, 0.0) / 1e3)
        self.latency.labels(function).observe(timing_ms.get("total", 0.0) / 1e3)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


