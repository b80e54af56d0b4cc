"""What Locust users send and how they check the answers: pure functions, no Locust (the runner and tests use them).

Answers are checked per function (`CHECKS`, keyed by function name) against the function's own response
model (`cloudpose.functions`), so a new function needs nothing here, in the locustfile or in the runner.
"""

from __future__ import annotations

import base64
import math
import os
import re
from collections.abc import Callable
from pathlib import Path

from cloudpose.deployment import FUNCTION_NAMES

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CLOUDPOSE_DATA", ROOT.parent / "shared" / "data"))
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
KEYPOINTS = 17
# --paths: the gateway's routes (/function/<name>: OpenFaaS, the Swarm/local nginx) or the course's own paths
# (the local default's, which the Swarm and local gateways route too), offered here for the pose functions.
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


def _first_error(exc) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc']) or 'answer'}: {err['msg']}"


def schema_check(function: str) -> Callable[[object, str], str | None]:
    """The answer check of `function`: its response model (the contract in the task's schema.py) plus the id,
    and what a model cannot say (pose: 17 × [x, y, p] per person, as many boxes as `count`; annotate: a JPEG)."""
    from pydantic import ValidationError

    from cloudpose.functions import FUNCTIONS

    model = FUNCTIONS[function].response

    def check(answer: object, request_id: str) -> str | None:
        try:
            parsed = model.model_validate(answer)
        except ValidationError as exc:
            return _first_error(exc)
        if parsed.id != request_id:
            return "wrong id"
        if function == "pose-json":
            if not parsed.count == len(parsed.boxes) == len(parsed.keypoints):
                return "count != len(boxes) != len(keypoints)"
            if any(len(kps) != KEYPOINTS or any(len(k) != 3 for k in kps) for kps in parsed.keypoints):
                return "keypoints not 17 × [x, y, p]"
        if function.endswith("-annotate"):
            try:  # the JPEG's magic bytes, not a decode: the load generator stays cheap
                head = base64.b64decode(parsed.image[:8], validate=True) if len(parsed.image) > 100 else b""
            except ValueError:
                head = b""
            if not head.startswith(b"\xff\xd8\xff"):
                return "image is not a base64 JPEG"
        return None

    return check


# How each function's answer is checked, by function name: every function of the table.
CHECKS: dict[str, Callable[[object, str], str | None]] = {name: schema_check(name) for name in FUNCTION_NAMES}


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values (nan if none)."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else math.nan


# The server's own model time per request (Server-Timing): if it rises under load, the host got slower, not the method.
_INFERENCE = re.compile(r"inference;dur=([0-9.]+)")


def server_inference_ms(server_timing: str | None) -> float | None:
    """The `inference` duration of a Server-Timing header, in ms (None without one)."""
    found = _INFERENCE.search(server_timing or "")
    return float(found.group(1)) if found else None
