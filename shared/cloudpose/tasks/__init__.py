"""The tasks the service runs, by name. Each is a folder here that fills in `base.Task`."""

from __future__ import annotations

from .base import ModelSpec, Result, Task
from .detect import TASK as DETECT
from .photo import METADATA, THUMBNAIL
from .pose import TASK as POSE

TASKS: dict[str, Task] = {t.name: t for t in (POSE, DETECT, METADATA, THUMBNAIL)}

__all__ = ["ModelSpec", "Result", "Task", "TASKS"]
