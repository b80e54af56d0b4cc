"""Build time only: turn a task's exported ONNX model into the faster serving variants.

- OpenVINO IR (`<stem>.xml`): read faster than ONNX; serves fp32 and bf16 (the precision is a
  compile-time hint, so one file serves both).
- OpenVINO int8 (`<stem>.int8.xml`): NNCF post-training quantisation, MIXED preset, calibrated
  on load-128 through the task's own input path; the task's `float_scope["nncf"]` stays float, and
  so do the ops of SiLU (`FLOAT_TYPES`): left to itself NNCF puts a FakeQuantize between a SiLU's
  Sigmoid and its Multiply, which keeps OpenVINO from fusing x·sigmoid(x) into the int8
  convolution before it. Each SiLU then ran as three float32 passes over its activation map: on an
  AVX2 EPYC 36 of pose's 108 ms, more than all 62 int8 convolutions (30 ms; `python -m bench.kernels`).
- ONNX Runtime int8 (`<stem>.int8.onnx`): static QDQ, u8 activations × s8 weights with
  `reduce_range` (7-bit weights: no saturation on AVX2 CPUs without VNNI), per-channel; nodes
  matching `float_scope["onnxruntime"]` stay fp32.
Both quantisers run the raw exported model, so calibration feeds them that model's own input: the
NCHW float32 RGB tensor of the letterboxed photo, exactly what `to_tensor` gives the ORT backend.
Each output's stamp holds the sha256 of the model it was made from, the tool versions, the
calibration set and a digest of the code on the input path (decode, letterbox, this module).
"""

from __future__ import annotations

import logging
import re
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from . import imaging, letterbox
from . import prepare as build
from .tasks.base import Task
from .variants import SUFFIXES

log = logging.getLogger("cloudpose.optimize")

FLOAT_TYPES = ["Sigmoid", "Multiply"]  # NNCF keeps these float: SiLU stays whole and fuses into the int8 conv


def calibration_tensors(task: Task, images: list[Path]) -> Iterator[np.ndarray]:
    """The quantised model's real inputs for a folder of photos: the task's letterbox, as served, as NCHW float."""
    spec = task.model
    for path in images:
        pixels = imaging.decode(path.read_bytes(), max_pixels=10**9, min_side=spec.imgsz).pixels
        letterboxed, _ = letterbox.prepare(pixels, spec.imgsz, stretch=spec.stretch)
        yield letterbox.to_tensor(letterboxed)


def _input_stamp(task: Task, onnx_path: Path, images: list[Path]) -> dict:
    spec = task.model
    return {
        "from": onnx_path.name,
        "from_sha256": build.sha256(onnx_path),
        "calibration": [(p.name, p.stat().st_size) for p in images],
        "imgsz": spec.imgsz,
        "stretch": spec.stretch,
        "code": build.code_digest(imaging, letterbox, sys.modules[__name__]),
    }


def openvino_ir(onnx_path: Path, target: Path) -> Path:
    import openvino as ov

    stamp = {"from": onnx_path.name, "from_sha256": build.sha256(onnx_path), "openvino": ov.__version__}
    if build.fresh(target, stamp):
        return target
    with build.replacing(target) as part:
        ov.save_model(ov.convert_model(str(onnx_path)), str(part), compress_to_fp16=False)
    build.write_stamp(target, stamp)
    log.info("wrote %s", target)
    return target


def openvino_int8(task: Task, onnx_path: Path, images: list[Path], target: Path) -> Path:
    import nncf
    import openvino as ov

    scope = task.model.float_scope.get("nncf")
    stamp = {**_input_stamp(task, onnx_path, images), "openvino": ov.__version__, "nncf": nncf.__version__, "float": scope,
             "float_types": FLOAT_TYPES}  # fmt: skip
    if build.fresh(target, stamp):
        return target
    model = ov.Core().read_model(str(onnx_path))
    quantized = nncf.quantize(
        model,
        nncf.Dataset(list(calibration_tensors(task, images))),
        preset=nncf.QuantizationPreset.MIXED,  # PERFORMANCE (symmetric activations) cost pose ~9 AP
        subset_size=len(images),
        ignored_scope=nncf.IgnoredScope(patterns=[scope] if scope else [], types=FLOAT_TYPES, validate=False),
    )
    with build.replacing(target) as part:
        ov.save_model(quantized, str(part), compress_to_fp16=False)
    build.write_stamp(target, stamp)
    log.info("wrote %s", target)
    return target


def onnxruntime_int8(task: Task, onnx_path: Path, images: list[Path], target: Path) -> Path:
    import onnx
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    scope = task.model.float_scope.get("onnxruntime")
    stamp = {**_input_stamp(task, onnx_path, images), "onnxruntime": onnxruntime.__version__, "reduce_range": True,
             "float": scope}  # fmt: skip
    if build.fresh(target, stamp):
        return target
    input_name = onnx.load(str(onnx_path), load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.tensors = calibration_tensors(task, images)

        def get_next(self) -> dict | None:
            tensor = next(self.tensors, None)
            return None if tensor is None else {input_name: tensor}

    with tempfile.TemporaryDirectory(dir=target.parent) as work:  # beside the target: the rename is atomic
        pre = Path(work) / "pre.onnx"
        quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=True)  # symbolic fails on dynamic axes
        graph = onnx.load(str(pre)).graph
        keep_float = [n.name for n in graph.node if scope and re.match(scope, n.name)]
        quantize_static(
            str(pre),
            str(Path(work) / "int8.onnx"),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=keep_float,
            calibrate_method=CalibrationMethod.MinMax,
        )
        (Path(work) / "int8.onnx").replace(target)
    build.write_stamp(target, stamp)
    log.info("wrote %s (%d nodes kept fp32)", target, len(keep_float))
    return target


def variants(task: Task, onnx_path: Path, model_dir: Path) -> list[Path]:
    """The OpenVINO IR and both int8 variants of `task` beside its ONNX model (int8 needs the calibration photos)."""
    stem = task.model.stem
    out = [openvino_ir(onnx_path, model_dir / f"{stem}{SUFFIXES[('openvino', 'fp32')]}")]
    images = build.calibration_images()
    if not images:
        log.warning("no calibration photos (set CLOUDPOSE_DATA to the shared data folder): %s int8 variants skipped", task.name)
        return out
    out.append(openvino_int8(task, onnx_path, images, model_dir / f"{stem}{SUFFIXES[('openvino', 'int8')]}"))
    out.append(onnxruntime_int8(task, onnx_path, images, model_dir / f"{stem}{SUFFIXES[('onnxruntime', 'int8')]}"))
    return out
