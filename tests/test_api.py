"""The HTTP contract over real HTTP against a real server process: forms, answers, errors, concurrency."""

from __future__ import annotations

import base64
import io
import json
import struct
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from PIL import Image

from cloudpose.schema import AnnotateResponse, ErrorResponse
from cloudpose.tasks.pose.schema import PoseJSONResponse

from .conftest import b64, load_images

JSON_PATH = "/api/pose_estimation"
ANNOTATE_PATH = "/api/pose_estimation_annotation"
POSE_KEYS = {"id", "count", "boxes", "keypoints", "speed_preprocess", "speed_inference", "speed_postprocess"}


@pytest.fixture(scope="module")
def people_image():
    """A load-128 photo with several people (000000000785.jpg is a skier; pick the busiest of a few)."""
    return load_images()[5]


def post(client, path, payload, **kw):
    body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    return client.post(path, content=body, headers={"Content-Type": "application/json"}, **kw)


def assert_pose_answer(doc: dict, request_id: str) -> None:
    assert set(doc) == POSE_KEYS
    PoseJSONResponse.model_validate(doc)
    assert doc["id"] == request_id
    assert doc["count"] == len(doc["boxes"]) == len(doc["keypoints"])
    probs = [b["probability"] for b in doc["boxes"]]
    assert probs == sorted(probs, reverse=True)
    assert all(0 <= p <= 1 for p in probs)
    for person in doc["keypoints"]:
        assert len(person) == 17 and all(len(k) == 3 and 0 <= k[2] <= 1 for k in person)
    assert doc["speed_inference"] > 0 and doc["speed_preprocess"] > 0 and doc["speed_postprocess"] >= 0


def test_pose_json_matches_the_library(client, model, people_image):
    from cloudpose.imaging import decode

    rid = str(uuid.uuid4())
    r = post(client, JSON_PATH, {"id": rid, "image": b64(people_image)})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert_pose_answer(doc, rid)
    assert r.headers["X-Served-By"] and "inference;dur=" in r.headers["Server-Timing"]
    assert r.headers["X-Model"] == model.name
    local = model(decode(people_image.read_bytes(), max_pixels=10**9, min_side=640))
    assert doc["count"] == local.count > 0
    got = np.array([[b["x"], b["y"], b["x"] + b["width"], b["y"] + b["height"]] for b in doc["boxes"]])
    assert np.abs(got - local.boxes).max() < 0.5  # same model; OpenVINO static and dynamic shapes differ in the last bits
    h, w = cv2.imread(str(people_image)).shape[:2]
    assert (got[:, [0, 2]] <= w).all() and (got[:, [1, 3]] <= h).all() and (got >= 0).all()


@pytest.mark.parametrize("path", [JSON_PATH, "/function/pose-json"])
def test_double_encoded_body_is_accepted(client, people_image, path):
    """The course client posts json=json.dumps(data): the body is a JSON string holding the object."""
    body = json.dumps(json.dumps({"id": "twice", "image": b64(people_image)}))
    r = post(client, path, body)
    assert r.status_code == 200, r.text
    assert_pose_answer(r.json(), "twice")


def test_lenient_forms(client, people_image):
    data = people_image.read_bytes()
    wrapped = base64.encodebytes(data).decode()  # line breaks every 76 characters, as `base64` prints
    for image in (f"data:image/jpeg;base64,{b64(data)}", wrapped, b64(data).rstrip("=")):
        r = post(client, JSON_PATH, {"id": 7, "image": image})
        assert r.status_code == 200, r.text
        assert r.json()["id"] == "7"


def test_batch_answers_in_order(client):
    files = load_images()[:3]
    payload = {"images": [{"id": "a", "image": b64(files[0])}, b64(files[1]), {"id": "c", "image": b64(files[2])}]}
    r = post(client, JSON_PATH, payload)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["id"] for x in results] == ["a", "1", "c"]
    for x in results:
        assert_pose_answer(x, x["id"])
    singles = [post(client, JSON_PATH, {"id": "s", "image": b64(f)}).json()["count"] for f in files]
    assert [x["count"] for x in results] == singles
    bare = post(client, JSON_PATH, [b64(files[0])])
    assert bare.status_code == 200 and bare.json()["results"][0]["count"] == singles[0]


