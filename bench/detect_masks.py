"""Which anchor mask and which preprocessing for yolov3-tiny: person-box AP, measured.

The published yolov3-tiny.cfg gives its second [yolo] layer `mask = 0,1,2`, while the weights were
trained with 1,2,3 (pjreddie/darknet#851; AlexeyAB's cfg says 1,2,3). This measures both, under the
plain stretch to 416×416 (what the assignment and cv2.dnn.blobFromImage do) and under letterbox
(aspect kept, grey 114: the served minimal stride-32 rectangle, or the 416 square), with our ONNX
(ONNX Runtime fp32, one thread) and the library's decode (per-class NMS 0.45), at conf 0.005 (AP
style) and at the serving thresholds 0.25 and 0.3. OpenCV 4.10's Darknet importer (the reference
venv) gives the reference rows, on the very blobs ours ran: its detections with the same
post-processing, and with the assignment's peer server's (conf 0.3, class-agnostic NMS 0.1).
AP is pycocotools COCOeval iouType="bbox" on category person, all 32 photos of coco-pose-dev,
every person annotation (iscrowd respected). Single-threaded throughout. This is in-process,
not through HTTP: `python -m bench.accuracy --task detect` measures what the API serves.

    .venv/bin/python -m bench.detect_masks [--json out.json] [--rounds 3] [--speed-only]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cloudpose.boxes import nms
from cloudpose.config import Settings
from cloudpose.tasks.detect import darknet
from cloudpose.tasks.detect.decode import candidates, decode_raw

from . import reference
from .accuracy import DEFAULT_DATA, dev_set, person_ap

MASKS = {"0,1,2": ((3, 4, 5), (0, 1, 2)), "1,2,3": ((3, 4, 5), (1, 2, 3))}
CONFS = (0.005, 0.25, 0.3)
IOU = 0.45  # darknet's detector default, and the served one
PEER_CONF, PEER_NMS = 0.3, 0.1  # the assignment's server: class-agnostic NMS
PERSON = 0  # coco.names index; COCO category id 1


def session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def model_inputs(images: dict[int, Path], mode: str) -> dict[int, reference.Input]:
    return {i: reference.model_input(p.read_bytes(), mode) for i, p in images.items()}


def run_ours(onnx_path: Path, inputs: dict[int, reference.Input]) -> tuple[dict[int, list[np.ndarray]], list[float]]:
    """Per photo the raw maps, plus the ms of each session.run (one thread)."""
    sess = session(onnx_path)
    raw, times = {}, []
    for image_id, x in inputs.items():
        sess.run(None, {"images": x.blob})  # warm-up at this shape (the first call allocates)
        t0 = time.perf_counter()
        raw[image_id] = sess.run(None, {"images": x.blob})
        times.append((time.perf_counter() - t0) * 1000)
    return raw, times


def coco_from_ours(raw, inputs, layers, conf: float, iou: float, agnostic: bool = False) -> tuple[list[dict], list[float]]:
    """COCO person boxes from our maps: the library's decode, or the peer's single class-agnostic NMS."""
    dets, ms = [], []
    for image_id, outs in raw.items():
        x = inputs[image_id]
        t0 = time.perf_counter()
        if agnostic:
            parts = [candidates(o, y, x.box.input_w, x.box.input_h, conf) for o, y in zip(outs, layers)]
            b, s, c = (np.concatenate([p[k] for p in parts]) for k in range(3))
            keep = nms(b, s, iou, 1000)
            b, s, c = b[keep], s[keep], c[keep]
        else:
            b, s, c = decode_raw(outs, layers, x.box.input_w, x.box.input_h, conf=conf, iou=iou, max_det=100)
        ms.append((time.perf_counter() - t0) * 1000)
        dets += [_coco(image_id, box, float(score)) for box, score in zip(x.to_photo(b[c == PERSON]), s[c == PERSON])]
    return dets, ms


def _coco(image_id: int, xyxy, score: float) -> dict:
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return {"image_id": image_id, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score}


def run_reference(cfg: Path, weights: Path, inputs: dict[int, reference.Input], conf: float, iou: float,
                  nms_mode: str) -> tuple[list[dict], list[float]]:
    """OpenCV 4.10 on our blobs: COCO person boxes (mapped back with our Letterbox) and its forward ms."""
    doc, _ = reference.run({str(i): x.blob for i, x in inputs.items()}, cfg, weights, conf=conf, iou=iou, nms=nms_mode)
    dets = []
    for im in doc["images"]:
        x = inputs[int(im["key"])]
        people = [d for d in im["detections"] if d["class_id"] == PERSON]
        boxes = x.to_photo(np.array([d["box"] for d in people], np.float32))
        dets += [_coco(int(im["key"]), b, d["score"]) for b, d in zip(boxes, people)]
    return dets, [im["forward_ms"] for im in doc["images"]]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", type=Path, default=None, help="default: $POSE_MODEL_DIR or ~/.cache/cloudpose/models")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--json", type=Path, default=None, help="also write every figure here")
    p.add_argument("--no-reference", action="store_true", help="skip the OpenCV 4.10 rows")
    p.add_argument("--speed-only", action="store_true", help="only the timing rounds, no AP table")
    p.add_argument("--rounds", type=int, default=3,
                   help="alternating timing rounds, ours (ORT) vs OpenCV 4.10, stretch 416, mask 1,2,3 (0: none)")
    a = p.parse_args(argv)

    annotations, images = dev_set(a.data)
    model_dir = a.model_dir or Settings.from_env().model_dir
    paths = reference.official(model_dir)
    use_reference = not a.no_reference and reference.missing() is None
    inputs = {mode: model_inputs(images, mode) for mode in reference.PREPROCESS}
    rows: list[dict] = []

    with tempfile.TemporaryDirectory(prefix="detect-masks-") as tmp:
        onnx = {}
        for mask_name, masks in MASKS.items():
            onnx[mask_name] = Path(tmp) / f"yolov3-tiny-{mask_name.replace(',', '')}.onnx"
            layers = darknet.convert(paths["cfg"], paths["weights"], onnx[mask_name], masks=[list(m) for m in masks])
            if a.speed_only:
                continue
            for mode in reference.PREPROCESS:
                raw, times = run_ours(onnx[mask_name], inputs[mode])
                row = {"model": f"ours ORT, mask {mask_name}", "preprocess": mode, "infer_ms": statistics.median(times)}
                for conf in CONFS:
                    dets, dms = coco_from_ours(raw, inputs[mode], layers, conf, IOU)
                    ap = person_ap(annotations, dets)
                    row[f"ap@{conf}"], row[f"ap50@{conf}"] = ap["AP"], ap["AP50"]
                    row.setdefault("decode_ms", statistics.median(dms))
                rows.append(row)
                if mode == "stretch":  # the peer server's post-processing on our maps: checks the reference row
                    ap = person_ap(annotations, coco_from_ours(raw, inputs[mode], layers, PEER_CONF, PEER_NMS, True)[0])
                    rows.append({"model": f"ours ORT, mask {mask_name}, peer post (agnostic NMS {PEER_NMS})",
                                 "preprocess": mode, f"ap@{PEER_CONF}": ap["AP"], f"ap50@{PEER_CONF}": ap["AP50"]})
            if use_reference:
                cfg = reference.cfg_with_masks(model_dir, Path(tmp), masks)
                row = {"model": f"OpenCV 4.10 Darknet, mask {mask_name}", "preprocess": "stretch"}
                for conf in CONFS:
                    dets, fms = run_reference(cfg, paths["weights"], inputs["stretch"], conf, IOU, "class")
                    ap = person_ap(annotations, dets)
                    row[f"ap@{conf}"], row[f"ap50@{conf}"] = ap["AP"], ap["AP50"]
                    row.setdefault("infer_ms", statistics.median(fms))
                rows.append(row)
                dets, _ = run_reference(cfg, paths["weights"], inputs["stretch"], PEER_CONF, PEER_NMS, "agnostic")
                ap = person_ap(annotations, dets)
                rows.append({"model": f"OpenCV 4.10 Darknet, mask {mask_name}, peer server post (agnostic NMS {PEER_NMS})",
                             "preprocess": "stretch", f"ap@{PEER_CONF}": ap["AP"], f"ap50@{PEER_CONF}": ap["AP50"]})

        timing = None
        if use_reference and a.rounds > 0:
            cfg = reference.cfg_with_masks(model_dir, Path(tmp), MASKS["1,2,3"])
            timing = compare_speed(onnx["1,2,3"], cfg, paths["weights"], inputs["stretch"], a.rounds)

    if rows:
        print_table(rows, len(images), use_reference)
    if timing:
        ours, theirs = timing
        print(f"\nspeed, stretch 416x416, mask 1,2,3, {a.rounds} alternating rounds x {len(images)} photos, "
              f"model only, 1 thread: ours ORT median {statistics.median(ours):.1f} ms/photo "
              f"(p90 {np.percentile(ours, 90):.1f}), OpenCV 4.10 Darknet median {statistics.median(theirs):.1f} ms/photo "
              f"(p90 {np.percentile(theirs, 90):.1f}); ratio {statistics.median(theirs) / statistics.median(ours):.2f}x")
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "timing_ms": timing and {"ours": timing[0], "opencv": timing[1]}},
                                     indent=1))


def compare_speed(onnx_path: Path, cfg: Path, weights: Path, inputs: dict[int, reference.Input], rounds: int):
    """Per-photo model time of ours and of OpenCV on the same blobs, alternating passes so both see the same load."""
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(rounds):
        ours += run_ours(onnx_path, inputs)[1]
        theirs += run_reference(cfg, weights, inputs, PEER_CONF, IOU, "class")[1]
    return ours, theirs


def print_table(rows: list[dict], n: int, with_reference: bool) -> None:
    print(f"person-box AP (COCOeval bbox, catIds=[1]) on coco-pose-dev ({n} photos), size {reference.SIZE}, "
          f"NMS per class IoU {IOU} unless noted; AP50-95 / AP50 in %; ms = median per photo, 1 thread")
    cols = [f"ap@{c}" for c in CONFS]
    head = f"{'model':<62} {'preprocess':<17}" + "".join(f"{'AP@' + str(c):>15}" for c in CONFS) + f"{'infer ms':>10}{'decode ms':>10}"
    print(head)
    print("-" * len(head))
    for r in rows:
        cells = "".join(f"{r[c]:>7.2f} /{r['ap50' + c[2:]]:>6.2f}" if c in r else f"{'':>15}" for c in cols)
        ms = f"{r['infer_ms']:>10.1f}" if "infer_ms" in r else f"{'':>10}"
        dms = f"{r['decode_ms']:>10.2f}" if "decode_ms" in r else f"{'':>10}"
        print(f"{r['model']:<62} {r['preprocess']:<17}{cells}{ms}{dms}")
    if with_reference:
        print("OpenCV's Region layer zeroes class probabilities below the cfg's thresh 0.2: its AP@0.005 is in effect AP@0.2")
    else:
        print(f"(no OpenCV 4.10 rows: {reference.missing() or '--no-reference'})", file=sys.stderr)


if __name__ == "__main__":
    main()
