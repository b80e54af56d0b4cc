"""Image → model input: letterbox (resize keeping aspect, pad with grey 114) → NCHW float32 RGB in 0–1.

Task-independent: every task places its image with a `Letterbox` and undoes it with `boxes.to_original`.
The last step is the backend's (`Model.to_input`): OpenVINO takes the uint8 letterbox as it is
and does the conversion inside the compiled graph, where it folds into the first convolution.
A task trained on stretched inputs (darknet's yolov3-tiny as OpenCV feeds it) asks for `stretch`:
the image is resized to the input shape without keeping its aspect, and nothing is padded.

The default (rect) letterbox pads only to the next multiple of the stride, as Ultralytics'
predict does for a PyTorch model: a 640×427 photo runs as 640×448, not 640×640 (about 30% less
compute, same AP). A backend that compiles one model per input shape (OpenVINO: each costs memory
that is never returned) gets a fixed set of `shapes` instead: the image is centred in the smallest
one it fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114
STRIDE = 32


@dataclass(frozen=True, slots=True)
class Letterbox:
    """Where the image sits inside the model input: per-axis gain and the top-left padding."""

    gain_x: float
    gain_y: float
    pad_x: int
    pad_y: int
    input_w: int
    input_h: int


Shape = tuple[int, int]  # (width, height) of a model input


def plan(
    width: int, height: int, imgsz: int, *, shapes: tuple[Shape, ...] | None = None, stretch: bool = False
) -> Letterbox:
    """Compute the letterbox for a `width`×`height` image so the long side becomes `imgsz`.

    Without `shapes`, the input is the minimal stride-32 rectangle; with them, the smallest of
    `shapes` (by area) that holds the resized image (imgsz×imgsz must be among them).
    `stretch`: the image fills imgsz×imgsz exactly (per-axis gains, no padding).
    """
    if stretch:
        return Letterbox(imgsz / width, imgsz / height, 0, 0, imgsz, imgsz)
    r = min(imgsz / height, imgsz / width)
    new_w, new_h = max(round(width * r), 1), max(round(height * r), 1)
    if shapes:
        in_w, in_h = min((s for s in shapes if s[0] >= new_w and s[1] >= new_h), key=lambda s: s[0] * s[1])
    else:  # imgsz is a multiple of the stride, so capping at imgsz keeps the input a multiple too
        in_w, in_h = min(imgsz, _ceil_to(new_w, STRIDE)), min(imgsz, _ceil_to(new_h, STRIDE))
    dw, dh = (in_w - new_w) / 2, (in_h - new_h) / 2
    return Letterbox(
        gain_x=new_w / width,
        gain_y=new_h / height,
        pad_x=round(dw - 0.1),
        pad_y=round(dh - 0.1),
        input_w=in_w,
        input_h=in_h,
    )


def _ceil_to(value: int, step: int) -> int:
    return -(-value // step) * step


def letterbox(img: np.ndarray, box: Letterbox) -> np.ndarray:
    """Resize and pad `img` (HxWx3 uint8) to the planned input size."""
    h, w = img.shape[:2]
    new_w, new_h = max(round(w * box.gain_x), 1), max(round(h * box.gain_y), 1)
    if (new_w, new_h) != (w, h):
        img = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    right = box.input_w - new_w - box.pad_x
    bottom = box.input_h - new_h - box.pad_y
    if box.pad_x or box.pad_y or right or bottom:
        img = cv2.copyMakeBorder(img, box.pad_y, bottom, box.pad_x, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return img


def to_tensor(img: np.ndarray) -> np.ndarray:
    """HxWx3 BGR uint8 → 1x3xHxW RGB float32 in 0–1, in one pass inside OpenCV."""
    return cv2.dnn.blobFromImage(img, scalefactor=1 / 255.0, swapRB=True)


def prepare(
    img: np.ndarray, imgsz: int, *, shapes: tuple[Shape, ...] | None = None, stretch: bool = False
) -> tuple[np.ndarray, Letterbox]:
    """Letterboxed HxWx3 BGR uint8 (what each backend turns into its own input) and where the image sits."""
    box = plan(img.shape[1], img.shape[0], imgsz, shapes=shapes, stretch=stretch)
    return letterbox(img, box), box
