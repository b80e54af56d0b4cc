"""What `bench.serving` measures per task: the variants, the server they are set against, the accuracy metric.

One table per task, because each task has its own yardstick: pose against a typical FastAPI +
Ultralytics (torch) server, detect against the assignment's own peer server (Flask + OpenCV 4.10's
Darknet importer, reference venv). The servers themselves are started by `accuracy.target`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloudpose.deployment import MEMORY_BYTES

from .accuracy import DETECT_VARIANTS, PEER, PEER_CONF


@dataclass(frozen=True)
class Goal:
    """The issue's targets for a task's variants, checked in the report against the same run's figures."""

    ratio: float  # req/s in the pod, paired, against the yardstick
    rss_mib: float  # peak RSS under load
    ap_reference: str  # the row whose AP at the serving threshold a variant must reach, less `ap_margin`
    ap_margin: float = 0.0
    cold_start_s: float | None = None  # process start to ready, full CPU
    e2e_over_model: float | None = None  # HTTP at one client against the model call alone


@dataclass(frozen=True)
class Suite:
    task: str
    title: str
    baseline: str  # the yardstick's row name, as accuracy.target knows it
    baseline_label: str
    variants: tuple[str, ...]  # measured by default
    confs: tuple[float, float]  # ours: the serving threshold and the AP-style one
    baseline_confs: tuple[float, float]  # the yardstick's: what it serves, and its AP-style one
    baseline_memory: int  # its cgroup's memory limit (torch cannot run in 512 MiB)
    metric: str
    ratio: str  # the column heading of the throughput ratio
    plots: tuple[str, str]  # throughput-vs-AP and latency-vs-concurrency file names
    goal: Goal

    @property
    def yardstick(self) -> str:
        """How the report's prose names the baseline row."""
        return "the baseline" if self.task == "pose" else "the peer"

    @property
    def label(self) -> dict[str, str]:
        return {self.baseline: self.baseline_label}


SUITES: dict[str, Suite] = {
    "pose": Suite(
        task="pose",
        title="Pose: pose-json against a typical FastAPI + Ultralytics (torch) server",
        baseline="baseline",
        baseline_label="Ultralytics + torch (baseline)",
        variants=("ort-fp32-640", "ort-int8-640", "ort-int8-512", "ov-fp32-640", "ov-bf16-640", "ov-int8-640",
                  "ov-bf16-512-square"),
        confs=(0.25, 0.001),
        baseline_confs=(0.25, 0.001),
        baseline_memory=3 * MEMORY_BYTES,
        metric="COCO keypoint AP (OKS)",
        ratio="× baseline",
        plots=("bench-throughput-ap.png", "bench-latency.png"),
        # Issue 17: 3× the torch server at full accuracy (AP within 1 of ort-fp32-640, = torch's), in 256 MiB,
        # ready in 1.5 s, and at one client no more than 1.2× the model's own time end to end.
        goal=Goal(ratio=3.0, rss_mib=256.0, ap_reference="ort-fp32-640", ap_margin=1.0, cold_start_s=1.5, e2e_over_model=1.2),
    ),
    "detect": Suite(
        task="detect",
        title="Object detection: detect-json against the assignment's peer server",
        baseline=PEER,
        baseline_label="peer: Flask + OpenCV 4.10 Darknet (the assignment's code)",
        variants=tuple(DETECT_VARIANTS),
        confs=(0.25, 0.005),
        baseline_confs=(PEER_CONF, 0.005),
        baseline_memory=MEMORY_BYTES,
        metric="person-box AP (COCO bbox, category person)",
        ratio="× peer",
        plots=("bench-detect-throughput-ap.png", "bench-detect-latency.png"),
        goal=Goal(ratio=3.0, rss_mib=256.0, ap_reference=PEER),  # issue 14: 3× the peer at no lower person AP
    ),
}
