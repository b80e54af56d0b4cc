"""The JPEG renderer: boxes, the 17 COCO keypoints and the skeleton, drawn with OpenCV (no fonts to download)."""

from __future__ import annotations

import cv2
import numpy as np

from .result import PoseResult

# COCO skeleton as keypoint index pairs (0 nose … 16 right ankle), coloured by body part.
SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12),  # legs and hips
    (5, 11), (6, 12), (5, 6),  # torso
    (5, 7), (6, 8), (7, 9), (8, 10),  # arms
    (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),  # head
)  # fmt: skip
_LIMB_COLOURS = [(255, 128, 0)] * 5 + [(255, 51, 255)] * 3 + [(51, 153, 255)] * 4 + [(0, 255, 0)] * 7  # BGR
_POINT_COLOURS = [(0, 255, 0)] * 5 + [(51, 153, 255)] * 6 + [(255, 128, 0)] * 6
_BOX_COLOUR = (56, 56, 255)
VISIBLE = 0.5  # keypoints below this probability are not drawn (as Ultralytics' plot)


def draw(image: np.ndarray, result: PoseResult) -> np.ndarray:
    """A copy of `image` (BGR, any scale of the original) with every person drawn on it."""
    out = image.copy()
    h, w = out.shape[:2]
    sx, sy = w / result.width, h / result.height  # the image may be a reduced decode of the original
    thick = max(1, round(max(h, w) / 400))
    radius = max(2, thick + 1)
    for box, score, kpts in zip(result.boxes, result.scores, result.keypoints):
        x1, y1, x2, y2 = (int(round(v)) for v in (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy))
        cv2.rectangle(out, (x1, y1), (x2, y2), _BOX_COLOUR, thick, cv2.LINE_AA)
        label = f"person {score:.2f}"
        scale = thick / 3
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        top = max(y1 - th - base, 0)
        cv2.rectangle(out, (x1, top), (x1 + tw, top + th + base), _BOX_COLOUR, -1)
        cv2.putText(out, label, (x1, top + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
        pts = [(int(round(x * sx)), int(round(y * sy)), p) for x, y, p in kpts]
        for (a, b), colour in zip(SKELETON, _LIMB_COLOURS):
            if pts[a][2] >= VISIBLE and pts[b][2] >= VISIBLE:
                cv2.line(out, pts[a][:2], pts[b][:2], colour, thick, cv2.LINE_AA)
        for (x, y, p), colour in zip(pts, _POINT_COLOURS):
            if p >= VISIBLE:
                cv2.circle(out, (x, y), radius, colour, -1, cv2.LINE_AA)
    return out
