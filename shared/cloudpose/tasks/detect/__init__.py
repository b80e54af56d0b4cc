"""Object detection: the official yolov3-tiny darknet weights (80 COCO classes), the CloudDetect assignment's model.

The pieces (one module each): `files` (the official files, verified), `darknet` (cfg + weights →
ONNX), `prepare` (build time: conversion, variants), `decode` (raw YOLO maps → Detections),
`result` (Detections and detect-json's answer), `draw` (the annotated JPEG), `schema` (the answer's
contract).
"""

from __future__ import annotations

from ..base import ModelSpec, Task
from . import decode as decoding
from .prepare import load_context

# The convolutions that produce the two [yolo] maps (linear, 255 channels): what decoding reads.
HEADS = r"^l(15|22)_convolutional$"

# The variant each CPU class serves: float32, the answers of the OpenCV 4.10 reference. int8 is faster
# (ov-int8-416: 2.4–3.1x the peer in a 0.5-CPU pod against fp32's 1.8–2.0x, AMD EPYC with AVX2, 1–2 December 2026) but
# moves yolov3-tiny's answers far more than it moves pose's: scored against fp32's answers on 160 photos it
# reaches 74 box AP (pose int8: 93 keypoint AP; bench.int8_fidelity), and there is no larger labelled set to
# show what that costs. It stays a choice: DETECT_VARIANT=ov-int8-416. Speeds: docs/benchmarks.md.
FP32 = ("ort-fp32-416", "ONNX Runtime fp32 at 416: the OpenCV 4.10 reference's answers (1.8–2.0x the peer in a 0.5-CPU pod, AMD EPYC with AVX2, December 2026)")
CHOICES = {klass: FP32 for klass in ("amx", "avx512_bf16", "avx512_vnni", "avx2", "arm", "generic")}

TASK = Task(
    name="detect",
    prefix="DETECT",
    model=ModelSpec(
        stem="yolov3-tiny",
        outputs=("yolo_0", "yolo_1"),  # the raw maps of the two [yolo] layers, as darknet.py names them
        imgsz=416,
        decode=decoding.decode,
        choices=CHOICES,
        fallback="ort-fp32-416",
        prepare="cloudpose.tasks.detect.prepare:prepare",
        # Letterboxed (keep aspect, pad to the minimal stride-32 rectangle), not stretched as OpenCV's
        # blobFromImage does: +9 person AP at conf 0.25 on coco-pose-dev (bench/detect_masks.py).
        stretch=False,
        float_scope={"nncf": HEADS, "onnxruntime": HEADS},
        f32_scope=HEADS + r"|^yolo_",
        # conf 0.25: the serving threshold; NMS 0.45 per class: darknet's own default.
        defaults={"conf": 0.25, "iou": 0.45, "max_det": 100},
        context=load_context,
    ),
)