def test_annotate_draws_where_people_are(client, people_image):
    r = post(client, ANNOTATE_PATH, {"id": "ann", "image": b64(people_image)})
    assert r.status_code == 200, r.text
    doc = r.json()
    AnnotateResponse.model_validate(doc)
    assert set(doc) == {"id", "image"} and doc["id"] == "ann"
    out = cv2.imdecode(np.frombuffer(base64.b64decode(doc["image"]), np.uint8), cv2.IMREAD_COLOR)
    src = cv2.imread(str(people_image))
    assert out is not None and out.shape == src.shape
    boxes = post(client, JSON_PATH, {"id": "j", "image": b64(people_image)}).json()["boxes"]
    diff = np.abs(out.astype(int) - src.astype(int)).max(axis=2)
    b = boxes[0]
    x1, y1, x2, y2 = int(b["x"]), int(b["y"]), int(b["x"] + b["width"]), int(b["y"] + b["height"])
    inside = diff[max(y1 - 3, 0) : y2 + 3, max(x1 - 3, 0) : x2 + 3]
    assert (inside > 80).sum() > 50, "no drawing inside the top person's box"


def test_annotate_leaves_an_empty_scene_alone(client):
    """Where nobody is found, the annotated image is the input re-encoded, nothing drawn."""
    for path in load_images()[:40]:
        if post(client, JSON_PATH, {"id": "e", "image": b64(path)}).json()["count"] == 0:
            break
    else:
        pytest.fail("no image without people among the first 40")
    doc = post(client, ANNOTATE_PATH, {"id": "e", "image": b64(path)}).json()
    out = cv2.imdecode(np.frombuffer(base64.b64decode(doc["image"]), np.uint8), cv2.IMREAD_COLOR)
    ok, same = cv2.imencode(".jpg", cv2.imread(str(path)), [cv2.IMWRITE_JPEG_QUALITY, 90])
    reencoded = cv2.imdecode(same, cv2.IMREAD_COLOR)
    changed = int((np.abs(out.astype(int) - reencoded.astype(int)) > 8).sum())
    assert changed == 0, f"{changed} pixel channels changed in an image without people"


def _png(width: int, height: int, color_type: int, pixels: bytes) -> bytes:
    """A PNG file from its header fields and its already-deflated pixel data (one IDAT chunk)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height, with one tiny (invalid for that size) data chunk."""
    return _png(width, height, 2, zlib.compress(b"\0" * 64))


def _jpeg(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (120, 120, 120)).save(buf, "JPEG", quality=50)
    return buf.getvalue()


