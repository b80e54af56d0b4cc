"""Box arithmetic every detection-style task shares: NMS (greedy, or per class) and undoing the letterbox."""

from __future__ import annotations

import numpy as np

from .letterbox import Letterbox


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, max_det: int) -> np.ndarray:
    """Greedy non-maximum suppression over xyxy `boxes`: indices kept, highest score first."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    kept: list[int] = []
    while order.size and len(kept) < max_det:
        i = order[0]
        kept.append(int(i))
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        overlap = inter / (areas[i] + areas[rest] - inter + 1e-7)
        order = rest[overlap <= iou]
    return np.asarray(kept, dtype=np.int64)


def nms_per_class(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float, max_det: int) -> np.ndarray:
    """NMS within each class only: a dog never suppresses the person it overlaps.

    One greedy pass over boxes shifted apart by class (each class gets its own far-away region), so
    boxes of different classes can never overlap: the same result as one NMS per class, in one loop.
    """
    if not boxes.size:
        return np.zeros(0, np.int64)
    span = float(boxes.max() - boxes.min()) + 1.0
    shifted = boxes.astype(np.float64) + (classes.astype(np.float64) * span)[:, None]  # float64: exact offsets
    return nms(shifted, scores, iou, max_det)


def to_original(
    boxes: np.ndarray, box: Letterbox, decoded_w: int, decoded_h: int, width: int, height: int
) -> np.ndarray:
    """xyxy boxes in model-input pixels → original-image pixels (undo the letterbox, then any reduced decode); clipped."""
    fx, fy = width / decoded_w / box.gain_x, height / decoded_h / box.gain_y
    out = boxes.astype(np.float32, copy=True)
    out[:, [0, 2]] = ((out[:, [0, 2]] - box.pad_x) * fx).clip(0, width)
    out[:, [1, 3]] = ((out[:, [1, 3]] - box.pad_y) * fy).clip(0, height)
    return out


def points_to_original(
    points: np.ndarray, box: Letterbox, decoded_w: int, decoded_h: int, width: int, height: int
) -> np.ndarray:
    """(..., 2+) points in model-input pixels → original-image pixels, clipped; extra columns (scores) kept."""
    fx, fy = width / decoded_w / box.gain_x, height / decoded_h / box.gain_y
    out = points.astype(np.float32, copy=True)
    out[..., 0] = ((out[..., 0] - box.pad_x) * fx).clip(0, width)
    out[..., 1] = ((out[..., 1] - box.pad_y) * fy).clip(0, height)
    return out
