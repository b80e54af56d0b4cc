"""Raw YOLO maps → objects in original-image pixels (NumPy, float32, whatever precision the model ran in).

Darknet/OpenCV semantics, per cell and anchor: centre = (sigmoid(t) + cell) / grid × input size,
size = exp(t) × anchor, where the anchors stay in input pixels whatever the input size (darknet's
get_yolo_box divides by the network's current width and multiplies it back; OpenCV 4.10's Region
layer divides by the actual input blob's width), so a 416×320 input reuses the 416 anchors
unscaled. Score = sigmoid(objectness) × sigmoid(best class): one label per box, as OpenCV's usual
code and the assignment's answer. NMS is per class: a person standing in front of a car keeps both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...boxes import nms_per_class, to_original
from ...config import ModelSettings
from ...imaging import Decoded
from ...letterbox import Letterbox
from .result import Detections


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def candidates(output: np.ndarray, layer: Any, input_w: int, input_h: int, conf: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One [yolo] map (1, A*(5+C), gh, gw) → xyxy boxes, scores, classes of the anchors scoring > conf.

    Objectness bounds the score (class probabilities ≤ 1), so cells are cut on the objectness
    logit first and only the survivors get their classes and boxes computed.
    """
    a, c = len(layer.anchors), layer.classes
    _, ch, gh, gw = output.shape
    if ch != a * (5 + c):
        raise ValueError(f"{layer.output}: {ch} channels, expected {a * (5 + c)}")
    t = output.reshape(a, 5 + c, gh * gw)
    logit_conf = np.log(conf / (1.0 - conf)) if 0.0 < conf < 1.0 else (-np.inf if conf <= 0 else np.inf)
    anchor, cell = np.nonzero(t[:, 4, :] > logit_conf)
    if anchor.size == 0:
        empty = np.zeros((0,), np.float32)
        return np.zeros((0, 4), np.float32), empty, np.zeros((0,), np.int64)
    sel = t[anchor, :, cell]  # (n, 5 + C)
    cls = np.argmax(sel[:, 5:], axis=1)  # sigmoid is monotonic: argmax on logits
    score = _sigmoid(sel[:, 4]) * _sigmoid(sel[np.arange(cls.size), 5 + cls])
    keep = score > conf
    sel, cls, score, anchor, cell = sel[keep], cls[keep], score[keep], anchor[keep], cell[keep]
    col, row = (cell % gw).astype(np.float32), (cell // gw).astype(np.float32)
    anchors = np.asarray(layer.anchors, np.float32)[anchor]  # (n, 2) input pixels
    cx = (_sigmoid(sel[:, 0]) + col) / gw * input_w
    cy = (_sigmoid(sel[:, 1]) + row) / gh * input_h
    w, h = np.exp(sel[:, 2]) * anchors[:, 0], np.exp(sel[:, 3]) * anchors[:, 1]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    return boxes, score.astype(np.float32), cls.astype(np.int64)


def decode_raw(outputs: Sequence[np.ndarray], layers: Sequence[Any], input_w: int, input_h: int, *,
               conf: float, iou: float, max_det: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw maps of every [yolo] layer → (boxes xyxy float32 (n,4) in input pixels, scores float32 (n,),
    class ids int64 (n,)), score > conf, per-class NMS at `iou`, best first, at most `max_det`.

    `layers` are `darknet.YoloLayer`s (anything with anchors, classes, output), in output order.
    """
    if len(outputs) != len(layers):
        raise ValueError(f"{len(outputs)} outputs for {len(layers)} layers")
    parts = [candidates(np.asarray(o, np.float32), y, input_w, input_h, conf) for o, y in zip(outputs, layers)]
    boxes = np.concatenate([p[0] for p in parts])
    scores = np.concatenate([p[1] for p in parts])
    classes = np.concatenate([p[2] for p in parts])
    keep = nms_per_class(boxes, scores, classes, iou, max_det)
    return boxes[keep], scores[keep], classes[keep]


def decode(outputs: list[np.ndarray], box: Letterbox, image: Decoded, s: ModelSettings, context) -> Detections:
    """The model's raw maps for one letterboxed image → its objects, in the original image's pixels."""
    layers, names = context
    boxes, scores, classes = decode_raw(outputs, layers, box.input_w, box.input_h, conf=s.conf, iou=s.iou, max_det=s.max_det)
    h, w = image.pixels.shape[:2]
    return Detections(to_original(boxes, box, w, h, image.width, image.height), scores, classes, names,
                      image.width, image.height)  # fmt: skip