BAD_INPUTS = {
    "malformed json": (b'{"id": "x", "image": ', 400, "invalid_json"),
    "empty body": (b"", 400, "invalid_json"),
    "json string that is not json": (json.dumps("not json at all"), 400, "invalid_json"),
    "not an object": (b"42", 400, "invalid_request"),
    "missing id": ({"image": "aGVsbG8="}, 400, "invalid_request"),
    "empty id": ({"id": "", "image": "aGVsbG8="}, 400, "invalid_request"),
    "id of the wrong type": ({"id": ["x"], "image": "aGVsbG8="}, 400, "invalid_request"),
    "missing image": ({"id": "x"}, 400, "invalid_request"),
    "empty image": ({"id": "x", "image": ""}, 400, "invalid_request"),
    "invalid base64": ({"id": "x", "image": "this is *not* base64!"}, 400, "invalid_base64"),
    "text, not an image": ({"id": "x", "image": b64(b"hello, I am a text file\n" * 20)}, 400, "not_an_image"),
    "truncated jpeg": ({"id": "x", "image": b64(_jpeg(64, 64)[:200])}, 400, "not_an_image"),
    "zero-size image": ({"id": "x", "image": b64(_png_header(0, 10))}, 400, "empty_image"),
    "header claims 400 MP": ({"id": "x", "image": b64(_png_header(20000, 20000))}, 413, "image_too_large"),
    "a bare 60000×60000 PNG header": ({"id": "x", "image": b64(_png_header(60000, 60000)[:33])}, 413, "image_too_large"),
    "a bare small PNG header": ({"id": "x", "image": b64(_png_header(64, 64)[:33])}, 400, "not_an_image"),
    "real 48 MP jpeg": ({"id": "x", "image": b64(_jpeg(8000, 6000))}, 413, "image_too_large"),
    "body over 10 MB": ({"id": "x", "image": "A" * (11 * 1024 * 1024)}, 413, "body_too_large"),
    "empty batch": ({"images": []}, 400, "batch_empty"),
    "batch over the limit": ({"images": ["aGVsbG8="] * 17}, 413, "batch_too_large"),
    "batch with a bad item": ({"images": [{"id": "ok", "image": "aGVsbG8="}, {"id": ""}]}, 400, "invalid_request"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_gets_a_clear_4xx_and_the_next_request_works(client, people_image, name):
    payload, status, code = BAD_INPUTS[name]
    r = post(client, JSON_PATH, payload)
    assert r.status_code == status, r.text
    err = ErrorResponse.model_validate(r.json())
    assert err.error.code == code and len(err.error.message) > 10
    if code in ("invalid_base64", "not_an_image", "empty_image", "image_too_large"):
        assert r.json()["id"] == "x", "errors about one image name its request id"
    ok = post(client, JSON_PATH, {"id": "after", "image": b64(people_image)})
    assert ok.status_code == 200 and ok.json()["id"] == "after"


def _deflated_zero_rows(side: int) -> bytes:
    """side rows of side grey zero pixels (each behind its filter byte), deflated: a few hundred KB."""
    row, deflate = b"\0" + bytes(side), zlib.compressobj(9)
    return b"".join(deflate.compress(row) for _ in range(side)) + deflate.flush()


def test_pixel_limit_is_checked_before_decoding(server, client):
    """A real 400 MP decompression bomb (1.2 GB once decoded) is refused from its header: the server never grows."""
    pixels = _deflated_zero_rows(20000)
    bomb = _png(20000, 20000, 0, pixels)
    inflate, inflated, rest = zlib.decompressobj(), 0, pixels
    while rest:  # inflated 16 MiB at a time, to check the bomb is complete without holding 400 MB
        inflated += len(inflate.decompress(rest, 1 << 24))
        rest = inflate.unconsumed_tail
    assert inflated == 20000 * 20001 and len(bomb) < 2_000_000, "the bomb is a complete image that fits the body limit"
    before = server.peak_rss_mib()
    r = post(client, JSON_PATH, {"id": "bomb", "image": b64(bomb)})
    assert r.status_code == 413 and "400.0 MP" in r.json()["error"]["message"]
    assert server.peak_rss_mib() - before < 100, "the server decoded (part of) the bomb before refusing it"


def test_errors_for_unknown_routes_and_methods_are_json(client):
    r = client.get("/nowhere")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.get(JSON_PATH)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_health_ready_and_docs(client):
    assert client.get("/_/health").json()["status"] == "ok"
    ready = client.get("/_/ready").json()
    assert ready["status"] == "ready" and ready["model"]["backend"] in ("onnxruntime", "openvino")
    assert ready["limits"]["max_body_bytes"] == 10 * 1024 * 1024 and ready["limits"]["max_pixels"] == 40_000_000
    spec = client.get("/openapi.json").json()
    for path in (JSON_PATH, ANNOTATE_PATH, "/function/pose-json", "/function/pose-annotate"):
        assert "post" in spec["paths"][path]
    assert "ImageRequest" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_32_concurrent_requests_all_succeed_with_their_ids(client):
    files = load_images()[:32]
    ids = [str(uuid.uuid4()) for _ in files]

    def one(pair):
        rid, path = pair
        return rid, post(client, JSON_PATH if hash(rid) % 2 else ANNOTATE_PATH, {"id": rid, "image": b64(path)})

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(one, zip(ids, files)))
    for rid, r in answers:
        assert r.status_code == 200, r.text
        assert r.json()["id"] == rid
