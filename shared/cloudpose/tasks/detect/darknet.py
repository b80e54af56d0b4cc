"""Darknet cfg + weights → ONNX: the small subset yolov3-tiny needs, with darknet's exact semantics.

OpenCV 5 dropped the Darknet importer and no maintained package converts these files, so this
module does it from the format itself. The graph ends at the raw convolutions feeding each
[yolo] layer (no sigmoid/exp), so decoding stays in NumPy (`decode.py`) and any runtime that reads
plain ONNX (ONNX Runtime, OpenVINO) can serve it. Batch norm is folded into the convolutions
exactly as darknet evaluates it at inference: (x - mean) / (sqrt(var) + .000001) * scale + bias
(blas.c normalize_cpu; note the epsilon is added to the standard deviation, not the variance).

    python -m cloudpose.tasks.detect.darknet CFG WEIGHTS OUT.onnx [--mask 0,1,2 --mask 1,2,3]
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

DARKNET_BN_EPS = 0.000001  # added to sqrt(rolling_variance), as darknet's normalize_cpu does
LEAKY_ALPHA = 0.1
OPSET = 17
INPUT = "images"
METADATA_KEY = "cloudpose.yolo"


@dataclass(frozen=True)
class Section:
    """One [type] block of a cfg, its options as written (strings)."""

    type: str
    options: dict[str, str] = field(default_factory=dict)

    def int(self, key: str, default: int | None = None) -> int:
        if key not in self.options:
            if default is None:
                raise ValueError(f"[{self.type}] needs {key}=")
            return default
        return int(self.options[key])

    def ints(self, key: str) -> list[int]:
        return [int(v) for v in self.options[key].split(",") if v.strip()]

    def floats(self, key: str) -> list[float]:
        return [float(v) for v in self.options[key].split(",") if v.strip()]


@dataclass(frozen=True)
class YoloLayer:
    """What decoding needs from one [yolo] layer: its anchors (network-input pixels) and grid stride."""

    anchors: tuple[tuple[float, float], ...]  # the masked anchors, in mask order
    mask: tuple[int, ...]
    stride: int  # input pixels per grid cell
    classes: int
    output: str  # ONNX output name

    @property
    def channels(self) -> int:
        return len(self.mask) * (5 + self.classes)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "YoloLayer":
        return cls(tuple(tuple(a) for a in d["anchors"]), tuple(d["mask"]), d["stride"], d["classes"], d["output"])


@dataclass(frozen=True)
class Conv:
    """A convolution's darknet weights, batch norm still separate."""

    bias: np.ndarray  # (filters,) darknet "biases" (the BN beta when batch_normalize)
    weights: np.ndarray  # (filters, channels, size, size)
    scales: np.ndarray | None = None  # BN gamma
    mean: np.ndarray | None = None
    var: np.ndarray | None = None

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """(weights, bias) of one plain convolution equal to conv → darknet batch norm."""
        if self.scales is None:
            return self.weights, self.bias
        std = np.sqrt(self.var.astype(np.float64)) + DARKNET_BN_EPS
        gain = self.scales.astype(np.float64) / std
        w = self.weights.astype(np.float64) * gain[:, None, None, None]
        b = self.bias.astype(np.float64) - self.mean.astype(np.float64) * gain
        return w.astype(np.float32), b.astype(np.float32)


def parse_cfg(text: str) -> list[Section]:
    """Sections of a darknet cfg in order, [net] first; comments (# ;) and blank lines dropped."""
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"\[([A-Za-z_]+)\]", line)
        if m:
            sections.append(Section(m.group(1).lower()))
        elif "=" in line and sections:
            key, value = line.split("=", 1)
            sections[-1].options[key.strip()] = value.strip()
        else:
            raise ValueError(f"cfg line {number}: cannot parse {raw!r}")
    if not sections or sections[0].type not in ("net", "network"):
        raise ValueError("cfg must start with [net]")
    return sections


