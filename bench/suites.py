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
    ),
}

# The goals for detect-json, checked in the report: against the peer, in the same pod.
DETECT_GOAL_RATIO = 3.0
DETECT_GOAL_RSS_MIB = 256.0
