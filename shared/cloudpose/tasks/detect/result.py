"""Detections: the objects found in one image, and detect-json's rendering of them (the JPEG one is `draw.py`).

Boxes are in original-image pixels, sorted by score, highest first. The answer is the CloudDetect
assignment's: integer rectangles (left, top, width, height) clipped to the image, COCO labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(slots=True)
class Detections:
    boxes: np.ndarray  # (n, 4) float32 x1, y1, x2, y2
    scores: np.ndarray  # (n,) float32 in 0–1
    classes: np.ndarray  # (n,) int class ids
    names: tuple[str, ...]  # class id → label
    width: int  # original image size
    height: int
    speed: dict[str, float] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return int(self.scores.shape[0])

    @property
    def labels(self) -> list[str]:
        return [self.names[int(c)] for c in self.classes]

    def rectangles(self) -> np.ndarray:
        """(n, 4) int left, top, width, height: corners rounded to whole pixels inside the image."""
        corners = np.rint(self.boxes).astype(np.int64)
        corners[:, [0, 2]] = corners[:, [0, 2]].clip(0, self.width)
        corners[:, [1, 3]] = corners[:, [1, 3]].clip(0, self.height)
        return np.stack([corners[:, 0], corners[:, 1], corners[:, 2] - corners[:, 0], corners[:, 3] - corners[:, 1]], 1)

    def to_json(self) -> dict:
        """The detect-json fields (without `id`)."""
        accuracies = np.round(self.scores.astype(np.float64), 4).tolist()
        objects = [
            {"label": label, "accuracy": accuracy, "rectangle": {"height": h, "left": x, "top": y, "width": w}}
            for label, accuracy, (x, y, w, h) in zip(self.labels, accuracies, self.rectangles().tolist())
        ]
        return {
            "objects": objects,
            "speed_preprocess": round(self.speed.get("preprocess", 0.0), 3),
            "speed_inference": round(self.speed.get("inference", 0.0), 3),
            "speed_postprocess": round(self.speed.get("postprocess", 0.0), 3),
        }
