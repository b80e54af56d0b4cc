"""`make bench`: every serving variant of each task against that task's yardstick, in one run.

pose: the variants against a typical FastAPI + Ultralytics (torch) server; detect: the variants
against the assignment's peer server (Flask + OpenCV 4.10 Darknet, in the reference venv). For each
server: the model's own ms/img; HTTP end to end at concurrency 1; req/s in a 0.5-CPU / 512 MiB
cgroup (torch gets 1536 MiB: it cannot run in 512) at concurrency 4, also paired with rounds
against a yardstick pod kept up all run; latency p50/p95 at concurrency 1, 2, 4, 8 in that cgroup;
accuracy through the API on coco-pose-dev (keypoint AP, person-box AP) at the serving threshold and
an AP-style one; peak memory; cold start. Writes docs/benchmarks.md (bench/report.py) and plots.

    python -m bench.serving                          # both tasks, every variant (about 40 minutes on 2 vCPUs)
    python -m bench.serving --task detect            # detect only; the pose section is kept from its last run
    python -m bench.serving --task detect --quick --variants ort-fp32-416 --out /tmp/b   # a smoke run
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import contextlib
import datetime as dt
import multiprocessing
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import orjson
from rich.console import Console

from cloudpose.deployment import CPU_CORES, MEMORY_BYTES
from cloudpose.tasks import TASKS
from cloudpose.variants import cpu_class, cpu_features

from . import flops, reference, report
from .accuracy import DEFAULT_DATA, evaluate, target
from .load import closed_loop, one_client
from .report import Row, Section
from .suites import SUITES, Suite
from loadtest.cgroup import Cgroup, available as cgroup_unavailable
from loadtest.process import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
console = Console()


def model_times(suite: Suite, variant: str, files: list[Path]) -> dict[str, float | str]:
    """Median model-call ms, median in-process pipeline ms (decode → result), one thread; and the physical limit:
    GFLOP per photo at the shape it is served at, GOP/s reached and this core's nominal peak (bench.flops)."""
    if suite.task == "detect" and variant == suite.baseline:
        return peer_model_times(files)
    from cloudpose.backends import load
    from cloudpose.config import Settings
    from cloudpose.imaging import decode
    from cloudpose.letterbox import plan

    task = TASKS[suite.task]
    knob = {"POSE_BACKEND": "ultralytics"} if variant == suite.baseline else {f"{task.prefix}_VARIANT": variant}
    settings = Settings.from_env({**os.environ, "POSE_THREADS": "1", **knob})
    model = load(task, settings)
    model.wait_steady()
    graph = str(settings.model_dir / f"{task.model.stem}.onnx")  # the torch baseline runs this same network
    blobs = [f.read_bytes() for f in files]
    for data in blobs[:3]:
        model(decode(data, max_pixels=settings.max_pixels, min_side=model.min_side))
    infer, total, work = [], [], []
    for data in blobs:
        t0 = time.perf_counter()
        image = decode(data, max_pixels=settings.max_pixels, min_side=model.min_side)
        result = model(image)
        total.append((time.perf_counter() - t0) * 1e3)
        infer.append(result.speed["inference"])
        height, width = image.pixels.shape[:2]
        box = plan(width, height, model.variant.imgsz, shapes=model.shapes, stretch=task.model.stretch)
        work.append(flops.gflop(graph, box.input_w, box.input_h))
    precision = flops.runs_in(variant, getattr(model, "runs_as", ""))
    return {"model_ms": statistics.median(infer), "pipeline_ms": statistics.median(total), "gflop": statistics.median(work),
            "gops": statistics.median(w / ms * 1e3 for w, ms in zip(work, infer)), "precision": precision,
            "peak_gops": flops.peak_gflops(precision)}  # fmt: skip


