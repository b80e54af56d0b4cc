"""Raw model output → people in original-image pixels: confidence filter, NMS, undo the letterbox.

The raw output of a YOLO pose head is (1, 56, anchors): per anchor cx, cy, w, h, person score,
then 17 × (x, y, visibility) with the sigmoid already applied. Semantics follow Ultralytics'
predict (confidence > conf, greedy NMS at IoU > iou, at most max_det people, clip to the image)
so results agree with it to a pixel.
"""

from __future__ import annotations

import numpy as np

from .preprocess import Letterbox
from .result import PoseResult

MAX_NMS = 30000  # candidates kept for NMS, highest scores first (as Ultralytics)


def decode(raw: np.ndarray, conf: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(1, 56, N) → boxes xyxy (n, 4), scores (n,), keypoints (n, 17, 3) for anchors above `conf`."""
    pred = raw[0]
    keep = np.flatnonzero(pred[4] > conf)
    if keep.size > MAX_NMS:
        keep = keep[np.argsort(-pred[4, keep], kind="stable")[:MAX_NMS]]
    sel = pred[:, keep].T  # (n, 56): only the survivors are transposed
    cx, cy, half_w, half_h = sel[:, 0], sel[:, 1], sel[:, 2] / 2, sel[:, 3] / 2
    boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
    return boxes, sel[:, 4].copy(), sel[:, 5:].reshape(-1, 17, 3)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, max_det: int) -> np.ndarray:
    """Greedy non-maximum suppression: indices kept, highest score first."""
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


def to_original(
    boxes: np.ndarray, keypoints: np.ndarray, box: Letterbox, decoded_w: int, decoded_h: int, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """Undo the letterbox, then any reduced-scale decode; clip to the image."""
    sx, sy = width / decoded_w, height / decoded_h
    fx, fy = sx / box.gain_x, sy / box.gain_y
    boxes = boxes.copy()
    boxes[:, [0, 2]] = (boxes[:, [0, 2]] - box.pad_x) * fx
    boxes[:, [1, 3]] = (boxes[:, [1, 3]] - box.pad_y) * fy
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    kpts = keypoints.copy()
    kpts[..., 0] = ((kpts[..., 0] - box.pad_x) * fx).clip(0, width)
    kpts[..., 1] = ((kpts[..., 1] - box.pad_y) * fy).clip(0, height)
    return boxes, kpts


def postprocess(
    raw: np.ndarray,
    box: Letterbox,
    decoded_w: int,
    decoded_h: int,
    width: int,
    height: int,
    *,
    conf: float,
    iou: float,
    max_det: int,
) -> PoseResult:
    boxes, scores, kpts = decode(raw.astype(np.float32, copy=False), conf)
    if scores.size == 0:
        return PoseResult.empty(width, height)
    kept = nms(boxes, scores, iou, max_det)
    boxes, kpts = to_original(boxes[kept], kpts[kept], box, decoded_w, decoded_h, width, height)
    return PoseResult(boxes.astype(np.float32), scores[kept].astype(np.float32), kpts.astype(np.float32), width, height)
