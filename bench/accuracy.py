"""COCO keypoint AP (OKS, pycocotools) of the service, measured through its HTTP API.

    python -m bench.accuracy                      # starts the local service at conf 0.25 and 0.001
    python -m bench.accuracy --url http://host:8080 --path /   # a running function (its own conf)

AP at the serving threshold (0.25) is what users get; AP at 0.001 is the figure papers quote
(the model's published 50.0 is on all of COCO val2017; this set is 32 images of it).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
from pathlib import Path

import httpx

from loadtest.process import ServerProcess

DEFAULT_DATA = Path(os.environ.get("CLOUDPOSE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def predict_all(base_url: str, path: str, images: dict[int, Path]) -> list[dict]:
    """COCO-format keypoint detections for every image, from the pose-json API."""
    detections = []
    with httpx.Client(base_url=base_url, timeout=120) as client:
        for image_id, file in images.items():
            body = {"id": str(image_id), "image": base64.b64encode(file.read_bytes()).decode()}
            r = client.post(path, json=body)
            r.raise_for_status()
            doc = r.json()
            for box, kpts in zip(doc["boxes"], doc["keypoints"]):
                flat = [v for x, y, p in kpts for v in (x, y, p)]
                detections.append({"image_id": image_id, "category_id": 1, "keypoints": flat, "score": box["probability"]})
    return detections


def keypoint_ap(annotations: Path, detections: list[dict]) -> dict[str, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotations))
        if not detections:
            return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
        dt = gt.loadRes(detections)
        ev = COCOeval(gt, dt, iouType="keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"AP": 100 * ev.stats[0], "AP50": 100 * ev.stats[1], "AP75": 100 * ev.stats[2]}


def dev_set(data: Path) -> tuple[Path, dict[int, Path]]:
    annotations = data / "coco-pose-dev" / "person_keypoints.json"
    if not annotations.exists():
        raise SystemExit(f"{annotations} not found: set CLOUDPOSE_DATA to the shared data folder")
    meta = json.loads(annotations.read_text())
    images = {img["id"]: data / "coco-pose-dev" / "images" / img["file_name"] for img in meta["images"]}
    return annotations, images


def evaluate(base_url: str, path: str = "/api/pose_estimation", data: Path = DEFAULT_DATA) -> dict[str, float]:
    annotations, images = dev_set(data)
    return keypoint_ap(annotations, predict_all(base_url, path, images))


def evaluate_local(conf: float, env: dict[str, str] | None = None, data: Path = DEFAULT_DATA) -> dict[str, float]:
    """Start the local service at confidence `conf` (plus `env`), measure, stop."""
    with ServerProcess(["-m", "cloudpose.local"], env={"POSE_CONF": str(conf), **(env or {})}) as server:
        result = evaluate(server.url, data=data)
        result["variant"] = server.ready["model"]["variant"]
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running service; default: start the local one")
    parser.add_argument("--path", default="/api/pose_estimation", help="pose-json path on --url")
    parser.add_argument("--conf", type=float, nargs="+", default=[0.25, 0.001], help="thresholds (local only)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    if args.url:
        ap = evaluate(args.url, args.path, args.data)
        print(f"{args.url}{args.path}: keypoint AP {ap['AP']:.2f}  AP50 {ap['AP50']:.2f}  AP75 {ap['AP75']:.2f}")
        return 0
    print(f"{'conf':>6} {'variant':<16} {'AP':>6} {'AP50':>6} {'AP75':>6}   (coco-pose-dev, OKS, via HTTP)")
    for conf in args.conf:
        ap = evaluate_local(conf, data=args.data)
        print(f"{conf:>6} {ap['variant']:<16} {ap['AP']:6.2f} {ap['AP50']:6.2f} {ap['AP75']:6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
