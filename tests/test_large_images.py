"""A 12 MP phone-sized photo is served correctly (decoded at reduced scale, reported in its own pixels)."""

from __future__ import annotations

import json

import cv2
import numpy as np

from .conftest import b64, load_images


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    return float(inter / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter))


def _people(client, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    r = client.post("/api/pose_estimation", content=json.dumps({"id": "big", "image": b64(data)}))
    assert r.status_code == 200, r.text
    doc = r.json()
    boxes = np.array([[b["x"], b["y"], b["x"] + b["width"], b["y"] + b["height"]] for b in doc["boxes"]]).reshape(-1, 4)
    return boxes, np.array(doc["keypoints"]).reshape(-1, 17, 3)


def test_12_megapixel_photo_matches_its_640_pixel_original(client):
    src_path = load_images()[5]
    src = cv2.imread(str(src_path))
    scale = 4032 / src.shape[1]
    big = cv2.resize(src, (4032, round(src.shape[0] * scale)), interpolation=cv2.INTER_CUBIC)
    ok, big_jpeg = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert big.shape[0] * big.shape[1] > 10e6
    small_boxes, small_kpts = _people(client, src_path.read_bytes())
    big_boxes, big_kpts = _people(client, big_jpeg.tobytes())
    assert len(big_boxes) == len(small_boxes) >= 1
    assert (big_boxes[:, [0, 2]] <= big.shape[1]).all() and big_boxes.max() > src.shape[1], "coordinates in 12 MP pixels"
    for a, b, ka, kb in zip(big_boxes / scale, small_boxes, big_kpts, small_kpts):
        assert _iou(a, b) > 0.9
        seen = (ka[:, 2] > 0.5) & (kb[:, 2] > 0.5)
        size = max(b[2] - b[0], b[3] - b[1])
        assert np.abs(ka[seen, :2] / scale - kb[seen, :2]).max() < 0.05 * size
