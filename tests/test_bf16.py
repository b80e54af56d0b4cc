"""bf16 bodies do not round pixel coordinates: the head's decode runs in float32 whatever the body ran in.

Photos are resized so their long side equals the model input (gain 1: the answer's pixels are the
model's), and every x and y of every box and keypoint is checked. bf16 holds 8 significant bits, so
coordinates decoded in bf16 land on whole or half pixels (42% of them did on an AVX-512 BF16 CPU when
the decode was part of the graph), while float32 ones land there about as often as chance (< 1% at
the 0.001-pixel tolerance used here).
Two ways to run a bf16 body:
- native: the OpenVINO bf16 variants, on a CPU with bf16 (skipped elsewhere: OpenVINO runs them f32);
- emulated, on any CPU: the served ONNX graph with every weight and every intermediate tensor rounded
  to bf16 (a Cast pair after each op, run by ONNX Runtime with graph optimisations off so no Cast is
  folded away) except the task's float32 scope, which the OpenVINO backend keeps in float32 on a
  bf16 CPU, in front of the service's own float32 decode. On the previous graph, which decoded boxes
  and keypoints inside, the same emulation put 96–97% of coordinates on whole or half pixels (0.1–0.2% now,
  as in float32).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cloudpose.imaging import Decoded

from .conftest import load_images, load_pose

LIMIT = 0.10


def at_input_size(side: int, count: int = 32) -> list[Decoded]:
    images = []
    for path in load_images()[:count]:
        pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
        h, w = pixels.shape[:2]
        r = side / max(h, w)
        pixels = cv2.resize(pixels, (round(w * r), round(h * r)), interpolation=cv2.INTER_AREA)
        images.append(Decoded(pixels, pixels.shape[1], pixels.shape[0], "JPEG"))
    return images


def on_half_pixels(model, images: list[Decoded]) -> tuple[float, int]:
    """Share of the answers' x and y values on whole or half pixels (image edges, where clipping puts them, excluded)."""
    values = []
    for image in images:
        result = model(image)
        xs = np.concatenate([result.boxes[:, [0, 2]].ravel(), result.keypoints[..., 0].ravel()])
        ys = np.concatenate([result.boxes[:, [1, 3]].ravel(), result.keypoints[..., 1].ravel()])
        values += [v for v in xs if 0 < v < image.width] + [v for v in ys if 0 < v < image.height]
    v = np.asarray(values, np.float64)
    return float(np.mean(np.abs(v * 2 - np.round(v * 2)) < 1e-3)), v.size


def to_bf16(values: np.ndarray) -> np.ndarray:
    """float32 → the nearest bf16 (round to nearest even), still stored as float32."""
    bits = np.ascontiguousarray(values, np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).view(np.float32)


def bf16_body(onnx_path, keep_f32: str = "") -> bytes:
    """The graph with every float weight and every float tensor between ops rounded to bf16, but for `keep_f32`."""
    import re

    import onnx
    from onnx import helper, numpy_helper, shape_inference

    model = shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    graph = model.graph
    exact = [n for n in graph.node if keep_f32 and re.search(keep_f32, n.name)]
    exact_weights = {i for n in exact for i in n.input}
    for init in graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and init.name not in exact_weights:
            init.CopyFrom(numpy_helper.from_array(to_bf16(numpy_helper.to_array(init)), init.name))
    floats = {v.name for v in [*graph.value_info, *graph.output] if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    nodes = []
    for node in graph.node:
        nodes.append(node)
        if any(node is n for n in exact):
            continue
        for i, out in enumerate(node.output):
            if out in floats:
                node.output[i] = f"{out}/exact"
                nodes.append(helper.make_node("Cast", [f"{out}/exact"], [f"{out}/bf16"], to=onnx.TensorProto.BFLOAT16))
                nodes.append(helper.make_node("Cast", [f"{out}/bf16"], [out], to=onnx.TensorProto.FLOAT))
    del graph.node[:]
    graph.node.extend(nodes)
    return model.SerializeToString()


def emulated_bf16(model):
    """The service's ONNX Runtime pose model with its session swapped for the bf16-rounded graph."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every Cast pair
    opts.intra_op_num_threads = 1
    body = bf16_body(model.variant.path(model.settings.model_dir), model.spec.f32_scope)
    model.session = ort.InferenceSession(body, opts)
    return model


@pytest.mark.parametrize("imgsz", [640, 512])
def test_emulated_bf16_body_keeps_coordinates_in_float32(imgsz):
    model = emulated_bf16(load_pose(POSE_VARIANT=f"ort-fp32-{imgsz}"))
    exact, _ = on_half_pixels(load_pose(POSE_VARIANT=f"ort-fp32-{imgsz}"), at_input_size(imgsz, 4))
    share, n = on_half_pixels(model, at_input_size(imgsz))
    assert n > 500, f"only {n} coordinates: the photos should hold many people"
    assert share < LIMIT, f"{share:.0%} of {n} coordinates on whole or half pixels: decoded in bf16"
    assert exact < LIMIT


@pytest.mark.parametrize("name", ["ov-bf16-640", "ov-bf16-512-square"])
def test_native_bf16_variant_keeps_coordinates_in_float32(name):
    model = load_pose(POSE_VARIANT=name)
    if model.describe()["runs_as"] != "bf16":
        pytest.skip(f"this CPU has no native bf16: OpenVINO runs {name} in f32 (the emulated test covers it)")
    model.wait_steady()
    assert model.describe()["f32_scope_runs_as"] == ["f32"], "OpenVINO did not keep the head's outputs in float32"
    share, n = on_half_pixels(model, at_input_size(model.variant.imgsz))
    assert n > 500 and share < LIMIT, f"{share:.0%} of {n} coordinates on whole or half pixels"


def test_float32_reference_sits_on_half_pixels_by_chance_only():
    """The control: ONNX Runtime fp32 lands on whole or half pixels rarely, so the limit has room."""
    share, n = on_half_pixels(load_pose(POSE_VARIANT="ort-fp32-640"), at_input_size(640))
    assert n > 500 and share < 0.05, f"{share:.1%} of {n}"


def test_served_graph_ends_before_the_decode(settings):
    """The exported graph's outputs are the head's raw maps; boxes and keypoints are decoded in NumPy."""
    import onnx

    from cloudpose.tasks.pose.decode import OUTPUTS
    from cloudpose.tasks.pose.prepare import HEAD

    graph = onnx.load(str(settings.model_dir / "yolo11n-pose.onnx")).graph
    assert [o.name for o in graph.output] == list(OUTPUTS)
    head_ops = {n.op_type for n in graph.node if n.name.startswith(HEAD)}
    assert not head_ops & {"Softmax", "Add", "Sub", "Div"}, f"decode ops left in the head: {head_ops}"
