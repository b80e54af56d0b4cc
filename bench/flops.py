"""The physical limit: a model's arithmetic per image, this CPU's nominal peak per precision, and the share reached.

    python -m bench.flops                # GFLOP per image of each task at its served input shapes; this CPU's peaks

FLOPs count the multiply-adds of every convolution and MatMul (2 per MAC) at a given input shape,
from the exported ONNX graph: the work a backend cannot skip. The rest of the graph
(activations, concats, resizes) is under 1% of it for both models.

The peak is one core's nominal throughput from its vector units at the clock /proc/cpuinfo reports
(a VM reports its base clock and the core may boost past it: ONNX Runtime's fp32 yolov3-tiny reached
106% of the figure on an AVX2 EPYC, so compare shares within one table; a vCPU may also be a
hyperthread sharing the core's units):
- fp32: 2 FMA units × 8 lanes (AVX2) × 2; AVX-512 doubles the lanes on Intel, while AMD Zen 4 runs
  512-bit instructions in two halves (no gain).
- int8 without VNNI (AVX2): `vpmaddubsw` + `vpmaddwd` + `vpaddd` for 32 MACs on 2 ports, 21⅓ MAC per cycle,
  only 1.33× fp32, which is why int8 gains little on AVX2-only CPUs; VNNI's `vpdpbusd` does 32 (256-bit)
  or 64 (512-bit) MACs in one instruction.
- bf16: AVX-512 BF16 `vdpbf16ps` 32 MACs per 512-bit instruction; AMX: 1024 bf16 / 2048 int8 ops per cycle.
"""

from __future__ import annotations

import argparse
import functools
import math
from pathlib import Path

from cloudpose.variants import cpu_class, cpu_features


@functools.lru_cache(maxsize=64)
def gflop(onnx_path: str, width: int, height: int) -> float:
    """GFLOP (2 × MACs of convolutions and MatMuls) of one image at width × height through the ONNX model.

    OpenVINO reads the graph and propagates the fixed shape (ONNX's own inference stops at the
    attention block's computed reshapes)."""
    import openvino as ov

    model = ov.Core().read_model(onnx_path)
    model.reshape([1, 3, height, width])
    macs = 0
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind not in ("Convolution", "GroupConvolution", "MatMul"):
            continue
        out = list(op.get_output_shape(0))
        if kind == "Convolution":  # weights [Cout, Cin, kh, kw]
            macs += math.prod(out) * math.prod(list(op.get_input_shape(1))[1:])
        elif kind == "GroupConvolution":  # weights [G, Cout/G, Cin/G, kh, kw]
            macs += math.prod(out) * math.prod(list(op.get_input_shape(1))[2:])
        else:
            a = list(op.get_input_shape(0))
            macs += math.prod(out) * (a[-2] if op.get_attributes().get("transpose_a") else a[-1])
    return 2 * macs / 1e9


def clock_ghz(cpuinfo: str | None = None) -> float:
    text = cpuinfo if cpuinfo is not None else Path("/proc/cpuinfo").read_text()
    mhz = [float(line.split(":")[1]) for line in text.splitlines() if line.startswith("cpu MHz")]
    return max(mhz) / 1e3 if mhz else math.nan


def vendor(cpuinfo: str | None = None) -> str:
    text = cpuinfo if cpuinfo is not None else Path("/proc/cpuinfo").read_text()
    for line in text.splitlines():
        if line.startswith("vendor_id"):
            return "amd" if "AMD" in line else "intel" if "Intel" in line else "other"
    return "other"


def ops_per_cycle(precision: str, features: set[str], cpu_vendor: str) -> float:
    """One core's nominal ops per cycle (an FMA or MAC is 2) for `precision` as it runs here."""
    wide = "avx512f" in features and cpu_vendor == "intel"  # AMD's AVX-512 is two 256-bit halves
    if precision == "int8":
        if "amx_int8" in features:
            return 2048
        if "avx512_vnni" in features:
            return 256 if wide else 128
        if "avx_vnni" in features:
            return 128
        if "avx2" in features:
            return 2 * 2 * 32 / 3  # vpmaddubsw + vpmaddwd + vpaddd per 32 MACs, 2 ports
    if precision == "bf16":
        if "amx_bf16" in features:
            return 1024
        if "avx512_bf16" in features:
            return 128 if wide else 64
    if "avx2" in features and "fma" in features:
        return 64 if wide else 32
    return 8  # SSE without FMA: 4 lanes, separate mul and add


def peak_gflops(precision: str, features: set[str] | None = None, cpuinfo: str | None = None) -> float:
    """Nominal single-core peak GFLOP/s (or GOP/s for int8) for `precision` as it runs on this CPU."""
    text = cpuinfo if cpuinfo is not None else Path("/proc/cpuinfo").read_text()  # read once for all three
    features = cpu_features(text) if features is None else features
    return ops_per_cycle(precision, features, vendor(text)) * clock_ghz(text)


def runs_in(variant: str, runs_as: str = "") -> str:
    """The precision a variant's arithmetic runs in: its name's, unless OpenVINO said otherwise (bf16 without bf16)."""
    precision = variant.split("-")[1] if variant.count("-") >= 2 else "fp32"
    return "fp32" if precision == "bf16" and runs_as == "f32" else precision


def main(argv: list[str] | None = None) -> int:
    from cloudpose.config import Settings
    from cloudpose.tasks import TASKS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    model_dir = Settings.from_env().model_dir
    features = cpu_features()
    print(f"CPU class {cpu_class(features)}, vendor {vendor()}, {clock_ghz():.2f} GHz reported")
    for precision in ("fp32", "int8", "bf16"):
        print(f"  nominal one-core peak, {precision}: {peak_gflops(precision):.0f} GOP/s")
    for name, shapes in (
        ("pose", [(640, 480), (480, 640), (640, 640), (640, 448), (512, 384)]),
        ("detect", [(416, 416)]),
    ):
        spec = TASKS[name].model
        path = str(Path(model_dir) / f"{spec.stem}.onnx")
        print(f"{name} ({spec.stem}): " + ", ".join(f"{w}x{h} {gflop(path, w, h):.2f} GFLOP" for w, h in shapes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
