"""Build time only: turn the exported ONNX model into the faster serving variants.

- OpenVINO IR (`yolo11n-pose.xml`): read faster than ONNX; serves fp32 and bf16 (the precision is a
  compile-time hint, so one file serves both).
- OpenVINO int8 (`yolo11n-pose.int8.xml`): NNCF post-training quantisation, MIXED preset,
  calibrated on load-128. The pose head (`model.23`: box/keypoint decoding and the final concat)
  stays in float: quantising it puts pixels and 0–1 scores under one scale and costs AP.
- ONNX Runtime int8 (`yolo11n-pose.int8.onnx`): static QDQ, u8 activations × s8 weights with
  `reduce_range` (7-bit weights: no saturation on AVX2 CPUs without VNNI), per-channel, and the
  keypoint branch (`cv4`) and every decode op of the head kept fp32.
Each output records what it was made from (a .json stamp), so reruns are no-ops.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from .imaging import decode
from .preprocess import prepare, to_tensor

log = logging.getLogger("cloudpose.optimize")

HEAD = "/model.23/"  # the Pose head of YOLO11n-pose in Ultralytics' ONNX export
CALIBRATION_IMGSZ = 640


def calibration_tensors(images: list[Path], imgsz: int = CALIBRATION_IMGSZ) -> Iterator[np.ndarray]:
    """The input of the model being quantised (NCHW float32 RGB 0–1 of the rect letterbox, as served).

    Not the uint8 letterbox the serving backends take: both quantisers run the raw exported model.
    """
    for path in images:
        yield to_tensor(prepare(decode(path.read_bytes(), max_pixels=10**9, min_side=imgsz).pixels, imgsz)[0])


def _fresh(target: Path, stamp: dict) -> bool:
    try:
        return target.exists() and json.loads(Path(f"{target}.json").read_text()) == stamp
    except (OSError, ValueError):
        return False


def _stamp(target: Path, stamp: dict) -> None:
    Path(f"{target}.json").write_text(json.dumps(stamp, sort_keys=True))


def openvino_ir(onnx_path: Path, target: Path) -> Path:
    import openvino as ov

    stamp = {"from": onnx_path.name, "size": onnx_path.stat().st_size, "openvino": ov.__version__}
    if _fresh(target, stamp):
        return target
    ov.save_model(ov.convert_model(str(onnx_path)), str(target), compress_to_fp16=False)
    _stamp(target, stamp)
    log.info("wrote %s", target)
    return target


def openvino_int8(onnx_path: Path, images: list[Path], target: Path) -> Path:
    import nncf
    import openvino as ov

    stamp = {"from": onnx_path.name, "size": onnx_path.stat().st_size, "calibration": len(images),
             "openvino": ov.__version__, "nncf": nncf.__version__, "ignored": HEAD}  # fmt: skip
    if _fresh(target, stamp):
        return target
    model = ov.Core().read_model(str(onnx_path))
    quantized = nncf.quantize(
        model,
        nncf.Dataset(list(calibration_tensors(images))),
        preset=nncf.QuantizationPreset.MIXED,  # PERFORMANCE (symmetric activations) costs ~9 AP here
        subset_size=len(images),
        ignored_scope=nncf.IgnoredScope(patterns=[re.escape(HEAD) + ".*"]),
    )
    ov.save_model(quantized, str(target), compress_to_fp16=False)
    _stamp(target, stamp)
    log.info("wrote %s", target)
    return target


def onnxruntime_int8(onnx_path: Path, images: list[Path], target: Path) -> Path:
    import onnx
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    stamp = {"from": onnx_path.name, "size": onnx_path.stat().st_size, "calibration": len(images),
             "onnxruntime": onnxruntime.__version__, "reduce_range": True}  # fmt: skip
    if _fresh(target, stamp):
        return target

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.tensors = calibration_tensors(images)

        def get_next(self) -> dict | None:
            tensor = next(self.tensors, None)
            return None if tensor is None else {"images": tensor}

    with tempfile.TemporaryDirectory() as work:
        pre = Path(work) / "pre.onnx"
        quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=True)  # symbolic fails on dynamic axes
        graph = onnx.load(str(pre)).graph
        keep_float = [n.name for n in graph.node if n.name.startswith(HEAD) and not _is_box_branch(n.name)]
        quantize_static(
            str(pre),
            str(target),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=keep_float,
            calibrate_method=CalibrationMethod.MinMax,
        )
    _stamp(target, stamp)
    log.info("wrote %s (%d head nodes kept fp32)", target, len(keep_float))
    return target


def _is_box_branch(name: str) -> bool:
    """The box (cv2) and class (cv3) convolutions of the head quantise fine; the rest of the head does not."""
    return bool(re.match(re.escape(HEAD) + r"cv[23]\.\d+/.*Conv", name))
