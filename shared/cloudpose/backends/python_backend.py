"""A task without a model (photo metadata, thumbnails): its Python function behind the same runner interface."""

from __future__ import annotations

import time

from ..config import ModelSettings, Settings
from ..imaging import Decoded
from ..tasks.base import Result, Task


class FunctionRunner:
    """Calls `task.run(image, settings)`; timed like a model so every answer carries its speed."""

    def __init__(self, task: Task, settings: Settings, model_settings: ModelSettings) -> None:
        assert task.run is not None, f"{task.name} has neither a model nor a function"
        self.task, self.settings, self.model_settings = task, settings, model_settings
        self.ready = False
        self.steady = True
        self.min_side = task.min_side

    @property
    def name(self) -> str:
        return f"python:{self.task.name}"

    def load(self) -> "FunctionRunner":
        self.ready = True
        return self

    def wait_steady(self, timeout: float = 60) -> bool:
        return True

    def __call__(self, image: Decoded) -> Result:
        t0 = time.perf_counter()
        result = self.task.run(image, self.model_settings)
        result.speed = {"preprocess": 0.0, "inference": (time.perf_counter() - t0) * 1e3, "postprocess": 0.0}
        return result

    def describe(self) -> dict:
        return {"task": self.task.name, "variant": self.name, "backend": "python", "shapes": None, "serving_shapes": None}
