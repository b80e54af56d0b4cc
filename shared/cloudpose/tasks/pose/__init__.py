"""Human pose estimation: YOLO11n-pose (17 COCO keypoints per person), exported from the official weights.

The pieces (one module each): `prepare` (build time: weights, export, variants), `decode` (raw head
maps → PoseResult), `result` (PoseResult and its JSON), `draw` (the annotated JPEG), `schema`
(pose-json's answer), `reference` (Ultralytics + torch, for parity and the baseline only).
"""

from __future__ import annotations

from ..base import ModelSpec, Task
from . import decode as decoding

# The variant each CPU class serves: the fastest whose keypoint AP stays within 1 point of torch's
# (ort-fp32-640) on the 111-image COCO set measured on an AMD EPYC with AVX-512 BF16/VNNI, December 2026
# (docs/benchmarks-elsewhere.md). Only 640-input variants qualify there: 512 inputs lost 3.2 and 7.7 AP,
# ort-int8-640 1.4, which the 32-image dev set cannot show. Speeds: docs/benchmarks.md.
CHOICES = {
    "amx": ("ov-bf16-640", "native bf16 on AMX: OpenVINO at 640, full accuracy (42.2 AP vs torch's 42.1 on the 111-image set); "
            "the fastest 640 variant on a Xeon with AMX (3.3x torch, November 2026)"),
    "avx512_bf16": ("ov-bf16-640", "native bf16 (AVX-512 BF16): OpenVINO at 640, full accuracy (42.2 AP vs 42.1 on the 111-image set)"),
    "avx512_vnni": ("ov-int8-640", "VNNI int8: OpenVINO NNCF int8 at 640, full accuracy (42.3 AP vs 42.1 on the 111-image set)"),
    "avx2": ("ov-int8-640", "AVX2 only: the fastest 640 variant at full accuracy here (1.77x torch, paired, in a 0.5-CPU pod "
             "against ort-fp32-640's 1.58x, AMD EPYC, 2 December 2026); its int8 kernels compute ideal int8 (bench.int8_fidelity)"),
    "arm": ("ort-fp32-640", "ARM: ONNX Runtime fp32 (its kernels are tuned for NEON)"),
    "generic": ("ort-fp32-640", "no AVX2: ONNX Runtime fp32 runs anywhere"),
}

TASK = Task(
    name="pose",
    prefix="POSE",
    model=ModelSpec(
        stem="yolo11n-pose",
        outputs=decoding.OUTPUTS,
        imgsz=640,
        decode=decoding.decode,
        choices=CHOICES,
        fallback="ort-fp32-640",
        prepare="cloudpose.tasks.pose.prepare:prepare",
        # The head's convolutions stay float in NNCF; ONNX Runtime quantises the box and score
        # convolutions (cv2, cv3) and keeps the keypoint branch (cv4): quantising it cost AP.
        float_scope={"nncf": r"/model\.23/.*", "onnxruntime": r"/model\.23/(?!cv[23]\.\d+/.*Conv)"},
        # In a bf16 body, the head's last convolutions (box, score, keypoint maps) and the reshapes and
        # concats after them stay float32: their outputs are what decode.py turns into pixels, and 8
        # significant bits there would put keypoints on 0.1–0.5 pixel steps.
        f32_scope=r"/model\.23/cv[234]\.\d/cv[234]\.\d\.2/Conv|/model\.23/(Reshape|Concat)|^output/",
        defaults={"conf": 0.25, "iou": 0.7, "max_det": 300},
        references={"ultralytics": ("cloudpose.tasks.pose.reference:UltralyticsPose", ".pt")},
    ),
)
