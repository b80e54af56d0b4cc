"""Configuration, read once from the environment (nothing is read at import time).

Every knob has a documented default that suits a 0.5-CPU / 512 MiB pod; the README's
"Configuration" table mirrors the help strings below. Service knobs keep their historical
`POSE_` names whatever the task; a task's model knobs use the task's prefix (`POSE_`, `DETECT_`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cloudpose"


def _own_cgroup_dirs(controller: str) -> list[Path]:
    """Where this process's cgroup for `controller` is mounted: its own path first, then the mount's root.

    In a container the mount's root is the container's cgroup; on a host, a process started in a
    sub-cgroup (as the local experiment engine does) only finds its quota under its own path.
    """
    root = Path("/sys/fs/cgroup")
    dirs: list[Path] = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller == "" and controllers == "":  # cgroup v2
            dirs.append(root / path.lstrip("/"))
        elif controller in controllers.split(","):
            mount = root / controllers if (root / controllers).exists() else root / controller
            dirs.append(mount / path.lstrip("/"))
    dirs.append(root if controller == "" else root / controller)
    return dirs


def cpu_quota() -> float:
    """CPUs this process may use: its cgroup's CFS quota (v2 or v1) if set, else the affinity mask."""
    cpus = float(len(os.sched_getaffinity(0)))
    for d in _own_cgroup_dirs(""):  # cgroup v2
        try:
            quota, period = (d / "cpu.max").read_text().split()
            return cpus if quota == "max" else min(cpus, int(quota) / int(period))
        except (OSError, ValueError):
            continue
    for d in _own_cgroup_dirs("cpu"):  # cgroup v1
        try:
            quota = int((d / "cpu.cfs_quota_us").read_text())
            period = int((d / "cpu.cfs_period_us").read_text())
            return cpus if quota <= 0 else min(cpus, quota / period)
        except (OSError, ValueError):
            continue
    return cpus


@dataclass(frozen=True)
class Settings:
    """The service's settings, shared by every function. Field metadata `env` names the variable, `help` documents it.

    A task's model knobs (variant, thresholds) are `ModelSettings`, read with the task's own prefix.
    """

    model_dir: Path = field(
        default=DEFAULT_CACHE / "models",
        metadata={"env": "POSE_MODEL_DIR", "help": "folder with the prepared models of every task (make model)"},
    )
    threads: int = field(default=1, metadata={"env": "POSE_THREADS", "help": "intra-op threads per inference"})
    max_inflight: int = field(
        default=0,
        metadata={"env": "POSE_MAX_INFLIGHT", "help": "inferences run at once; 0 = CPU quota / threads, at least 1"},
    )
    max_queue: int = field(
        default=0,
        metadata={"env": "POSE_MAX_QUEUE", "help": "requests waiting beyond that; 0 = unbounded, else 503 when full"},
    )
    max_body_mb: float = field(default=10.0, metadata={"env": "POSE_MAX_BODY_MB", "help": "request body limit (413)"})
    max_held_mb: float = field(
        default=96.0,
        metadata={"env": "POSE_MAX_HELD_MB", "help": "request bodies held at once (read or queued); beyond: 503"},
    )
    max_pixels: int = field(
        default=40_000_000, metadata={"env": "POSE_MAX_PIXELS", "help": "image pixel limit, checked before decoding"}
    )
    max_batch: int = field(default=16, metadata={"env": "POSE_MAX_BATCH", "help": "images per batch request"})
    jpeg_quality: int = field(default=90, metadata={"env": "POSE_JPEG_QUALITY", "help": "annotated JPEG quality"})
    cors_origins: str = field(
        default="", metadata={"env": "POSE_CORS_ORIGINS", "help": "comma-separated origins allowed by CORS; none by default"}
    )
    port: int = field(default=8080, metadata={"env": "PORT", "help": "listen port (the local default uses 60000)"})
    drain_seconds: float = field(
        default=2.0,
        metadata={"env": "POSE_DRAIN_SECONDS", "help": "after SIGTERM: seconds of not-ready (503) while still serving"},
    )
    shutdown_timeout: float = field(
        default=60.0,
        metadata={"env": "POSE_SHUTDOWN_TIMEOUT", "help": "then: seconds to finish the requests already accepted"},
    )
    # The environment the settings were read from: each task reads its ModelSettings from it.
    env: dict = field(default_factory=dict, repr=False, compare=False, metadata={"env": "", "help": ""})

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> "Settings":
        env = dict(os.environ if env is None else env)
        values: dict = {"env": env}
        for f in fields(cls):
            if not f.metadata["env"]:
                continue
            raw = env.get(f.metadata["env"])
            if raw is None or raw == "":
                continue
            try:
                values[f.name] = Path(raw).expanduser() if isinstance(f.default, Path) else type(f.default)(raw)
            except ValueError as exc:
                raise ValueError(f"{f.metadata['env']}={raw!r}: {exc}") from None
        values.update(overrides)
        return cls(**values)

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    @property
    def max_held_bytes(self) -> int:
        return int(self.max_held_mb * 1024 * 1024)

    @property
    def inflight(self) -> int:
        """How many inferences may run at once: enough to fill the CPU quota, never more."""
        if self.max_inflight > 0:
            return self.max_inflight
        return max(1, math.floor(cpu_quota() / max(1, self.threads) + 1e-9))

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]


@dataclass(frozen=True)
class ModelSettings:
    """One task's model knobs, from `<PREFIX>_<NAME>` variables; each task sets its own defaults."""

    variant: str = field(default="auto", metadata={"help": "auto (pick for this CPU) or a variant name, e.g. ort-fp32-640"})
    backend: str = field(default="auto", metadata={"help": "auto | onnxruntime | openvino (| the task's reference backend)"})
    imgsz: int = field(default=0, metadata={"help": "model input long side, a multiple of 32; 0 = the variant's own"})
    conf: float = field(default=0.25, metadata={"help": "minimum confidence of an answer"})
    iou: float = field(default=0.7, metadata={"help": "NMS IoU threshold (per class)"})
    max_det: int = field(default=300, metadata={"help": "most answers per image"})
    prefix: str = field(default="POSE", metadata={"help": ""})

    @classmethod
    def from_env(cls, prefix: str, env: dict[str, str] | None = None, **defaults) -> "ModelSettings":
        env = dict(os.environ if env is None else env)
        values: dict = {"prefix": prefix, **defaults}
        for f in fields(cls):
            raw = env.get(f"{prefix}_{f.name.upper()}") if f.name != "prefix" else None
            if raw is None or raw == "":
                continue
            try:
                values[f.name] = type(f.default)(raw)
            except ValueError as exc:
                raise ValueError(f"{prefix}_{f.name.upper()}={raw!r}: {exc}") from None
        return cls(**values)

    def var(self, name: str) -> str:
        """The environment variable behind field `name`, for messages."""
        return f"{self.prefix}_{name.upper()}"


def env_table(model_tasks: dict[str, dict] | None = None) -> list[tuple[str, str, str]]:
    """(variable, default, help) for every setting: the README's configuration table.

    `model_tasks` maps a task's prefix to its ModelSettings defaults; each gets its own rows.
    """
    rows = [(f.metadata["env"], str(f.default), f.metadata["help"]) for f in fields(Settings) if f.metadata["env"]]
    for prefix, defaults in (model_tasks or {}).items():
        for f in fields(ModelSettings):
            if f.name != "prefix":
                rows.append((f"{prefix}_{f.name.upper()}", str(defaults.get(f.name, f.default)), f.metadata["help"]))
    return rows
