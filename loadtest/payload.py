"""What Locust users send and how they check the answers: pure functions, no Locust (the runner and tests use them).

Answers are checked per function (`CHECKS`, keyed by function name), so a new function needs one entry here
and nothing in the locustfile or the runner. The detection entries (detect-json, detect-annotate) follow the
planned answers; they cannot be exercised until those functions are deployed.
"""

from __future__ import annotations

import base64
import math
import os
import re
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CLOUDPOSE_DATA", ROOT.parent / "shared" / "data"))
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
KEYPOINTS = 17
JSON_KEYS = {"id", "count", "boxes", "keypoints"}
BOX_KEYS = {"x", "y", "width", "height", "probability"}
DETECT_KEYS = {"id", "objects", "speed_preprocess", "speed_inference", "speed_postprocess"}
RECTANGLE_KEYS = {"height", "left", "top", "width"}
# --paths: the gateway's routes (/function/<name>: OpenFaaS, the Swarm/local nginx) or the course's own paths,
# which exist only for the pose functions.
COURSE_PATHS = {"pose-json": "/api/pose_estimation", "pose-annotate": "/api/pose_estimation_annotation"}
PATH_STYLES = ("course", "gateway")
# The image-returning sibling of each JSON function (--annotate-weight sends a share of requests there).
ANNOTATE_OF = {"pose-json": "pose-annotate", "detect-json": "detect-annotate"}


def path_for(function: str, style: str = "gateway") -> str:
    """The path `function` answers on in `style` (gateway: /function/<name>; course: the course's path)."""
    if style == "gateway":
        return f"/function/{function}"
    if function not in COURSE_PATHS:
        raise ValueError(f"{function} has no course path (only {', '.join(COURSE_PATHS)}): use --paths gateway")
    return COURSE_PATHS[function]


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


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_detect_json(answer: object, request_id: str) -> str | None:
    """None if `answer` is a correct detect-json answer: the id, `objects` of {label, accuracy 0–1, rectangle of
    int height/left/top/width}, and the server's three speed_* timings."""
    if not isinstance(answer, dict):
        return "answer is not an object"
    if missing := DETECT_KEYS - answer.keys():
        return f"missing {sorted(missing)}"
    if answer["id"] != request_id:
        return "wrong id"
    objects = answer["objects"]
    if not isinstance(objects, list):
        return "objects is not a list"
    for o in objects:
        if not isinstance(o, dict) or not isinstance(o.get("label"), str) or not o["label"]:
            return "object without a label"
        accuracy = o.get("accuracy")
        if isinstance(accuracy, bool) or not isinstance(accuracy, int | float) or not 0 <= accuracy <= 1:
            return "object accuracy not in 0..1"
        rect = o.get("rectangle")
        if not isinstance(rect, dict) or RECTANGLE_KEYS - rect.keys() or not all(_is_int(rect[k]) for k in RECTANGLE_KEYS):
            return "rectangle not int height, left, top, width"
    if any(isinstance(answer[k], bool) or not isinstance(answer[k], int | float) for k in DETECT_KEYS if k.startswith("speed_")):
        return "speed_* not numbers"
    return None


def check_annotate(answer: object, request_id: str) -> str | None:
    """None if `answer` is {"id", "image": base64 JPEG} for `request_id` (the JPEG's magic bytes, not a decode:
    the load generator stays cheap). Both annotate functions answer this way."""
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


# How each function's answer is checked, by function name (deployment.FUNCTION_NAMES will list all four).
CHECKS: dict[str, Callable[[object, str], str | None]] = {
    "pose-json": check_json,
    "pose-annotate": check_annotate,
    "detect-json": check_detect_json,
    "detect-annotate": check_annotate,
}


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values (nan if none)."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else math.nan


# The server's own model time per request (Server-Timing): if it rises under load, the host got slower, not the method.
_INFERENCE = re.compile(r"inference;dur=([0-9.]+)")


def server_inference_ms(server_timing: str | None) -> float | None:
    """The `inference` duration of a Server-Timing header, in ms (None without one)."""
    found = _INFERENCE.search(server_timing or "")
    return float(found.group(1)) if found else None