def peer_model_times(files: list[Path]) -> dict[str, float | str]:
    """The peer's model time: OpenCV 4.10's forward (1 thread) on the stretched blob it builds, median; the same
    network's arithmetic at that 416×416 blob."""
    from cloudpose.config import Settings

    model_dir = Settings.from_env().model_dir
    paths = reference.official(model_dir)
    blobs = {str(i): reference.model_input(f.read_bytes(), "stretch").blob for i, f in enumerate(files)}
    doc, _ = reference.run(blobs, paths["cfg"], paths["weights"], conf=0.3, iou=0.1, nms="agnostic")
    ms = statistics.median(im["forward_ms"] for im in doc["images"])
    size = TASKS["detect"].model.imgsz
    work = flops.gflop(str(model_dir / f"{TASKS['detect'].model.stem}.onnx"), size, size)
    return {"model_ms": ms, "gflop": work, "gops": work / ms * 1e3, "precision": "fp32", "peak_gops": flops.peak_gflops("fp32")}


def paired_rounds(variant_url: str, baseline_url: str, bodies: list[bytes], rounds: int, seconds: float) -> list[tuple[float, float]]:
    """(baseline, variant) req/s at concurrency 4 from rounds that alternate the two, both pods up.

    The host's speed drifts over a run of many minutes (a shared VM): a ratio of two measurements
    taken seconds apart, repeated, says more than one of two taken ten minutes apart."""
    pairs = []
    for _ in range(rounds):
        base = closed_loop(baseline_url, bodies, 4, duration=seconds, warmup=1)
        ours = closed_loop(variant_url, bodies, 4, duration=seconds, warmup=1)
        if base.rps and not (base.errors or ours.errors):
            pairs.append((base.rps, ours.rps))
    return pairs


def measure(suite: Suite, variant: str, files: list[Path], bodies: list[bytes], args: argparse.Namespace,
            yardstick: str | None = None) -> Row:
    """Every figure of one server; `yardstick` is the URL of the pod the paired rounds alternate with."""
    row = Row(variant)
    is_base = variant == suite.baseline
    served = target(suite.task, variant)
    low = target(suite.task, variant, (suite.baseline_confs if is_base else suite.confs)[1])
    console.print(f"[bold]{variant}[/]: model time")
    # A fresh interpreter per variant: torch, loaded in-process for the baseline's row, slowed OpenVINO's
    # calls made in the same process by half (112 ms against 73 over HTTP, AMD EPYC, December 2026).
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        times = pool.submit(model_times, suite, variant, files).result()
    for key, value in times.items():
        setattr(row, key, value)
    console.print(f"  model {row.model_ms:.1f} ms ({row.gflop:.2f} GFLOP, {row.gops:.0f} of {row.peak_gops:.0f} GOP/s "
                  f"{row.precision} peak), pipeline {row.pipeline_ms:.1f} ms; HTTP at concurrency 1 and AP")
    with ServerProcess(served.args, env={**served.env, "POSE_MAX_INFLIGHT": "1"}, timeout=180) as server:
        row.runs_as = server.ready["model"].get("runs_as", "")
        row.e2e_c1_ms = one_client(server.url + served.path, bodies, duration=args.seconds / 2, warmup=1).p50
        row.ap = evaluate(server.url, served.path, args.data, suite.task)["AP"]
    with ServerProcess(low.args, env=low.env, timeout=180) as server:
        row.ap_low = evaluate(server.url, low.path, args.data, suite.task)["AP"]
    console.print(f"  e2e {row.e2e_c1_ms:.1f} ms, AP {row.ap:.2f} / {row.ap_low:.2f}; pod-sized cgroup")
    memory = suite.baseline_memory if is_base else MEMORY_BYTES
    with Cgroup(f"bench-{os.getpid()}", CPU_CORES, memory) as cg, ServerProcess(
        served.args, env=served.env, prefix=cg.prefix(), timeout=180
    ) as server:
        row.cold_start_s = server.cold_start
        url = server.url + served.path
        for concurrency in args.concurrency:
            stats = closed_loop(url, bodies, concurrency, duration=args.seconds, warmup=2)
            row.latency[concurrency] = (stats.p50, stats.p95)
            row.errors += stats.errors
            if concurrency == 4:
                row.rps_c4 = stats.rps
            console.print(f"  c={concurrency}: {stats.rps:.2f} req/s, p50 {stats.p50:.0f} ms, p95 {stats.p95:.0f} ms, {stats.errors} errors")
        if yardstick and args.pairs:
            row.paired_rps = paired_rounds(url, yardstick + served.path, bodies, args.pairs, args.seconds / 2)
            console.print("  paired with the yardstick's pod: "
                          + ", ".join(f"{o:.2f} vs {b:.2f} req/s ({o / b:.2f}×)" for b, o in row.paired_rps))
        row.peak_rss_mib = server.peak_rss_mib()
        row.cgroup_peak_mib = cg.peak_memory() / 2**20
        row.oom_kills = cg.oom_kills()
    with ServerProcess(served.args, env=served.env, timeout=180) as server:  # full CPU: the cold-start target's figure
        row.cold_start_full_s = server.cold_start
    console.print(f"  peak RSS {row.peak_rss_mib:.0f} MiB, cold start {row.cold_start_full_s:.2f} s "
                  f"({row.cold_start_s:.2f} s in the pod)")
    return row


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def run_meta(suite: Suite, args: argparse.Namespace, argv: list[str]) -> dict:
    """Where, when and how a section was measured: printed beside its tables."""
    features = cpu_features()
    klass = cpu_class(features)
    return {
        "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu_name(),
        "vcpus": os.cpu_count(),
        "cpu_class": klass,
        "flags": " ".join(sorted(f for f in features if f.startswith(("avx", "amx")))),
        "command": " ".join(["python -m bench.serving", *argv]),
        "photos": len(args.files),
        "seconds": args.seconds,
        "pairs": args.pairs,
        "concurrency": args.concurrency,
        "auto": list(TASKS[suite.task].model.choices[klass]),
    }


