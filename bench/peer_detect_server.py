"""The "typical peer server" the assignment prescribes: Flask + OpenCV's Darknet importer, one thread.

A baseline to load-test against, written the way the assignment's sample code does it, not tuned:
the base64 photo is decoded, stretched to 416×416 by blobFromImage, run through cv2.dnn, and every
row whose best class beats CONF_THRESHOLD goes through one class-agnostic cv2.dnn.NMSBoxes.
Runs under the reference venv (requirements/reference.txt; OpenCV 5 has no Darknet importer):

    ~/.cache/cloudpose/venvs/opencv4/bin/python bench/peer_detect_server.py --port 8081 \
        --cfg yolov3-tiny.cfg --weights yolov3-tiny.weights --names coco.names [--conf 0.3]

POST / or /api/object_detection  {"id": "...", "image": "<base64>"}
  → {"id": "...", "objects": [{"label", "accuracy", "rectangle": {"height", "left", "top", "width"}}]}
GET /healthz, GET /_/ready (what the benchmarks' process runner waits for). PORT and HOST set the
defaults of --port and --host; --conf exists only so bench.accuracy can also take an AP-style figure.
"""

from __future__ import annotations

import argparse
import base64
import os
import threading

import cv2
import numpy as np
from flask import Flask, jsonify, request

# The assignment's values: keep a detection whose best class score is above 0.3; one NMS over all
# classes at IoU 0.1; the input is the cfg's 416×416, pixels scaled by 1/255, BGR→RGB, no crop.
CONF_THRESHOLD = 0.3
NMS_THRESHOLD = 0.1
INPUT_SIZE = (416, 416)
SCALE = 1 / 255.0

app = Flask(__name__)
_net: cv2.dnn.Net | None = None
_layers: list[str] = []
_labels: list[str] = []
_lock = threading.Lock()  # one cv2.dnn.Net is not safe to run from two request threads at once


def load(cfg: str, weights: str, names: str) -> None:
    global _net, _layers, _labels
    cv2.setNumThreads(1)
    _labels = open(names).read().strip().split("\n")
    _net = cv2.dnn.readNetFromDarknet(cfg, weights)
    _layers = list(_net.getUnconnectedOutLayersNames())


def do_prediction(image: np.ndarray) -> list[dict]:
    (H, W) = image.shape[:2]
    blob = cv2.dnn.blobFromImage(image, SCALE, INPUT_SIZE, swapRB=True, crop=False)
    with _lock:
        _net.setInput(blob)
        layer_outputs = _net.forward(_layers)
    boxes, confidences, class_ids = [], [], []
    for output in layer_outputs:
        for detection in output:
            scores = detection[5:]
            class_id = int(np.argmax(scores))
            confidence = float(scores[class_id])
            if confidence > CONF_THRESHOLD:
                cx, cy, w, h = detection[0:4] * np.array([W, H, W, H])
                boxes.append([int(cx - w / 2), int(cy - h / 2), int(w), int(h)])
                confidences.append(confidence)
                class_ids.append(class_id)
    idxs = cv2.dnn.NMSBoxes(boxes, confidences, CONF_THRESHOLD, NMS_THRESHOLD) if boxes else []
    objects = []
    for i in np.asarray(idxs, int).reshape(-1):
        x, y, w, h = boxes[i]
        objects.append({"label": _labels[class_ids[i]], "accuracy": confidences[i],
                        "rectangle": {"height": h, "left": x, "top": y, "width": w}})
    return objects


@app.route("/", methods=["POST"])
@app.route("/api/object_detection", methods=["POST"])
def object_detection():
    doc = request.get_json(force=True, silent=True)
    if not isinstance(doc, dict) or not isinstance(doc.get("image"), str):
        return jsonify({"error": 'expected JSON {"id": ..., "image": "<base64>"}'}), 400
    try:
        data = np.frombuffer(base64.b64decode(doc["image"]), np.uint8)
    except ValueError:
        return jsonify({"error": "image is not base64"}), 400
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        return jsonify({"error": "image is not a decodable picture"}), 400
    return jsonify({"id": doc.get("id"), "objects": do_prediction(image)})


@app.route("/healthz", methods=["GET"])
def healthz():
    return "ok"


@app.route("/_/ready", methods=["GET"])
def ready():
    return jsonify({"status": "ready", "model": {"variant": "opencv-darknet-416", "conf": CONF_THRESHOLD}})


def main(argv: list[str] | None = None) -> None:
    global CONF_THRESHOLD
    p = argparse.ArgumentParser(description="Flask + cv2.dnn Darknet object detection (the assignment's peer server)")
    p.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8081")))
    p.add_argument("--cfg", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--names", required=True)
    p.add_argument("--conf", type=float, default=CONF_THRESHOLD, help="the assignment's 0.3 unless measuring AP")
    a = p.parse_args(argv)
    CONF_THRESHOLD = a.conf
    load(a.cfg, a.weights, a.names)
    app.run(host=a.host, port=a.port, threaded=True)


if __name__ == "__main__":
    main()
