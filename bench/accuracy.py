"""Accuracy of the service, measured through its HTTP API on coco-pose-dev (pycocotools).

    python -m bench.accuracy                      # pose: keypoint AP (OKS) at conf 0.25 and 0.001
    python -m bench.accuracy --task detect        # detect: person-box AP of the peer server and every variant
    python -m bench.accuracy --url http://host:8080 --path /   # a running function (its own conf)

pose: COCO keypoint AP of pose-json. detect: COCO box AP (iouType="bbox", catIds=[1]) of the person
objects detect-json answers, against every person annotation's `bbox`; the other 79 classes are
not annotated in this set. AP at the serving threshold (0.25) is what users get; the low threshold
(0.001 pose, 0.005 detect) is the figure papers quote. The peer server (the assignment's Flask +
OpenCV 4.10 code, reference venv) is measured at its own 0.3 and at 0.005; its Region layer drops
probabilities below the cfg's thresh 0.2 whatever is asked, so its low figure is in effect at 0.2.
32 images decide little: differences under 2 AP on them are noise (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from loadtest.process import ServerProcess

DEFAULT_DATA = Path(os.environ.get("CLOUDPOSE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
POSE_PATH, DETECT_PATH = "/api/pose_estimation", "/api/object_detection"
DETECT_VARIANTS = ["ort-fp32-416", "ort-int8-416", "ov-fp32-416", "ov-bf16-416", "ov-int8-416"]
CONFS = {"pose": (0.25, 0.001), "detect": (0.25, 0.005)}
PEER = "peer"  # the assignment's server, in every detect table
PEER_CONF = 0.3  # what it serves


def _post_all(base_url: str, path: str, images: dict[int, Path]):
    """(image id, answer) for every image, one request each."""
    with httpx.Client(base_url=base_url, timeout=120) as client:
        for image_id, file in images.items():
            r = client.post(path, json={"id": str(image_id), "image": base64.b64encode(file.read_bytes()).decode()})
            r.raise_for_status()
            yield image_id, r.json()


def predict_all(base_url: str, path: str, images: dict[int, Path]) -> list[dict]:
    """COCO-format keypoint detections for every image, from the pose-json API."""
    detections = []
    for image_id, doc in _post_all(base_url, path, images):
        for box, kpts in zip(doc["boxes"], doc["keypoints"]):
            flat = [v for x, y, p in kpts for v in (x, y, p)]
            detections.append({"image_id": image_id, "category_id": 1, "keypoints": flat, "score": box["probability"]})
    return detections


def person_boxes(image_id: int, doc: dict) -> list[dict]:
    """The person objects of one detect-json (or peer) answer as COCO box detections."""
    return [{"image_id": image_id, "category_id": 1, "score": float(o["accuracy"]),
             "bbox": [float(o["rectangle"][k]) for k in ("left", "top", "width", "height")]}
            for o in doc["objects"] if o["label"] == "person"]  # fmt: skip


def detect_all(base_url: str, path: str, images: dict[int, Path]) -> list[dict]:
    """COCO-format person boxes for every image, from the detect-json API."""
    return [d for image_id, doc in _post_all(base_url, path, images) for d in person_boxes(image_id, doc)]


def _coco_ap(annotations: Path, detections: list[dict], iou_type: str) -> dict[str, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotations))
        if not detections:
            return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
        ev = COCOeval(gt, gt.loadRes(detections), iouType=iou_type)
        ev.params.catIds = [1]
        ev.params.imgIds = sorted(gt.getImgIds())  # an image with no answer counts as all missed
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"AP": 100 * ev.stats[0], "AP50": 100 * ev.stats[1], "AP75": 100 * ev.stats[2]}


def keypoint_ap(annotations: Path, detections: list[dict]) -> dict[str, float]:
    return _coco_ap(annotations, detections, "keypoints")


def person_ap(annotations: Path, detections: list[dict]) -> dict[str, float]:
    """Box AP of category person (id 1): what a detector is scored on against this set's annotations."""
    return _coco_ap(annotations, detections, "bbox")


def dev_set(data: Path) -> tuple[Path, dict[int, Path]]:
    annotations = data / "coco-pose-dev" / "person_keypoints.json"
    if not annotations.exists():
        raise SystemExit(f"{annotations} not found: set CLOUDPOSE_DATA to the shared data folder")
    meta = json.loads(annotations.read_text())
    images = {img["id"]: data / "coco-pose-dev" / "images" / img["file_name"] for img in meta["images"]}
    return annotations, images


def evaluate(base_url: str, path: str = POSE_PATH, data: Path = DEFAULT_DATA, task: str = "pose") -> dict[str, float]:
    """AP of a running service: keypoint AP for pose, person-box AP for detect."""
    annotations, images = dev_set(data)
    if task == "detect":
        return person_ap(annotations, detect_all(base_url, path, images))
    return keypoint_ap(annotations, predict_all(base_url, path, images))


