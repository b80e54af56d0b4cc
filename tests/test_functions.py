"""Each function folder runs on its own, as its image does: `python handler.py` serving POST / on $PORT."""

from __future__ import annotations

import base64

import cv2
import httpx
import numpy as np
import pytest

from cloudpose.deployment import FUNCTION_NAMES
from cloudpose.functions import FUNCTIONS

from .conftest import ROOT, Server, b64, load_images


def check_answer(name: str, doc: dict, image) -> None:
    """What each function's answer must hold for a photo with a person in it."""
    if name == "pose-json":
        assert doc["count"] >= 1 and "speed_inference" in doc
    elif name == "detect-json":
        assert "person" in [o["label"] for o in doc["objects"]] and "speed_inference" in doc
    elif name == "photo-metadata":
        assert (doc["format"], doc["file_size"]) == ("JPEG", image.stat().st_size)
    elif name == "photo-thumbnail":
        assert doc["format"] == "JPEG" and max(doc["width"], doc["height"]) == 250
    else:  # the annotated photo, at its own size
        out = cv2.imdecode(np.frombuffer(base64.b64decode(doc["image"]), np.uint8), cv2.IMREAD_COLOR)
        assert out.shape == cv2.imread(str(image)).shape


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_function_serves_its_own_root(name):
    server = Server(["handler.py"], cwd=ROOT / "functions" / name)
    try:
        image = load_images()[5]
        with httpx.Client(base_url=server.url, timeout=60) as client:
            r = client.post("/", json={"id": "fn", "image": b64(image)})
            assert r.status_code == 200, r.text
            doc = r.json()
            assert doc["id"] == "fn"
            FUNCTIONS[name].response.model_validate(doc)  # the contract in schema.py
            check_answer(name, doc, image)
            assert client.post(f"/function/{name}", json={"id": "gw", "image": b64(image)}).status_code == 200
            assert client.get("/_/health").status_code == 200
            ready = client.get("/_/ready").json()
            assert list(ready["functions"]) == [name] and ready["models"].keys() == {FUNCTIONS[name].task.name}
            other = next(n for n in FUNCTION_NAMES if n != name)
            assert client.post(f"/function/{other}", json={}).status_code == 404
    finally:
        server.stop()
