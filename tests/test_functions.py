"""Each function folder runs on its own, as its image does: `python handler.py` serving POST / on $PORT."""

from __future__ import annotations

import base64

import cv2
import httpx
import numpy as np
import pytest

from .conftest import ROOT, Server, b64, load_images


@pytest.mark.parametrize("name", ["pose-json", "pose-annotate"])
def test_function_serves_its_own_root(name):
    folder = ROOT / "functions" / name
    server = Server(["handler.py"], cwd=folder)
    try:
        image = load_images()[5]
        with httpx.Client(base_url=server.url, timeout=60) as client:
            r = client.post("/", json={"id": "fn", "image": b64(image)})
            assert r.status_code == 200, r.text
            doc = r.json()
            assert doc["id"] == "fn"
            if name == "pose-json":
                assert doc["count"] >= 1 and "speed_inference" in doc
            else:
                out = cv2.imdecode(np.frombuffer(base64.b64decode(doc["image"]), np.uint8), cv2.IMREAD_COLOR)
                assert out.shape == cv2.imread(str(image)).shape
            assert client.post(f"/function/{name}", json={"id": "gw", "image": b64(image)}).status_code == 200
            assert client.get("/_/health").status_code == 200
            other = "pose-annotate" if name == "pose-json" else "pose-json"
            assert client.post(f"/function/{other}", json={}).status_code == 404
    finally:
        server.stop()
