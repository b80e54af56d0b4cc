"""Ultralytics + torch: the reference for parity tests and the baseline of `make bench`. Never serves in a pod."""

from __future__ import annotations

import os
import time

import numpy as np

from ...backends.base import Model
from ...imaging import Decoded
from .result import PoseResult


class UltralyticsPose(Model):
    def _load(self) -> None:
        os.environ.setdefault("YOLO_OFFLINE", "1")  # no DNS probes, no downloads
        os.environ.setdefault("YOLO_CONFIG_DIR", str(self.settings.model_dir / "ultralytics-config"))
        import torch
        from ultralytics import YOLO

        torch.set_num_threads(self.settings.threads)
        path = self.variant.path(self.settings.model_dir)
        if not path.exists():  # a bare name would make Ultralytics download it
            raise FileNotFoundError(f"weights {path} are missing: run `make model`")
        self.yolo = YOLO(str(path), task="pose")

    def warmup(self) -> None:
        self.yolo.predict(np.full((480, 640, 3), 114, np.uint8), imgsz=self.variant.imgsz, verbose=False)

    def predict(self, tensor: np.ndarray) -> np.ndarray:  # pragma: no cover - __call__ bypasses the split
        raise NotImplementedError("Ultralytics runs its own pre- and post-processing")

    def __call__(self, image: Decoded) -> PoseResult:
        s = self.model_settings
        t0 = time.perf_counter()
        res = self.yolo.predict(
            image.pixels, imgsz=self.variant.imgsz, conf=s.conf, iou=s.iou, max_det=s.max_det, verbose=False
        )[0]
        elapsed = (time.perf_counter() - t0) * 1e3
        h, w = image.pixels.shape[:2]
        sx, sy = image.width / w, image.height / h
        boxes = res.boxes.xyxy.cpu().numpy().astype(np.float32) * np.array([sx, sy, sx, sy], np.float32)
        kpts = res.keypoints.data.cpu().numpy().astype(np.float32).reshape(-1, 17, 3)
        kpts[..., 0] *= sx
        kpts[..., 1] *= sy
        scores = res.boxes.conf.cpu().numpy().astype(np.float32)
        order = np.argsort(-scores, kind="stable")
        result = PoseResult(boxes[order], scores[order], kpts[order], image.width, image.height)
        speed = dict(res.speed)
        result.speed = {k: float(speed.get(k, 0.0)) for k in ("preprocess", "inference", "postprocess")}
        result.speed.setdefault("total", elapsed)
        return result
