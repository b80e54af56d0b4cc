"""Build time only: the official darknet files → our ONNX graph (raw YOLO maps out) → its variants.

The graph is our own conversion (`darknet.py`; OpenCV 5, the serving pin, has no Darknet importer),
checked against OpenCV 4.10's importer in tests/test_darknet.py. Beside it, `yolov3-tiny.layers.json`
records what decoding needs: each [yolo] layer's anchors under the chosen mask, and the class names.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ... import prepare as build
from . import darknet, files

STEM = "yolov3-tiny"
# The published cfg's second [yolo] layer says mask = 0,1,2, but the weights were trained with 1,2,3
# (pjreddie/darknet#851). Measured (bench/detect_masks.py, person AP on coco-pose-dev, letterbox 416,
# conf 0.25): 18.7 with 0,1,2, 25.6 with 1,2,3 (AP50 32.7 → 49.0); 1,2,3 wins at every threshold and
# preprocessing. The one place this choice is made.
MASKS = ((3, 4, 5), (1, 2, 3))
LAYERS = f"{STEM}.layers.json"


def convert(model_dir: Path, found: dict[str, Path]) -> Path:
    """The ONNX graph in `model_dir`, converted again only when its inputs or the converter changed."""
    target = Path(model_dir) / f"{STEM}.onnx"
    stamp = {"weights_sha256": files.SPECS[1].sha256, "cfg_sha256": files.SPECS[0].sha256, "masks": MASKS,
             "code": build.code_digest(darknet, sys.modules[__name__])}  # fmt: skip
    if build.fresh(target, stamp) and (Path(model_dir) / LAYERS).exists():
        return target
    layers = darknet.convert(found["cfg"], found["weights"], target, masks=[list(m) for m in MASKS])
    names = [line.strip() for line in found["names"].read_text().splitlines() if line.strip()]
    (Path(model_dir) / LAYERS).write_text(json.dumps({"layers": [layer.as_dict() for layer in layers], "names": names}))
    build.write_stamp(target, stamp)
    return target


def load_context(model_dir: Path) -> tuple[list[darknet.YoloLayer], tuple[str, ...]]:
    """What decode needs at serving time: the YOLO layers and the class names (read once, with the model)."""
    path = Path(model_dir) / LAYERS
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make model` (or cloudpose-prepare)")
    doc = json.loads(path.read_text())
    return [darknet.YoloLayer.from_dict(d) for d in doc["layers"]], tuple(doc["names"])


def prepare(model_dir: Path, *, source: str = "auto", variants: bool = True) -> list[Path]:
    """Everything the detect task serves, in `model_dir`: the verified files, the ONNX graph and its variants."""
    from . import TASK

    model_dir = Path(model_dir)
    found = files.fetch(model_dir, source=source)
    onnx_path = convert(model_dir, found)
    out = [*found.values(), onnx_path, model_dir / LAYERS]
    if variants:
        from ... import optimize  # build time only: serving imports this module for load_context

        out += optimize.variants(TASK, onnx_path, model_dir)
    return out
