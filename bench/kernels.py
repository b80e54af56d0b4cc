"""Where the model's time goes: per kernel and executed precision, for each serving variant, on this CPU.

    python -m bench.kernels                          # pose's variants at 640×480, one thread
    python -m bench.kernels --task detect --variants ort-int8-416 ov-int8-416

OpenVINO: the compiled model's own profile (PERF_COUNT): node type, the kernel it chose
(`brgconv_avx2_f32`, `jit_avx2_I8`, ...) and so the precision it really ran in. ONNX Runtime: its
session profile by operator (QLinearConv is int8, Conv float). Float islands inside an int8 model
show up as f32 kernels; this is how the SiLU that NNCF had split (a FakeQuantize between Sigmoid
and Multiply, 36 ms of pose's 108 on an AVX2 EPYC) was found.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from cloudpose.config import Settings
from cloudpose.tasks import TASKS
from cloudpose.variants import parse

from .flops import gflop, peak_gflops, runs_in

SHAPES = {"pose": (640, 480), "detect": (416, 416)}
Kernels = collections.Counter[tuple[str, str]]  # (node or operator type, kernel or provider) → ms per inference
VARIANTS = {"pose": ["ort-fp32-640", "ort-int8-640", "ov-fp32-640", "ov-int8-640"],
            "detect": ["ort-fp32-416", "ort-int8-416", "ov-fp32-416", "ov-int8-416"]}  # fmt: skip


def openvino_profile(
    path: Path, precision: str, shape: tuple[int, int], runs: int, f32_scope: str = ""
) -> tuple[list[float], Kernels]:
    """Compiled as the service compiles it (`compile_config`: bf16 where native, `f32_scope` kept float32), profiled."""
    import openvino as ov

    from cloudpose.backends.openvino_backend import compile_config, keep_float32, runs_native_bf16, with_uint8_input

    width, height = shape
    core = ov.Core()
    model = core.read_model(str(path))
    native = runs_native_bf16(precision, core)
    if native and f32_scope:
        keep_float32(model, f32_scope)
    model.reshape([1, 3, height, width])
    config = {**compile_config(1, native), "PERF_COUNT": True}
    request = core.compile_model(with_uint8_input(model), "CPU", config).create_infer_request()
    image = np.random.default_rng(0).integers(0, 256, (1, height, width, 3), dtype=np.uint8)
    for _ in range(3):
        request.infer({0: image})
    times, profiles = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        request.infer({0: image})
        times.append((time.perf_counter() - t0) * 1e3)
        run = collections.Counter()
        for p in request.profiling_info:
            run[(p.node_type, p.exec_type)] += p.real_time.total_seconds() * 1e3
        profiles.append(run)
    # The run of median length: a mean would carry a host hiccup into every kernel's share.
    kernels = sorted(profiles, key=lambda run: sum(run.values()))[len(profiles) // 2]
    return times, kernels


def onnxruntime_profile(path: Path, shape: tuple[int, int], runs: int) -> tuple[list[float], Kernels]:
    """Run with the service's session options (`_options`: one thread, no spinning), profiled by operator."""
    import onnxruntime as ort

    from cloudpose.backends.onnxruntime_backend import _options

    width, height = shape
    with tempfile.TemporaryDirectory(prefix="cloudpose-kernels-") as work:
        opts = _options(1, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        opts.enable_profiling, opts.profile_file_prefix = True, os.path.join(work, "profile")
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)}
        for _ in range(3):
            session.run(None, feed)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            session.run(None, feed)
            times.append((time.perf_counter() - t0) * 1e3)
        events = json.loads(Path(session.end_profiling()).read_text())
    kernels = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e["args"].get("op_name", "?")
            kernels[(op, e["args"].get("provider", "CPU").removesuffix("ExecutionProvider"))] += (
                e["dur"] / 1e3 / (runs + 3)
            )
    return times, kernels


def runs_as(variant) -> str:
    """What OpenVINO runs a variant's float parts in here, as `/_/ready` reports it ("" for ONNX Runtime)."""
    if variant.backend != "openvino":
        return ""
    import openvino as ov

    from cloudpose.backends.openvino_backend import runs_native_bf16

    return "bf16" if runs_native_bf16(variant.precision, ov.Core()) else "f32"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=list(VARIANTS), default="pose")
    parser.add_argument("--variants", nargs="+", default=None)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--top", type=int, default=12, help="kernels listed per variant")
    args = parser.parse_args(argv)
    spec = TASKS[args.task].model
    model_dir = Settings.from_env().model_dir
    width, height = SHAPES[args.task]
    work = gflop(str(model_dir / f"{spec.stem}.onnx"), width, height)
    print(f"{args.task} at {width}x{height}: {work:.2f} GFLOP per image; one thread; median of {args.runs} runs")
    baseline = None
    for name in args.variants or VARIANTS[args.task]:
        variant = parse(name, spec)
        if variant.backend == "openvino":
            times, kernels = openvino_profile(variant.path(model_dir), variant.precision, SHAPES[args.task], args.runs,
                                             spec.f32_scope)  # fmt: skip
        else:
            times, kernels = onnxruntime_profile(variant.path(model_dir), SHAPES[args.task], args.runs)
        ms = statistics.median(times)
        baseline = baseline or ms
        precision = runs_in(name, runs_as(variant))
        share = work / (ms / 1e3) / peak_gflops(precision)
        print(f"\n{name}: {ms:.1f} ms ({baseline / ms:.2f}x {args.variants[0] if args.variants else VARIANTS[args.task][0]}), "
              f"{work / ms * 1e3:.0f} GOP/s = {100 * share:.0f}% of this core's nominal {precision} peak")  # fmt: skip
        total = sum(kernels.values())
        for (node, kernel), t in kernels.most_common(args.top):
            print(f"  {node:22s} {kernel:26s} {t:7.2f} ms  {100 * t / total:5.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
