"""Our side of the OpenCV 4.10 reference venv: where it is, the inputs we hand it, and its two programs.

The reference venv cannot import the project, so everything it needs is made here with the library:
the model inputs (cloudpose.letterbox, the served preprocessing or a stretch), a cfg carrying the
served anchor masks, and the mapping of its boxes back to the photo (cloudpose.boxes.to_original).
Used by bench.detect_masks, bench.accuracy, bench.serving and tests/test_darknet.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cloudpose.boxes import to_original
from cloudpose.config import Settings
from cloudpose.imaging import Decoded, decode
from cloudpose.letterbox import Letterbox, prepare, to_tensor
from cloudpose.tasks.detect import darknet, files
from cloudpose.tasks.detect import prepare as detect_prepare

BENCH = Path(__file__).resolve().parent
PYTHON = Path(os.environ.get(
    "CLOUDPOSE_REFERENCE_PYTHON",
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cloudpose" / "venvs" / "opencv4" / "bin" / "python"))
MAKE = ("python3 -m venv ~/.cache/cloudpose/venvs/opencv4 && "
        "~/.cache/cloudpose/venvs/opencv4/bin/pip install -r requirements/reference.txt")
SIZE = 416
PREPROCESS = ("letterbox", "letterbox-square", "stretch")  # letterbox: the served rect letterbox
MAX_PIXELS = Settings().max_pixels  # the service's own limit


def missing() -> str | None:
    """None if the reference venv is there, else how to make it."""
    return None if PYTHON.is_file() else f"no OpenCV 4.10 reference venv at {PYTHON}: create it with `{MAKE}`"


def official(model_dir: Path) -> dict[str, Path]:
    """The official cfg, weights and names in `model_dir` (as `cloudpose-prepare` left them)."""
    paths = {s.key: Path(model_dir) / s.name for s in files.SPECS}
    absent = [str(p) for p in paths.values() if not p.is_file()]
    if absent:
        raise FileNotFoundError(f"{', '.join(absent)} missing: run `cloudpose-prepare --task detect`")
    return paths


def cfg_with_masks(model_dir: Path, folder: Path, masks=detect_prepare.MASKS) -> Path:
    """The official cfg with `masks` (default: the served ones), for OpenCV, which reads masks from the cfg."""
    target = Path(folder) / ("yolov3-tiny-" + "-".join("".join(map(str, m)) for m in masks) + ".cfg")
    target.write_text(darknet.set_masks(official(model_dir)["cfg"].read_text(), [list(m) for m in masks]))
    return target


@dataclass(frozen=True)
class Input:
    """One photo as the model sees it: the NCHW blob, where the photo sits in it, and the decoded image."""

    blob: np.ndarray
    box: Letterbox
    image: Decoded

    def to_photo(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """Input-pixel xyxy boxes → photo pixels, exactly as the served decode does."""
        h, w = self.image.pixels.shape[:2]
        return to_original(np.asarray(boxes_xyxy, np.float32).reshape(-1, 4), self.box, w, h,
                           self.image.width, self.image.height)  # fmt: skip


def model_input(data: bytes, mode: str, size: int = SIZE) -> Input:
    """The served decode, then `mode`: letterbox (rect, served), letterbox-square, or stretch (the peer's)."""
    if mode not in PREPROCESS:
        raise ValueError(f"preprocess {mode!r}: one of {PREPROCESS}")
    image = decode(data, max_pixels=MAX_PIXELS, min_side=size)
    shapes = ((size, size),) if mode == "letterbox-square" else None
    letterboxed, box = prepare(image.pixels, size, shapes=shapes, stretch=mode == "stretch")
    return Input(to_tensor(letterboxed), box, image)


def run(blobs: dict[str, np.ndarray], cfg: Path, weights: Path, *, names: Path | None = None, conf: float = 0.25,
        iou: float = 0.45, nms: str = "class", raw: bool = False, timeout: float = 600) -> tuple[dict, dict]:
    """bench/detect_reference.py on `blobs` (key → NCHW float32): its JSON, and its raw maps if `raw`."""
    with tempfile.TemporaryDirectory(prefix="detect-ref-") as tmp:
        npz, raw_npz = Path(tmp) / "blobs.npz", Path(tmp) / "raw.npz"
        np.savez(npz, **blobs)
        cmd = [str(PYTHON), str(BENCH / "detect_reference.py"), "--cfg", str(cfg), "--weights", str(weights),
               "--conf", str(conf), "--iou", str(iou), "--nms", nms, str(npz)]
        cmd[2:2] = (["--names", str(names)] if names else []) + (["--raw", str(raw_npz)] if raw else [])
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode:
            raise RuntimeError(f"detect_reference.py failed ({done.returncode}):\n{done.stderr[-3000:]}")
        maps = dict(np.load(raw_npz)) if raw else {}
    return json.loads(done.stdout), maps


def peer_server(model_dir: Path, cfg: Path | None = None) -> list[str]:
    """Arguments for loadtest.process.ServerProcess (which runs our interpreter) that start the assignment's
    peer server under the reference interpreter instead: `python -S -c` only execs it (same pid, ~10 ms)."""
    paths = official(model_dir)
    launch = "import os, sys; os.execv(sys.argv[1], sys.argv[1:])"
    return ["-S", "-c", launch, str(PYTHON), str(BENCH / "peer_detect_server.py"), "--cfg", str(cfg or paths["cfg"]),
            "--weights", str(paths["weights"]), "--names", str(paths["names"])]
