"""Every serving variant finds the people Ultralytics finds; the variant is chosen from the CPU's features.

Each variant is compared with Ultralytics + torch at the same input size, on the 32 dev photos and
32 load photos (about 94 confident people). Tolerance, stated per precision and set from what the
variants measure (worst in brackets):
- every confident person (score ≥ 0.5) is found, at every precision (0 missed);
- fp32 / bf16: each matched box has IoU ≥ 0.85 (0.91); the farthest visible keypoint of a person is
  within 3% of the box diagonal in the median person (0.5%) and 10% at the 95th percentile (6%);
- int8, and square inputs (whose padding differs from Ultralytics' minimal rectangle): IoU ≥ 0.85 for
  95% of people (0.895) and ≥ 0.65 for all (0.70); keypoints 3% (2.6%) and 12% (10.5%). These move a
  few boxes more, which AP shows they do not pay for (docs/benchmarks.md).
"""

from __future__ import annotations

import numpy as np
import pytest

from cloudpose.config import Settings
from cloudpose.imaging import decode
from cloudpose.model import load_model
from cloudpose.variants import CHOICE, FALLBACK, choose, cpu_class, cpu_features, parse

from .conftest import Server, b64, dev_images, load_images

VARIANTS = ["ort-fp32-640", "ort-int8-640", "ort-int8-512", "ov-fp32-640", "ov-bf16-640", "ov-int8-640", "ov-bf16-512-square"]
XEON = "fpu sse2 avx avx2 fma avx512f avx512_vnni avx512_bf16 amx_bf16 amx_int8 amx_tile"
EPYC = "fpu sse2 avx avx2 fma bmi2"


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lo, hi = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    return inter / (np.prod(box[2:] - box[:2]) + np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) - inter)


def compare(ours, ref) -> tuple[int, list[float], list[float]]:
    """(missed confident people, IoU of each match, farthest keypoint distance / box diagonal of each match)."""
    missed, ious, dists = 0, [], []
    for box, score, kpts in zip(ref.boxes, ref.scores, ref.keypoints):
        if score < 0.5:
            continue
        overlap = _iou(box, ours.boxes) if ours.count else np.zeros(1)
        j = int(overlap.argmax())
        if overlap[j] < 0.5:
            missed += 1
            continue
        ious.append(float(overlap[j]))
        seen = (kpts[:, 2] > 0.5) & (ours.keypoints[j][:, 2] > 0.5)
        if seen.any():
            far = np.linalg.norm(kpts[seen, :2] - ours.keypoints[j][seen, :2], axis=1).max()
            dists.append(float(far / np.hypot(*(box[2:] - box[:2]))))
    return missed, ious, dists


@pytest.fixture(scope="module")
def references(settings):
    """Per input size: the decoded photos and Ultralytics' people on them."""
    images = [decode(p.read_bytes(), max_pixels=10**9, min_side=640) for p in dev_images() + load_images()[::4]]
    cache: dict[int, list] = {}

    def at(imgsz: int):
        if imgsz not in cache:
            ref = load_model(Settings.from_env(backend="ultralytics", imgsz=imgsz))
            cache[imgsz] = [ref(img) for img in images]
        return images, cache[imgsz]

    return at


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_finds_the_same_people_as_ultralytics(name, references):
    model = load_model(Settings.from_env(variant=name))
    model.wait_steady()
    images, refs = references(model.variant.imgsz)
    missed, ious, dists = 0, [], []
    for image, ref in zip(images, refs):
        m, i, d = compare(model(image), ref)
        missed, ious, dists = missed + m, ious + i, dists + d
    summary = f"IoU min {min(ious):.3f} p5 {np.percentile(ious, 5):.3f}; keypoints p50 {np.median(dists):.4f} p95 {np.percentile(dists, 95):.4f}"
    assert len(ious) > 80
    assert missed == 0, f"{missed} confident people missed"
    if model.variant.precision == "int8" or model.variant.square:
        assert np.percentile(ious, 5) >= 0.85 and min(ious) >= 0.65, summary
        assert np.median(dists) <= 0.03 and np.percentile(dists, 95) <= 0.12, summary
    else:
        assert min(ious) >= 0.85, summary
        assert np.median(dists) <= 0.03 and np.percentile(dists, 95) <= 0.10, summary


