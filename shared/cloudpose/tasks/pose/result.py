"""PoseResult: the people found in one image, and its JSON renderer (the JPEG one is `draw.py`).

Coordinates are in original-image pixels; people are sorted by probability, highest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip


@dataclass(slots=True)
class PoseResult:
    boxes: np.ndarray  # (n, 4) float32 x1, y1, x2, y2
    scores: np.ndarray  # (n,) float32 in 0–1
    keypoints: np.ndarray  # (n, 17, 3) float32 x, y, probability
    width: int  # original image size
    height: int
    speed: dict[str, float] = field(default_factory=dict)  # ms per stage: preprocess, inference, postprocess

    @classmethod
    def empty(cls, width: int, height: int) -> "PoseResult":
        return cls(
            np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 17, 3), np.float32), width, height
        )

    @property
    def count(self) -> int:
        return int(self.scores.shape[0])

    def to_json(self) -> dict:
        """The pose-json fields (without `id`): boxes as top-left + size, keypoints as [x, y, p]."""
        xy = self.boxes[:, :2].astype(np.float64)
        xywh = np.round(np.concatenate([xy, self.boxes[:, 2:] - xy], axis=1), 2).tolist()
        probs = np.round(self.scores.astype(np.float64), 4).tolist()
        boxes = [{"x": x, "y": y, "width": w, "height": h, "probability": p} for (x, y, w, h), p in zip(xywh, probs)]
        kpts = self.keypoints.astype(np.float64)
        kpts[..., :2] = np.round(kpts[..., :2], 2)  # pixels: 0.01 px is plenty
        kpts[..., 2] = np.round(kpts[..., 2], 4)
        return {
            "count": self.count,
            "boxes": boxes,
            "keypoints": kpts.tolist(),
            "speed_preprocess": round(self.speed.get("preprocess", 0.0), 3),
            "speed_inference": round(self.speed.get("inference", 0.0), 3),
            "speed_postprocess": round(self.speed.get("postprocess", 0.0), 3),
        }
