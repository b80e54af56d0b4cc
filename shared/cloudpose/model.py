"""PoseModel: one lifecycle for every backend — load, then per image preprocess → predict → postprocess.

Each stage is timed; the timings become the `speed_*` fields. A model is loaded once per
process and shared by all request threads (ONNX Runtime sessions and OpenVINO compiled models
are safe to call from several threads; each OpenVINO call gets its own infer request).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod

import numpy as np

from .config import Settings
from .imaging import Decoded
from .postprocess import postprocess
from .preprocess import PAD_VALUE, Letterbox, prepare, to_tensor
from .result import PoseResult
from .variants import Variant

log = logging.getLogger("cloudpose.model")


class PoseModel(ABC):
    """Subclasses implement `_load` and `predict` (and may override `__call__` wholesale)."""

    def __init__(self, variant: Variant, settings: Settings) -> None:
        self.variant = variant
        self.settings = settings
        self.ready = False
        self.load_seconds = 0.0
        # Fixed input shapes served right now (None: any stride-32 rectangle). A backend may start
        # with fewer than the variant's and add the rest once compiled.
        self.shapes = variant.shapes()

    @property
    def name(self) -> str:
        return self.variant.name

    def load(self) -> "PoseModel":
        t0 = time.perf_counter()
        self._load()
        self.warmup()
        self.load_seconds = time.perf_counter() - t0
        self.ready = True
        log.info("model %s ready in %.2f s", self.name, self.load_seconds)
        return self

    @abstractmethod
    def _load(self) -> None: ...

    def wait_steady(self, timeout: float = 60) -> bool:
        """Block until work started by `load` in the background is done (OpenVINO's smaller shapes)."""
        return True

    @abstractmethod
    def predict(self, tensor: np.ndarray) -> np.ndarray:
        """Model input (see `to_input`) → raw head output (1, 56, anchors)."""

    def to_input(self, letterboxed: np.ndarray) -> np.ndarray:
        """Letterboxed HxWx3 BGR uint8 → what `predict` takes: NCHW float32 RGB in 0–1 unless overridden."""
        return to_tensor(letterboxed)

    def blank(self, width: int, height: int) -> np.ndarray:
        """A grey model input of one shape, for warm-up."""
        return self.to_input(np.full((height, width, 3), PAD_VALUE, np.uint8))

    def warmup(self) -> None:
        """Run each input shape once, so the first request is not the slow one."""
        for w, h in self.shapes or self.variant.warmup_shapes():
            self.predict(self.blank(w, h))

    def preprocess(self, img: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        letterboxed, box = prepare(img, self.variant.imgsz, shapes=self.shapes)
        return self.to_input(letterboxed), box

    def postprocess(self, raw: np.ndarray, box: Letterbox, image: Decoded) -> PoseResult:
        s = self.settings
        h, w = image.pixels.shape[:2]
        return postprocess(raw, box, w, h, image.width, image.height, conf=s.conf, iou=s.iou, max_det=s.max_det)

    def __call__(self, image: Decoded) -> PoseResult:
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
        return {"variant": self.name, **self.variant.describe(), "serving_shapes": self.shapes,
                "load_seconds": round(self.load_seconds, 3), "reason": getattr(self, "reason", "")}  # fmt: skip


def load_model(settings: Settings) -> PoseModel:
    """Build the configured backend (see `variants.choose`) and load it."""
    from .variants import choose

    variant, reason = choose(settings)
    log.info("variant %s: %s", variant.name, reason)
    if variant.backend == "onnxruntime":
        from .backends.onnxruntime_backend import OnnxPose as cls
    elif variant.backend == "openvino":
        from .backends.openvino_backend import OpenVinoPose as cls
    elif variant.backend == "ultralytics":
        from .backends.ultralytics_backend import UltralyticsPose as cls
    else:
        raise ValueError(f"unknown backend {variant.backend!r}")
    model = cls(variant, settings)
    model.reason = reason
    return model.load()