def set_masks(text: str, masks: Sequence[Sequence[int]]) -> str:
    """The cfg text with each [yolo] layer's `mask =` replaced, in order (for tools that read cfgs)."""
    n_yolo = sum(s.type == "yolo" for s in parse_cfg(text))
    if n_yolo != len(masks):
        raise ValueError(f"{len(masks)} masks for {n_yolo} [yolo] layers")
    out, index, in_yolo = [], -1, False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            in_yolo = line.lower() == "[yolo]"
            index += in_yolo
        if in_yolo and re.match(r"mask\s*=", line):
            raw = "mask = " + ",".join(str(int(i)) for i in masks[index])
        out.append(raw)
    return "\n".join(out) + "\n"


def read_weights(path: Path, sections: Sequence[Section]) -> list[Conv]:
    """Every [convolutional] layer's parameters, in cfg order; the file must be consumed exactly."""
    data = Path(path).read_bytes()
    major, minor, _revision = np.frombuffer(data, np.int32, 3)
    wide_seen = (major * 10 + minor) >= 2 and major < 1000 and minor < 1000
    offset = 12 + (8 if wide_seen else 4)
    if (len(data) - offset) % 4:
        raise ValueError(f"{path}: payload is not a whole number of float32s")
    floats = np.frombuffer(data, np.float32, offset=offset)
    pos, convs = 0, []

    def take(n: int) -> np.ndarray:
        nonlocal pos
        if pos + n > floats.size:
            raise ValueError(f"{path}: ends after {pos} floats, the cfg needs more")
        pos += n
        return floats[pos - n:pos].copy()

    for sec, c_in in zip(sections[1:], _inputs_channels(sections)):
        if sec.type != "convolutional":
            continue
        f, k = sec.int("filters"), sec.int("size", 1)
        bias = take(f)
        bn = sec.int("batch_normalize", 0) == 1
        scales, mean, var = (take(f), take(f), take(f)) if bn else (None, None, None)
        weights = take(f * c_in * k * k).reshape(f, c_in, k, k)
        convs.append(Conv(bias, weights, scales, mean, var))
    if pos != floats.size:
        raise ValueError(f"{path}: {floats.size - pos} floats left over: weights and cfg do not match")
    return convs


def _channels_in(sections: Sequence[Section]) -> int:
    return sections[0].int("channels", 3)


def _inputs_channels(sections: Sequence[Section]) -> list[int]:
    """Input channel count of each layer (sections[1:]) and, on the way, the checks of the layer types."""
    outs: list[int] = []
    ins: list[int] = []
    prev = _channels_in(sections)
    for i, sec in enumerate(sections[1:]):
        ins.append(prev)
        if sec.type == "convolutional":
            if sec.int("groups", 1) != 1:
                raise NotImplementedError("grouped convolutions")
            prev = sec.int("filters")
        elif sec.type == "route":
            prev = sum(outs[j] for j in _route_sources(sec, i))
        elif sec.type not in ("maxpool", "upsample", "yolo"):
            raise NotImplementedError(f"[{sec.type}] layers (this converter covers yolov3-tiny's)")
        outs.append(prev)
    return ins


def _route_sources(sec: Section, index: int) -> list[int]:
    if "groups" in sec.options and sec.int("groups") != 1:
        raise NotImplementedError("[route] groups")
    src = [j if j >= 0 else index + j for j in sec.ints("layers")]
    if not 1 <= len(src) <= 2 or any(not 0 <= j < index for j in src):
        raise ValueError(f"[route] at layer {index}: bad layers={sec.options['layers']}")
    return src