@pytest.mark.parametrize("name", VARIANTS)
def test_forced_variant_serves_correct_answers(name, reference_model):
    image = load_images()[5]
    ref = reference_model(decode(image.read_bytes(), max_pixels=10**9, min_side=640))
    server = Server(["-m", "cloudpose.local"], env={"POSE_VARIANT": name})
    try:
        import httpx

        assert server.ready["model"]["variant"] == name
        r = httpx.post(f"{server.url}/api/pose_estimation", json={"id": name, "image": b64(image)}, timeout=60)
        assert r.status_code == 200 and r.headers["X-Model"] == name
        doc = r.json()
        boxes = np.array([[b["x"], b["y"], b["x"] + b["width"], b["y"] + b["height"]] for b in doc["boxes"]])
        assert doc["count"] >= 1 and _iou(ref.boxes[0], boxes).max() > 0.85
    finally:
        server.stop()


def test_cpu_classes_from_features():
    assert cpu_class(set(XEON.split()), "x86_64") == "amx"
    assert cpu_class(set(EPYC.split()), "x86_64") == "avx2"
    assert cpu_class({"fp", "asimd", "bf16"}, "aarch64") == "arm"
    assert cpu_class({"sse2"}, "x86_64") == "generic"
    assert cpu_features("processor : 0\nflags\t\t: fpu avx2 fma\n") == {"fpu", "avx2", "fma"}


def test_choice_per_cpu_class_and_fallbacks(settings, tmp_path):
    xeon, epyc = set(XEON.split()), set(EPYC.split())
    variant, reason = choose(settings, xeon)
    assert variant.name == CHOICE["amx"][0] and "amx" in reason
    assert choose(settings, epyc)[0].name == CHOICE["avx2"][0]
    assert choose(settings, {"sse2"})[0].name == FALLBACK
    empty = Settings.from_env({"POSE_MODEL_DIR": str(tmp_path)})
    variant, reason = choose(empty, xeon)  # no prepared files: the fallback, and the log says why
    assert variant.name == FALLBACK and "missing" in reason
    assert choose(Settings.from_env({"POSE_BACKEND": "onnxruntime"}), xeon)[0].name == FALLBACK
    assert choose(Settings.from_env({"POSE_BACKEND": "openvino"}), epyc)[0] == parse("ov-fp32-640")
    assert choose(Settings.from_env({"POSE_VARIANT": "ov-int8-640"}), epyc)[0] == parse("ov-int8-640")


def test_every_choice_is_a_real_variant():
    for name, _why in CHOICE.values():
        assert parse(name).name == name


def test_openvino_uint8_input_is_the_float_input_converted_in_the_graph(settings):
    """The graph's own conversion (uint8 BGR HWC → float RGB CHW / 255) gives what numpy's does, at fp32."""
    import openvino as ov

    from cloudpose.backends.openvino_backend import with_uint8_input
    from cloudpose.preprocess import prepare, to_tensor

    image = decode(load_images()[5].read_bytes(), max_pixels=10**9, min_side=640)
    letterboxed, _ = prepare(image.pixels, 640, shapes=((640, 640),))
    core, config = ov.Core(), {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1}
    model = core.read_model(str(parse("ov-fp32-640").path(settings.model_dir)))
    model.reshape([1, 3, 640, 640])
    plain = core.compile_model(model.clone(), "CPU", config)(to_tensor(letterboxed))[0]
    in_graph = core.compile_model(with_uint8_input(model), "CPU", config)(letterboxed[None])[0]
    assert plain[0, 4].max() > 0.5, "the photo has a confident person"
    diff = np.abs(plain - in_graph)[0]
    probabilities = [4, *range(7, 56, 3)]  # person score, then each keypoint's visibility
    assert diff[probabilities].max() < 1e-3, "scores differ"
    assert np.delete(diff, probabilities, axis=0).max() < 0.05, "pixel coordinates differ"
