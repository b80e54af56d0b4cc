"""How far int8 moves the answers, on more photos than the 32 with ground truth, and whether this CPU's int8 is ideal int8.

    python -m bench.int8_fidelity [--photos 160]

Two checks, per task, for the int8 variants (OpenVINO NNCF and ONNX Runtime QDQ):
1. Kernels: OpenVINO's int8 kernels on this CPU against *ideal* int8: the same IR with every FakeQuantize
   replaced by its own arithmetic in float32 (so no u8×s8 pair can saturate, as it could without VNNI).
   Both are compared with the float32 model; equal distances mean this CPU computes int8 as a VNNI CPU
   does, so an accuracy figure measured on one holds on the other.
2. Answers: every int8 variant's answers through the service's own decode, scored against the float32
   variant's answers as ground truth on load-128 and coco-pose-dev (160 photos): keypoint AP (OKS) for
   pose, box AP for detect. 100 = the same answers; it bounds what int8 changes, not accuracy itself.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from pathlib import Path

import cv2
import numpy as np

from cloudpose.backends import load
from cloudpose.config import Settings
from cloudpose.imaging import decode
from cloudpose.letterbox import prepare, to_tensor
from cloudpose.tasks import TASKS

DATA = Path(os.environ.get("CLOUDPOSE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
PAIRS = {"pose": ("ort-fp32-640", ["ov-int8-640", "ort-int8-640"]), "detect": ("ort-fp32-416", ["ov-int8-416", "ort-int8-416"])}


def ideal_int8(model):
    """The IR with every FakeQuantize computed by plain float32 arithmetic (round half to even, as FakeQuantize)."""
    from openvino import opset13 as ops

    for op in model.get_ordered_ops():
        if op.get_type_name() != "FakeQuantize":
            continue
        x, il, ih, ol, oh = (op.input_value(i) for i in range(5))
        steps = ops.constant(np.float32(op.get_attributes()["levels"] - 1))
        level = ops.round(ops.multiply(ops.divide(ops.subtract(ops.minimum(ops.maximum(x, il), ih), il), ops.subtract(ih, il)), steps), "half_to_even")
        value = ops.add(ops.multiply(ops.divide(level, steps), ops.subtract(oh, ol)), ol)
        for target in list(op.output(0).get_target_inputs()):
            target.replace_source_output(value.output(0))
    # Fold the weights' own dequantisation (NNCF stores int8 weights as Convert → Multiply) to float32
    # constants too: OpenVINO takes such a pattern for compressed weights, and one of its passes fails on
    # it once the activations around it are plain arithmetic.
    from openvino import passes

    for op in model.get_ordered_ops():
        info = op.get_rt_info()
        for mark in ("disable_const_folding", "decompression", "keep_const_precision"):
            if mark in info:
                del info[mark]
    manager = passes.Manager()
    manager.register_pass(passes.ConstantFolding())
    manager.run_passes(model)
    model.validate_nodes_and_infer_types()
    return model


def kernel_check(task: str, photos: list[Path]) -> tuple[float, float]:
    """(mean |int8 kernels − fp32|, mean |ideal int8 − fp32|) over the raw outputs, square inputs."""
    import openvino as ov

    spec = TASKS[task].model
    model_dir = Settings.from_env().model_dir
    core, size = ov.Core(), spec.imgsz
    config = {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"}
    compiled = []
    for path, transform in ((f"{spec.stem}.int8.xml", None), (f"{spec.stem}.int8.xml", ideal_int8), (f"{spec.stem}.xml", None)):
        m = core.read_model(str(model_dir / path))
        m = transform(m) if transform else m
        m.reshape([1, 3, size, size])
        compiled.append(core.compile_model(m, "CPU", config))
    real, ideal = [], []
    for photo in photos:
        letterboxed, _ = prepare(cv2.imread(str(photo)), size, shapes=((size, size),))
        k, i, f = (list(c(to_tensor(letterboxed)).values()) for c in compiled)
        real.append(np.mean([np.abs(a - b).mean() for a, b in zip(k, f)]))
        ideal.append(np.mean([np.abs(a - b).mean() for a, b in zip(i, f)]))
    return float(np.mean(real)), float(np.mean(ideal))


def answers(task: str, variant: str, photos: list[Path]) -> list:
    runner = load(TASKS[task], Settings.from_env({**os.environ, f"{TASKS[task].prefix}_VARIANT": variant}))
    runner.wait_steady()
    return [runner(decode(p.read_bytes(), max_pixels=10**9, min_side=runner.min_side)) for p in photos]


def agreement(task: str, truth: list, ours: list) -> float:
    """AP of `ours` scored with `truth` as the ground truth (COCO evaluation, OKS or box IoU)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, gts, dts = [], [], []
    for image_id, (t, o) in enumerate(zip(truth, ours), start=1):
        images.append({"id": image_id, "width": t.width, "height": t.height})
        for source, out in ((t, gts), (o, dts)):
            for k, (box, score) in enumerate(zip(source.boxes, source.scores)):
                x1, y1, x2, y2 = (float(v) for v in box)
                entry = {"image_id": image_id, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score),
                         "category_id": int(source.classes[k]) + 1 if task == "detect" else 1}  # fmt: skip
                if task == "pose":
                    entry["keypoints"] = [float(v) for x, y, p in source.keypoints[k] for v in (x, y, 2.0 if p > 0.5 else 0.0)]
                    entry["num_keypoints"] = int((source.keypoints[k][:, 2] > 0.5).sum())
                if out is gts:
                    entry.update(id=len(gts) + 1, area=(x2 - x1) * (y2 - y1), iscrowd=0)
                out.append(entry)
    categories = [{"id": c} for c in range(1, 81)] if task == "detect" else [{"id": 1, "keypoints": [""] * 17, "skeleton": []}]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": gts, "categories": categories}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dts) if dts else COCO(), "keypoints" if task == "pose" else "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return 100 * ev.stats[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=160)
    parser.add_argument("--task", action="append", choices=list(PAIRS))
    args = parser.parse_args(argv)
    photos = (sorted((DATA / "load-128").glob("*.jpg")) + sorted((DATA / "coco-pose-dev" / "images").glob("*.jpg")))[: args.photos]
    for task in args.task or list(PAIRS):
        real, ideal = kernel_check(task, photos[:24])
        print(f"{task}: mean |OpenVINO int8 kernels − fp32| {real:.4f}, |ideal int8 − fp32| {ideal:.4f} "
              f"(ratio {real / ideal:.3f}: 1 = this CPU's int8 is as good as ideal int8)", flush=True)  # fmt: skip
        reference, candidates = PAIRS[task]
        truth = answers(task, reference, photos)
        for variant in candidates:
            score = agreement(task, truth, answers(task, variant, photos))
            print(f"{task}: {variant} scored against {reference}'s answers on {len(photos)} photos: AP {score:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