def build(
    sections: Sequence[Section], convs: Sequence[Conv], *, masks: Sequence[Sequence[int]] | None = None
) -> tuple[onnx.ModelProto, list[YoloLayer]]:
    """The ONNX ModelProto (input `images` [1,3,H,W], outputs `yolo_i`) and its YOLO layers."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    layer_out: list[str] = []  # tensor name of each layer's output
    layer_ch: list[int] = []
    layer_stride: list[int] = []
    yolos: list[YoloLayer] = []
    yolo_index: set[int] = set()
    prev, ch, stride = INPUT, _channels_in(sections), 1
    conv_iter = iter(convs)
    n_yolo = sum(s.type == "yolo" for s in sections)
    if masks is not None and len(masks) != n_yolo:
        raise ValueError(f"{len(masks)} masks for {n_yolo} [yolo] layers")

    for i, sec in enumerate(sections[1:]):
        name = f"l{i}_{sec.type}"
        if sec.type == "convolutional":
            conv = next(conv_iter)
            k, s = sec.int("size", 1), sec.int("stride", 1)
            pad = k // 2 if sec.int("pad", 0) else sec.int("padding", 0)
            w, b = conv.folded()
            inits += [numpy_helper.from_array(w, f"{name}.w"), numpy_helper.from_array(b, f"{name}.b")]
            out = f"{name}"
            nodes.append(helper.make_node(
                "Conv", [prev, f"{name}.w", f"{name}.b"], [out], name=name,
                kernel_shape=[k, k], strides=[s, s], pads=[pad, pad, pad, pad]))
            act = sec.options.get("activation", "logistic")  # darknet's default
            if act == "leaky":
                nodes.append(helper.make_node("LeakyRelu", [out], [f"{name}.act"], name=f"{name}.act", alpha=LEAKY_ALPHA))
                out = f"{name}.act"
            elif act == "logistic":
                nodes.append(helper.make_node("Sigmoid", [out], [f"{name}.act"], name=f"{name}.act"))
                out = f"{name}.act"
            elif act != "linear":
                raise NotImplementedError(f"activation={act}")
            ch, stride = sec.int("filters"), stride * s
        elif sec.type == "maxpool":
            s = sec.int("stride", 1)
            k = sec.int("size", s)
            p = sec.int("padding", k - 1)  # darknet: out = (in + padding - size) / stride + 1
            # darknet offsets the window by -padding/2: the padding goes right/bottom first; MaxPool pads with -inf
            out = name
            nodes.append(helper.make_node(
                "MaxPool", [prev], [out], name=name, kernel_shape=[k, k], strides=[s, s],
                pads=[p // 2, p // 2, p - p // 2, p - p // 2]))
            stride *= s
        elif sec.type == "upsample":
            s = sec.int("stride", 2)
            if s < 1 or float(sec.options.get("scale", "1")) != 1.0:
                raise NotImplementedError("[upsample] with negative stride or scale")
            inits.append(numpy_helper.from_array(np.array([1, 1, s, s], np.float32), f"{name}.scales"))
            out = name
            nodes.append(helper.make_node(
                "Resize", [prev, "", f"{name}.scales"], [out], name=name, mode="nearest",
                coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
            if stride % s:
                raise ValueError(f"[upsample] at layer {i} below stride 1")
            stride //= s
        elif sec.type == "route":
            src = _route_sources(sec, i)
            if any(j in yolo_index for j in src):
                raise NotImplementedError("[route] from a [yolo] layer (darknet routes its activated output)")
            if len({layer_stride[j] for j in src}) != 1:
                raise ValueError(f"[route] at layer {i} joins different strides")
            if len(src) == 1:
                out = layer_out[src[0]]
            else:
                out = name
                nodes.append(helper.make_node("Concat", [layer_out[j] for j in src], [out], name=name, axis=1))
            ch, stride = sum(layer_ch[j] for j in src), layer_stride[src[0]]
        elif sec.type == "yolo":
            out = _yolo(sec, len(yolos), prev, ch, stride, masks, yolos)
            nodes.append(helper.make_node("Identity", [prev], [out], name=out))
            yolo_index.add(i)
        else:
            raise NotImplementedError(f"[{sec.type}] layers (this converter covers yolov3-tiny's)")
        layer_out.append(out)
        layer_ch.append(ch)
        layer_stride.append(stride)
        prev = out
    if next(conv_iter, None) is not None:
        raise ValueError("more convolution weights than [convolutional] layers")

    graph = helper.make_graph(
        nodes, "darknet",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [1, _channels_in(sections), "height", "width"])],
        [helper.make_tensor_value_info(y.output, TensorProto.FLOAT, [1, y.channels, f"{y.output}_h", f"{y.output}_w"])
         for y in yolos],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="cloudpose.darknet")
    model.ir_version = 8  # readable by every ONNX Runtime and OpenVINO release of the last years
    net = sections[0]
    meta = {"layers": [asdict(y) for y in yolos], "width": net.int("width", 416), "height": net.int("height", 416)}
    helper.set_model_props(model, {METADATA_KEY: json.dumps(meta)})
    return model, yolos


def _yolo(sec: Section, index: int, prev: str, ch: int, stride: int,
          masks: Sequence[Sequence[int]] | None, yolos: list[YoloLayer]) -> str:
    anchors = sec.floats("anchors")
    num = sec.int("num", len(anchors) // 2)
    if len(anchors) != 2 * num:
        raise ValueError(f"[yolo] {index}: num={num} but {len(anchors) // 2} anchors")
    cfg_mask = sec.ints("mask") if "mask" in sec.options else list(range(num))
    mask = list(masks[index]) if masks is not None else cfg_mask
    if len(mask) != len(cfg_mask) or any(not 0 <= m < num for m in mask):
        raise ValueError(f"[yolo] {index}: mask {mask} must be {len(cfg_mask)} anchor indices below {num}")
    for key, neutral in (("scale_x_y", 1.0), ("new_coords", 0.0)):
        if float(sec.options.get(key, neutral)) != neutral:
            raise NotImplementedError(f"[yolo] {key}")
    classes = sec.int("classes", 20)
    layer = YoloLayer(tuple((anchors[2 * m], anchors[2 * m + 1]) for m in mask), tuple(mask), stride, classes,
                      f"yolo_{index}")
    if ch != layer.channels:
        raise ValueError(f"[yolo] {index}: input has {ch} channels, mask and classes need {layer.channels}")
    yolos.append(layer)
    return layer.output


def convert(cfg: Path, weights: Path, target: Path, *, masks: Sequence[Sequence[int]] | None = None) -> list[YoloLayer]:
    """Write the ONNX model for `cfg` + `weights` to `target` (atomically) and return its YOLO layers.

    `masks` replaces each [yolo] layer's anchor mask (the published yolov3-tiny.cfg says 0,1,2 for
    its second layer where the weights were trained with 1,2,3). The layers are also stored in
    the model's metadata (`layers_from_metadata`), so a server needs only the .onnx file.
    """
    import onnx

    sections = parse_cfg(Path(cfg).read_text())
    model, layers = build(sections, read_weights(weights, sections), masks=masks)
    onnx.checker.check_model(model, full_check=True)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.part")
    try:
        part.write_bytes(model.SerializeToString())
        part.chmod(0o644)
        part.replace(target)
    finally:
        part.unlink(missing_ok=True)
    return layers


def layers_from_metadata(metadata: Mapping[str, str]) -> list[YoloLayer]:
    """YOLO layers from a model's metadata map (ORT: `session.get_modelmeta().custom_metadata_map`)."""
    return [YoloLayer.from_dict(y) for y in json.loads(metadata[METADATA_KEY])["layers"]]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="darknet cfg + weights → ONNX (raw YOLO maps as outputs)")
    p.add_argument("cfg", type=Path)
    p.add_argument("weights", type=Path)
    p.add_argument("target", type=Path)
    p.add_argument("--mask", action="append", help="one per [yolo] layer, in cfg order, e.g. --mask 3,4,5 --mask 1,2,3")
    a = p.parse_args(argv)
    masks = [[int(v) for v in m.split(",")] for m in a.mask] if a.mask else None
    for y in convert(a.cfg, a.weights, a.target, masks=masks):
        print(f"{y.output}: stride {y.stride}, mask {list(y.mask)}, anchors {[list(x) for x in y.anchors]}")


if __name__ == "__main__":
    main()
