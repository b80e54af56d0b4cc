"""The OpenCV 4.10 Darknet reference: cv2.dnn.readNetFromDarknet(cfg, weights) on given blobs → JSON detections.

Runs under the reference venv (requirements/reference.txt; OpenCV 5 has no Darknet importer) and never
imports the project. It takes the very model inputs our side made (cloudpose.letterbox: letterbox or
stretch, then to_tensor), so both sides see identical pixels and only the networks and their
post-processing are compared; our side maps the boxes back to the photo (cloudpose.boxes.to_original).

    ~/.cache/cloudpose/venvs/opencv4/bin/python bench/detect_reference.py --cfg C --weights W [--names N] \
        [--conf 0.25] [--iou 0.45] [--nms class|agnostic] [--raw RAW.npz] [--threads 1] BLOBS.npz

BLOBS.npz: one NCHW float32 array (RGB, 0–1) per key. Printed: {"opencv", "conf", "iou", "nms", "images":
[{"key", "input_w", "input_h", "forward_ms", "detections": [{"class_id", "label"?, "score", "box"}]}]}
in the file's key order; "box" is xyxy in model-input pixels. Detections are what OpenCV's usual code
makes of its Region outputs: per row the best class, score = that class's probability (the Region
layer multiplied objectness in and zeroed probabilities below the cfg's thresh 0.2), kept when
> --conf, then cv2.dnn NMS per class (NMSBoxesBatched, as ours) or over all classes (NMSBoxes, as
the assignment's server). --raw saves, per key, the maps that feed each Region layer, NCHW like our
ONNX outputs, as `<key>.raw_<i>`. forward_ms times setInput + forward on one thread.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np


def raw_layer_names(net: cv2.dnn.Net) -> list[str]:
    """The layer feeding each Region layer: OpenCV permutes the conv output to NHWC just before it."""
    names = list(net.getLayerNames())
    return [names[names.index(o) - 1] for o in net.getUnconnectedOutLayersNames()]


def detections(maps: list[np.ndarray], input_w: int, input_h: int, conf: float, iou: float, mode: str) -> list[dict]:
    """OpenCV's usual post-processing of the Region outputs, boxes xyxy in model-input pixels, best first."""
    rows = np.concatenate(maps)  # (n, 5 + C): cx, cy, w, h (0–1 of the input), objectness, class probabilities
    cls = np.argmax(rows[:, 5:], axis=1)
    score = rows[np.arange(len(rows)), 5 + cls]
    keep = score > conf
    rows, cls, score = rows[keep], cls[keep], score[keep]
    cx, cy, bw, bh = rows[:, 0] * input_w, rows[:, 1] * input_h, rows[:, 2] * input_w, rows[:, 3] * input_h
    xywh = [[float(x - w / 2), float(y - h / 2), float(w), float(h)] for x, y, w, h in zip(cx, cy, bw, bh)]
    if not xywh:
        return []
    if mode == "class":
        idx = cv2.dnn.NMSBoxesBatched(xywh, score.tolist(), cls.tolist(), conf, iou)
    else:
        idx = cv2.dnn.NMSBoxes(xywh, score.tolist(), conf, iou)
    idx = sorted(np.asarray(idx, int).reshape(-1).tolist(), key=lambda i: -score[i])
    return [{"class_id": int(cls[i]), "score": float(score[i]),
             "box": [xywh[i][0], xywh[i][1], xywh[i][0] + xywh[i][2], xywh[i][1] + xywh[i][3]]} for i in idx]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cfg", type=Path, required=True)
    p.add_argument("--weights", type=Path, required=True)
    p.add_argument("--names", type=Path, default=None, help="coco.names: adds each detection's label")
    p.add_argument("--conf", type=float, default=0.25)
    p.add_argument("--iou", type=float, default=0.45)
    p.add_argument("--nms", choices=("class", "agnostic"), default="class")
    p.add_argument("--raw", type=Path, default=None, help="write the maps feeding each Region layer here (.npz)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("blobs", type=Path, help=".npz of NCHW float32 model inputs, one per key")
    a = p.parse_args(argv)

    cv2.setNumThreads(a.threads)
    net = cv2.dnn.readNetFromDarknet(str(a.cfg), str(a.weights))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    outs = list(net.getUnconnectedOutLayersNames())
    wanted = outs + raw_layer_names(net) if a.raw else outs
    labels = a.names.read_text().splitlines() if a.names else None
    blobs = np.load(a.blobs)

    results, raw, seen = [], {}, set()
    for key in blobs.files:
        blob = np.ascontiguousarray(blobs[key], np.float32)
        if blob.ndim != 4 or blob.shape[:2] != (1, 3):
            raise SystemExit(f"{key}: expected a 1x3xHxW blob, got {blob.shape}")
        if blob.shape not in seen:  # the first call at a shape allocates: keep it out of the timing
            seen.add(blob.shape)
            net.setInput(np.zeros_like(blob))
            net.forward(outs)
        t0 = time.perf_counter()
        net.setInput(blob)
        maps = net.forward(wanted)
        forward_ms = (time.perf_counter() - t0) * 1000
        h, w = blob.shape[2:]
        dets = detections(list(maps[: len(outs)]), w, h, a.conf, a.iou, a.nms)
        for d in dets:
            if labels:
                d["label"] = labels[d["class_id"]]
        raw.update({f"{key}.raw_{i}": m.transpose(0, 3, 1, 2) for i, m in enumerate(maps[len(outs):])})
        results.append({"key": key, "input_w": int(w), "input_h": int(h), "forward_ms": round(forward_ms, 3),
                        "detections": dets})
    if a.raw:
        np.savez(a.raw, **raw)
    json.dump({"opencv": cv2.__version__, "conf": a.conf, "iou": a.iou, "nms": a.nms, "images": results}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
