"""Model: one lifecycle for every backend and task — load, then per image preprocess → predict → postprocess.

Each stage is timed; the timings become the `speed_*` fields. A model is loaded once per
process and shared by all request threads (ONNX Runtime sessions and OpenVINO compiled models
are safe to call from several threads; each OpenVINO call gets its own infer request). What is
task-specific (input placement, decoding, the result type) comes from the task's `ModelSpec`.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from ..config import ModelSettings, Settings
from ..imaging import Decoded
from ..letterbox import PAD_VALUE, Letterbox, prepare, to_tensor
from ..tasks.base import Result, Task
from ..variants import Variant

log = logging.getLogger("cloudpose.model")


class Model(ABC):
    """Subclasses implement `_load` and `predict` (and may override `__call__` wholesale)."""

    def __init__(self, task: Task, variant: Variant, settings: Settings, model_settings: ModelSettings) -> None:
        assert task.model is not None, f"{task.name} has no model"
        self.task = task
        self.spec = task.model
        self.variant = variant
        self.settings = settings
        self.model_settings = model_settings
        self.ready = False
        self.load_seconds = 0.0
        self.reason = ""
        self.context: Any = None
        # Fixed input shapes served right now (None: any stride-32 rectangle). A backend may start
        # with fewer than the variant's and add the rest once compiled.
        self.shapes = variant.shapes(self.spec.stretch)

    @property
    def name(self) -> str:
        return self.variant.name

    @property
    def min_side(self) -> int:
        """JPEGs are decoded reduced as long as the long side keeps about this many pixels."""
        return self.variant.imgsz

    def load(self) -> "Model":
        t0 = time.perf_counter()
        if self.spec.context is not None:
            self.context = self.spec.context(self.settings.model_dir)
        self._load()
        self.warmup()
        self.load_seconds = time.perf_counter() - t0
        self.ready = True
        log.info("%s model %s ready in %.2f s", self.task.name, self.name, self.load_seconds)
        return self

    @abstractmethod
    def _load(self) -> None: ...

    def check_outputs(self, path, names: list[str]) -> None:
        """Refuse a model file whose outputs are not what this task's decode reads: a file from another
        version of the project (an older export, say) would otherwise fail every request with a 500."""
        if tuple(names) != tuple(self.spec.outputs):
            raise RuntimeError(f"{path} has outputs {names}, but the {self.task.name} decode reads {list(self.spec.outputs)}: "
                               "the file is from another version; run `make model` (cloudpose-prepare) to rebuild it")  # fmt: skip

    def wait_steady(self, timeout: float = 60) -> bool:
        """Block until work started by `load` in the background is done (OpenVINO's smaller shapes)."""
        return True

    @property
    def steady(self) -> bool:
        return True

    @abstractmethod
    def predict(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Model input (see `to_input`) → every raw output of the graph, in the graph's order."""

    def to_input(self, letterboxed: np.ndarray) -> np.ndarray:
        """Letterboxed HxWx3 BGR uint8 → what `predict` takes: NCHW float32 RGB in 0–1 unless overridden."""
        return to_tensor(letterboxed)

    def blank(self, width: int, height: int) -> np.ndarray:
        """A grey model input of one shape, for warm-up."""
        return self.to_input(np.full((height, width, 3), PAD_VALUE, np.uint8))

    def warmup(self) -> None:
        """Run each input shape once, so the first request is not the slow one."""
        for w, h in self.shapes or self.variant.warmup_shapes(self.spec.stretch):
            self.predict(self.blank(w, h))

    def preprocess(self, img: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        letterboxed, box = prepare(img, self.variant.imgsz, shapes=self.shapes, stretch=self.spec.stretch)
        return self.to_input(letterboxed), box

    def postprocess(self, raw: list[np.ndarray], box: Letterbox, image: Decoded) -> Result:
        return self.spec.decode(raw, box, image, self.model_settings, self.context)

    def __call__(self, image: Decoded) -> Result:
        t0 = time.perf_counter()
        tensor, box = self.preprocess(image.pixels)
        t1 = time.perf_counter()
        raw = self.predict(tensor)
        t2 = time.perf_counter()
        result = self.postprocess(raw, box, image)
        t3 = time.perf_counter()
        result.speed = {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3, "postprocess": (t3 - t2) * 1e3}
        return result

    def describe(self) -> dict:
        return {"task": self.task.name, "variant": self.name, **self.variant.describe(self.spec.stretch),
                "serving_shapes": self.shapes, "load_seconds": round(self.load_seconds, 3),
                "reason": self.reason}  # fmt: skip
