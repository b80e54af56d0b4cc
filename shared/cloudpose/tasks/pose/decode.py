"""Raw head maps → people in original-image pixels, in float32 NumPy whatever precision the model ran in.

The served graph ends before YOLO11-pose's decode (see `prepare.cut_decode`): it returns, for every
anchor of the three strides (8, 16, 32), the 64 box-distribution logits (4 sides × 16 bins), the
person logit and 17 × (x, y, visibility) raw keypoint values. Decoding here rather than in the graph
keeps pixel coordinates out of bf16 and int8, where 8 significant bits round them to 1–2 pixel steps,
and costs less: only anchors above the confidence threshold are decoded. Semantics follow
Ultralytics' head and predict (DFL expectation, confidence > conf, greedy NMS at IoU > iou, at most
max_det people, clip to the image) so results agree with it to a pixel.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ...boxes import nms, points_to_original, to_original
from ...config import ModelSettings
from ...imaging import Decoded
from ...letterbox import Letterbox
from .result import PoseResult

STRIDES = (8, 16, 32)
BINS = 16  # DFL bins per box side
KEYPOINTS = 17
MAX_NMS = 30000  # candidates kept for NMS, highest scores first (as Ultralytics)
OUTPUTS = ("box_dfl", "person_logit", "keypoints_raw")  # the served graph's outputs, in this order


@lru_cache(maxsize=16)
def anchors(input_w: int, input_h: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres (2, N) in grid units and the stride (N,) of every anchor, in the head's order."""
    points, strides = [], []
    for s in STRIDES:
        w, h = input_w // s, input_h // s
        ys, xs = np.meshgrid(np.arange(h, dtype=np.float32) + 0.5, np.arange(w, dtype=np.float32) + 0.5, indexing="ij")
        points.append(np.stack([xs.ravel(), ys.ravel()]))
        strides.append(np.full(w * h, s, np.float32))
    return np.concatenate(points, axis=1), np.concatenate(strides)


def _logit(p: float) -> float:
    p = min(max(p, 1e-7), 1 - 1e-7)
    return float(np.log(p / (1 - p)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decode_raw(outputs: list[np.ndarray], input_w: int, input_h: int, conf: float):
    """(box_dfl, person_logit, keypoints_raw) → boxes xyxy (n, 4), scores (n,), keypoints (n, 17, 3) in input pixels."""
    dfl, logit, raw_kpts = (np.asarray(o, dtype=np.float32)[0] for o in outputs)
    keep = np.flatnonzero(logit[0] > _logit(conf))
    if keep.size > MAX_NMS:
        keep = keep[np.argsort(-logit[0, keep], kind="stable")[:MAX_NMS]]
    centres, strides = anchors(input_w, input_h)
    cx, cy, stride = centres[0, keep], centres[1, keep], strides[keep]
    # DFL: each side's distance is the expectation of a softmax over 16 bins.
    bins = dfl[:, keep].reshape(4, BINS, -1)
    bins = np.exp(bins - bins.max(axis=1, keepdims=True))
    dist = (bins * np.arange(BINS, dtype=np.float32)[None, :, None]).sum(axis=1) / bins.sum(axis=1)
    boxes = np.stack([cx - dist[0], cy - dist[1], cx + dist[2], cy + dist[3]], axis=1) * stride[:, None]
    k = raw_kpts[:, keep].reshape(KEYPOINTS, 3, -1)
    kpts = np.empty((keep.size, KEYPOINTS, 3), np.float32)
    kpts[..., 0] = ((k[:, 0] * 2.0 + (cx - 0.5)) * stride).T
    kpts[..., 1] = ((k[:, 1] * 2.0 + (cy - 0.5)) * stride).T
    kpts[..., 2] = _sigmoid(k[:, 2]).T
    return boxes.astype(np.float32), _sigmoid(logit[0, keep]).astype(np.float32), kpts


def decode(outputs: list[np.ndarray], box: Letterbox, image: Decoded, s: ModelSettings, context=None) -> PoseResult:
    """The model's raw outputs for one letterboxed image → its people, in the original image's pixels."""
    boxes, scores, kpts = decode_raw(outputs, box.input_w, box.input_h, s.conf)
    if scores.size == 0:
        return PoseResult.empty(image.width, image.height)
    kept = nms(boxes, scores, s.iou, s.max_det)
    h, w = image.pixels.shape[:2]
    return PoseResult(
        to_original(boxes[kept], box, w, h, image.width, image.height),
        scores[kept],
        points_to_original(kpts[kept], box, w, h, image.width, image.height),
        image.width,
        image.height,
    )
