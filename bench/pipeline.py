"""Where a request's time goes: median ms per stage over load-128, in-process and over HTTP, and peak RSS.

    python -m bench.pipeline [--runs 3] [--variant ort-fp32-640]

Stages: decode (base64 + JSON parse + JPEG decode), preprocess (letterbox + tensor), inference,
postprocess (NMS + scaling), JSON encode; then the whole HTTP round trip against a real server
process (1 inference thread) and that process's peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import time
from pathlib import Path

import httpx
import orjson

from loadtest.process import ServerProcess

DATA = Path(os.environ.get("CLOUDPOSE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stage_times(files: list[Path], runs: int, env: dict[str, str]) -> dict[str, list[float]]:
    from cloudpose.codec import parse_body
    from cloudpose.config import Settings
    from cloudpose.imaging import decode
    from cloudpose.model import load_model

    settings = Settings.from_env({**os.environ, **env})
    model = load_model(settings)
    bodies = [orjson.dumps({"id": f.name, "image": base64.b64encode(f.read_bytes()).decode()}) for f in files]
    times: dict[str, list[float]] = {k: [] for k in ("decode", "preprocess", "inference", "postprocess", "json")}
    for _ in range(runs):
        for body in bodies:
            t0 = time.perf_counter()
            item = parse_body(body, max_batch=1).items[0]
            image = decode(item.data, max_pixels=settings.max_pixels, min_side=model.variant.imgsz)
            t1 = time.perf_counter()
            tensor, box = model.preprocess(image.pixels)
            t2 = time.perf_counter()
            raw = model.predict(tensor)
            t3 = time.perf_counter()
            result = model.postprocess(raw, box, image)
            t4 = time.perf_counter()
            orjson.dumps({"id": item.id, **result.to_json()})
            t5 = time.perf_counter()
            for key, a, b in zip(times, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5)):
                times[key].append((b - a) * 1e3)
    return times


def http_times(files: list[Path], runs: int, env: dict[str, str]) -> tuple[list[float], float, float]:
    bodies = [orjson.dumps({"id": f.name, "image": base64.b64encode(f.read_bytes()).decode()}) for f in files]
    with ServerProcess(["-m", "cloudpose.local"], env={"POSE_THREADS": "1", "POSE_MAX_INFLIGHT": "1", **env}) as server:
        rtt = []
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for _ in range(runs):
                for body in bodies:
                    t0 = time.perf_counter()
                    r = client.post("/api/pose_estimation", content=body)
                    rtt.append((time.perf_counter() - t0) * 1e3)
                    r.raise_for_status()
        return rtt, peak_rss_mib(server.pid), server.cold_start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="passes over the 128 images")
    parser.add_argument("--variant", default=os.environ.get("POSE_VARIANT", "ort-fp32-640"))
    parser.add_argument("--data", type=Path, default=DATA / "load-128")
    args = parser.parse_args(argv)
    files = sorted(args.data.glob("*.jpg"))
    if not files:
        raise SystemExit(f"no images in {args.data}: set CLOUDPOSE_DATA")
    env = {"POSE_VARIANT": args.variant, "POSE_THREADS": "1"}
    stages = stage_times(files, args.runs, env)
    rtt, rss, cold = http_times(files, args.runs, env)
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), "?")
    print(f"{args.variant}, 1 thread, {len(files)} images × {args.runs} runs, {cpu}")
    print(f"{'stage':<14} {'median ms':>10} {'p95 ms':>8}")
    for name, values in [*stages.items(), ("HTTP round trip", rtt)]:
        values = sorted(values)
        print(f"{name:<14} {statistics.median(values):>10.2f} {values[int(0.95 * (len(values) - 1))]:>8.2f}")
    in_process = sum(statistics.median(v) for v in stages.values())
    print(f"{'sum of stages':<14} {in_process:>10.2f}")
    print(f"HTTP / in-process: {statistics.median(rtt) / in_process:.2f}×")
    print(f"peak RSS of the serving process: {rss:.0f} MiB; cold start to ready: {cold:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