def run_suite(suite: Suite, variants: list[str], bodies: list[bytes], args: argparse.Namespace, argv: list[str]) -> Section:
    section = Section(suite.task, run_meta(suite, args, argv))
    names = ([] if args.no_baseline else [suite.baseline]) + variants
    with contextlib.ExitStack() as stack:
        yardstick = None
        if not args.no_baseline and args.pairs:  # the pod the paired rounds compare against, up all run
            t = target(suite.task, suite.baseline)
            cg = stack.enter_context(Cgroup(f"bench-ref-{os.getpid()}", CPU_CORES, suite.baseline_memory))
            yardstick = stack.enter_context(ServerProcess(t.args, env=t.env, prefix=cg.prefix(), timeout=180)).url
        for i, name in enumerate(names, 1):
            console.rule(f"{suite.task} {i}/{len(names)} {name}")
            section.rows.append(measure(suite, name, args.files, bodies, args, yardstick if name != suite.baseline else None))
    return section


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=[*SUITES, "all"], default="all", help="which section(s) to measure")
    parser.add_argument("--variants", nargs="+", default=None,
                        help="with --task pose or detect: the variants to measure (default: every one of the task's)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the yardstick (torch server, peer server)")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per load point")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--pairs", type=int, default=3, help="alternating yardstick/variant rounds per variant (0: none)")
    parser.add_argument("--quick", action="store_true", help="short points (3 s), 32 images: checks the harness")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args(argv)
    if args.variants and args.task == "all":
        parser.error("--variants needs --task pose or --task detect")
    if args.quick:
        args.seconds = 3.0
    reason = cgroup_unavailable()
    if reason:
        raise SystemExit(f"make bench needs pod-sized cgroups: {reason}")
    tasks = list(SUITES) if args.task == "all" else [args.task]
    if "detect" in tasks and not args.no_baseline and reference.missing():
        raise SystemExit(f"the detect yardstick needs the reference venv: {reference.missing()} (or --no-baseline)")
    args.files = sorted((args.data / "load-128").glob("*.jpg"))[: 32 if args.quick else None]
    if not args.files:
        raise SystemExit(f"no photos in {args.data / 'load-128'}: set CLOUDPOSE_DATA")
    bodies = [orjson.dumps({"id": f.name, "image": base64.b64encode(f.read_bytes()).decode()}) for f in args.files]
    sections = report.load_previous(args.out)
    for task in tasks:
        sections[task] = run_suite(SUITES[task], args.variants or list(SUITES[task].variants), bodies, args, argv)
    md = report.write(sections, args.out, fresh=set(tasks))
    console.print(md.read_text())
    console.print(f"wrote {md} and its plots")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