@dataclass(frozen=True)
class Target:
    """What to start for one row: a server command, its environment, and the path its JSON function answers."""

    args: list[str]
    env: dict[str, str]
    path: str


def target(task: str, variant: str, conf: float | None = None, workdir: Path | None = None) -> Target:
    """The server of `variant` (a variant name, "baseline" for pose's torch server, "peer" for detect's;
    "peer-masks" writes its cfg into `workdir`)."""
    threads = {"POSE_THREADS": "1"}
    if task == "pose":
        knob = {} if conf is None else {"POSE_CONF": str(conf)}
        if variant == "baseline":
            return Target(["-m", "bench.baseline_server"], {**threads, **knob}, POSE_PATH)
        return Target(["-m", "cloudpose.serve", "pose-json"], {**threads, "POSE_VARIANT": variant, **knob}, POSE_PATH)
    if variant in (PEER, f"{PEER}-masks"):
        from cloudpose.config import Settings

        from . import reference

        if reference.missing():
            raise SystemExit(reference.missing())
        model_dir = Settings.from_env().model_dir
        args = reference.peer_server(model_dir)
        if variant != PEER:  # the same code with the cfg the weights were trained with (masks 1,2,3)
            if workdir is None:
                raise ValueError(f"{variant} needs a workdir for its cfg")
            args = reference.peer_server(model_dir, reference.cfg_with_masks(model_dir, workdir))
        return Target(args + ["--conf", str(PEER_CONF if conf is None else conf)], {}, DETECT_PATH)
    knob = {} if conf is None else {"DETECT_CONF": str(conf)}
    return Target(["-m", "cloudpose.serve", "detect-json"], {**threads, "DETECT_VARIANT": variant, **knob}, DETECT_PATH)


def runs_note(variant: str, runs_as: str) -> str:
    """What a bf16 variant really ran as where the CPU has no bf16 (OpenVINO falls back to f32), else ""."""
    parts = variant.split("-")
    return runs_as if len(parts) > 1 and parts[1] == "bf16" and runs_as and runs_as != "bf16" else ""


def evaluate_local(conf: float, env: dict[str, str] | None = None, data: Path = DEFAULT_DATA, *, task: str = "pose",
                   variant: str | None = None) -> dict:
    """Start one server at confidence `conf` (plus `env`), measure through its API, stop."""
    with tempfile.TemporaryDirectory(prefix="cloudpose-acc-") as tmp:
        t = target(task, variant or os.environ.get(f"{task.upper()}_VARIANT", "auto"), conf, Path(tmp))
        return _measure(t, env, data, task)


def _measure(t: Target, env: dict[str, str] | None, data: Path, task: str) -> dict:
    with ServerProcess(t.args, env={**t.env, **(env or {})}, timeout=180) as server:
        result: dict = evaluate(server.url, t.path, data, task)
        result["variant"] = server.ready["model"]["variant"]
        result["runs_as"] = server.ready["model"].get("runs_as", "")
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["pose", "detect"], default="pose")
    parser.add_argument("--url", help="a running service; default: start the local one(s)")
    parser.add_argument("--path", default=None, help="the JSON function's path on --url (default: the course's)")
    parser.add_argument("--conf", type=float, nargs="+", default=None,
                        help="thresholds (local only; default pose 0.25 0.001, detect 0.25 0.005; the peer serves 0.3)")
    parser.add_argument("--variants", nargs="+", default=None,
                        help=f"detect: rows to measure (default: {PEER} {' '.join(DETECT_VARIANTS)}; `{PEER}-masks` "
                             "is the peer's code with the 1,2,3 cfg); pose: $POSE_VARIANT or auto")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    metric = "person-box AP" if args.task == "detect" else "keypoint AP"
    if args.url:
        path = args.path or (DETECT_PATH if args.task == "detect" else POSE_PATH)
        ap = evaluate(args.url, path, args.data, args.task)
        print(f"{args.url}{path}: {metric} {ap['AP']:.2f}  AP50 {ap['AP50']:.2f}  AP75 {ap['AP75']:.2f}")
        return 0
    confs = args.conf or CONFS[args.task]
    rows = args.variants or ([PEER, *DETECT_VARIANTS] if args.task == "detect" else [None])
    print(f"{'conf':>6} {'variant':<32} {'AP':>6} {'AP50':>6} {'AP75':>6}   ({metric} on coco-pose-dev, via HTTP)")
    for variant in rows:
        for i, conf in enumerate(confs):
            if variant in (PEER, f"{PEER}-masks") and i == 0:
                conf = PEER_CONF  # the peer at what it serves
            ap = evaluate_local(conf, data=args.data, task=args.task, variant=variant)
            name = ap["variant"] + (f" ({variant})" if variant and variant.startswith(PEER) else "")
            note = f"  runs {runs_note(ap['variant'], ap['runs_as'])} here" if runs_note(ap["variant"], ap["runs_as"]) else ""
            print(f"{conf:>6} {name:<32} {ap['AP']:6.2f} {ap['AP50']:6.2f} {ap['AP75']:6.2f}{note}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
