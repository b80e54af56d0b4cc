"""What Locust users send and how they check the answers: pure functions, no Locust (the runner and tests use them)."""

from __future__ import annotations

import base64
import math
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CLOUDPOSE_DATA", ROOT.parent / "shared" / "data"))
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
KEYPOINTS = 17
JSON_KEYS = {"id", "count", "boxes", "keypoints"}
BOX_KEYS = {"x", "y", "width", "height", "probability"}
PATHS = {  # --paths: the gateway's routes (OpenFaaS, the Swarm/local nginx) or the course's
    "gateway": ("/function/pose-json", "/function/pose-annotate"),
    "course": ("/api/pose_estimation", "/api/pose_estimation_annotation"),
}


def load_bodies(folder: Path) -> list[bytes]:
    """Each photo's base64 once; requests only add their id."""
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"no images in {folder}: set --images (or CLOUDPOSE_DATA)")
    return [base64.b64encode(p.read_bytes()) for p in files]


def body(image_b64: bytes, request_id: str) -> bytes:
    return b'{"id":"' + request_id.encode() + b'","image":"' + image_b64 + b'"}'


def check_json(answer: object, request_id: str) -> str | None:
    """None if `answer` is a correct pose-json answer to `request_id`, else why not."""
    if not isinstance(answer, dict):
        return "answer is not an object"
    if missing := JSON_KEYS - answer.keys():
        return f"missing {sorted(missing)}"
    if answer["id"] != request_id:
        return "wrong id"
    boxes, people = answer["boxes"], answer["keypoints"]
    if not (isinstance(boxes, list) and isinstance(people, list) and answer["count"] == len(boxes) == len(people)):
        return "count != len(boxes) != len(keypoints)"
    if any(not isinstance(b, dict) or BOX_KEYS - b.keys() for b in boxes):
        return "box without x, y, width, height, probability"
    if any(len(kps) != KEYPOINTS or any(len(k) != 3 for k in kps) for kps in people):
        return "keypoints not 17 × [x, y, p]"
    return None


def check_annotate(answer: object, request_id: str) -> str | None:
    if not isinstance(answer, dict) or "image" not in answer or "id" not in answer:
        return "missing id or image"
    if answer["id"] != request_id:
        return "wrong id"
    image = answer["image"]
    try:
        head = base64.b64decode(image[:8], validate=True) if isinstance(image, str) and len(image) > 100 else b""
    except ValueError:
        head = b""
    return None if head.startswith(b"\xff\xd8\xff") else "image is not a base64 JPEG"


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values (nan if none)."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else math.nan


# The server's own model time per request (Server-Timing): if it rises under load, the host got slower, not the method.
_INFERENCE = re.compile(r"inference;dur=([0-9.]+)")


def server_inference_ms(server_timing: str | None) -> float | None:
    """The `inference` duration of a Server-Timing header, in ms (None without one)."""
    found = _INFERENCE.search(server_timing or "")
    return float(found.group(1)) if found else None
