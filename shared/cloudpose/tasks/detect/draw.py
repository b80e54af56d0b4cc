"""The JPEG renderer for detections: a box and a "label 0.87" tag per object, a colour per class (OpenCV, no fonts)."""

from __future__ import annotations

import cv2
import numpy as np

from .result import Detections


def colour(class_id: int) -> tuple[int, int, int]:
    """A stable, well-spread BGR colour per class (golden-ratio hues)."""
    hue = int((class_id * 0.618033988749895 % 1.0) * 180)
    bgr = cv2.cvtColor(np.uint8([[[hue, 200, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def draw(image: np.ndarray, result: Detections) -> np.ndarray:
    """A copy of `image` (BGR, any scale of the original) with every object drawn, best last (on top)."""
    out = image.copy()
    h, w = out.shape[:2]
    sx, sy = w / result.width, h / result.height  # the image may be a reduced decode of the original
    thick = max(1, round(max(h, w) / 400))
    scale = thick / 3
    for box, score, cls, label in reversed(list(zip(result.boxes, result.scores, result.classes, result.labels))):
        x1, y1, x2, y2 = (int(round(v)) for v in (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy))
        bgr = colour(int(cls))
        cv2.rectangle(out, (x1, y1), (x2, y2), bgr, thick, cv2.LINE_AA)
        tag = f"{label} {score:.2f}"
        (tw, th), base = cv2.getTextSize(tag, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        top = max(y1 - th - base, 0)
        cv2.rectangle(out, (x1, top), (x1 + tw, top + th + base), bgr, -1)
        cv2.putText(out, tag, (x1, top + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
    return out
