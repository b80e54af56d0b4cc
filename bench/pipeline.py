"""Where a request's time goes: median ms per stage over load-128, in-process and over HTTP, and peak RSS.

    python -m bench.pipeline [--runs 3] [--task pose|detect] [--variant ort-fp32-640]

Stages: decode (base64 + JSON parse + JPEG decode), preprocess (letterbox + tensor), inference,
postprocess (NMS + scaling), JSON encode; then the whole HTTP round trip against a real server
process of the task's JSON function alone (`cloudpose.serve pose-json`, as its image runs it; 1
inference thread) and that process's peak RSS (VmHWM).
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

from .accuracy import DETECT_PATH, POSE_PATH

PATHS = {"pose": POSE_PATH, "detect": DETECT_PATH}
DATA = Path(os.environ.get("CLOUDPOSE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def stage_times(files: list[Path], runs: int, env: dict[str, str], task: str = "pose") -> dict[str, list[float]]:
    from cloudpose.codec import parse_body
    from cloudpose.config import Settings
    from cloudpose.imaging import decode
    from cloudpose.backends import load
    from cloudpose.tasks import TASKS

    settings = Settings.from_env({**os.environ, **env})
    model = load(TASKS[task], settings)
    bodies = [orjson.dumps({"id": f.name, "image": base64.b64encode(f.read_bytes()).decode()}) for f in files]
    times: dict[str, list[float]] = {k: [] for k in ("decode", "preprocess", "inference", "postprocess", "json")}
    for _ in range(runs):
        for body in bodies:
            t0 = time.perf_counter()
            item = parse_body(body, max_batch=1).items[0]
            image = decode(item.data, max_pixels=settings.max_pixels, min_side=model.min_side)
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


def server_args(task: str) -> list[str]:
    return ["-m", "cloudpose.serve", f"{task}-json"]


def http_times(files: list[Path], runs: int, env: dict[str, str], task: str = "pose") -> tuple[list[float], float, float]:
    bodies = [orjson.dumps({"id": f.name, "image": base64.b64encode(f.read_bytes()).decode()}) for f in files]
    with ServerProcess(server_args(task), env={"POSE_THREADS": "1", "POSE_MAX_INFLIGHT": "1", **env}) as server:
        rtt = []
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for _ in range(runs):
                for body in bodies:
                    t0 = time.perf_counter()
                    r = client.post(PATHS[task], content=body)
                    rtt.append((time.perf_counter() - t0) * 1e3)
                    r.raise_for_status()
        return rtt, server.peak_rss_mib(), server.cold_start


def phone_photo(src: Path, width: int = 4032, noise: float = 6.0) -> bytes:
    """A 12 MP JPEG made from a load-128 photo, enlarged. With sensor-like `noise` it compresses like a
    camera's (~3 MB); without, like a smooth upscale (~1 MB). Decoding cost follows the compressed size."""
    import cv2
    import numpy as np

    img = cv2.imread(str(src))
    big = cv2.resize(img, (width, round(img.shape[0] * width / img.shape[1])), interpolation=cv2.INTER_CUBIC)
    grain = np.random.default_rng(0).normal(0, noise, big.shape) if noise else 0
    ok, jpeg = cv2.imencode(".jpg", np.clip(big + grain, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return jpeg.tobytes()


def large_vs_small(src: Path, env: dict[str, str], noise: float, runs: int = 20, task: str = "pose") -> tuple[float, float, int]:
    """Median HTTP round trip of a 12 MP JPEG and of its 640-px original, one client, one inference thread."""
    bodies = [orjson.dumps({"id": n, "image": base64.b64encode(d).decode()}) for n, d in
              (("small", src.read_bytes()), ("large", phone_photo(src, noise=noise)))]  # fmt: skip
    with ServerProcess(server_args(task), env={"POSE_THREADS": "1", "POSE_MAX_INFLIGHT": "1", **env}) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            times: dict[str, list[float]] = {"small": [], "large": []}
            for i in range(runs + 2):
                for name, body in zip(times, bodies):
                    t0 = time.perf_counter()
                    client.post(PATHS[task], content=body).raise_for_status()
                    if i >= 2:  # two warm-up rounds
                        times[name].append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times["large"]), statistics.median(times["small"]), len(bodies[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="passes over the 128 images")
    parser.add_argument("--task", choices=sorted(PATHS), default="pose")
    parser.add_argument("--variant", default=None, help="default: $POSE_VARIANT (detect: $DETECT_VARIANT) or the task's fallback")
    parser.add_argument("--data", type=Path, default=DATA / "load-128")
    args = parser.parse_args(argv)
    files = sorted(args.data.glob("*.jpg"))
    if not files:
        raise SystemExit(f"no images in {args.data}: set CLOUDPOSE_DATA")
    from cloudpose.tasks import TASKS

    task = TASKS[args.task]
    args.variant = args.variant or os.environ.get(f"{task.prefix}_VARIANT") or task.model.fallback
    env = {f"{task.prefix}_VARIANT": args.variant, "POSE_THREADS": "1"}
    stages = stage_times(files, args.runs, env, args.task)
    rtt, rss, cold = http_times(files, args.runs, env, args.task)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?")
    print(f"{args.variant}, 1 thread, {len(files)} images × {args.runs} runs, {cpu}")
    print(f"{'stage':<14} {'median ms':>10} {'p95 ms':>8}")
    for name, values in [*stages.items(), ("HTTP round trip", rtt)]:
        values = sorted(values)
        print(f"{name:<14} {statistics.median(values):>10.2f} {values[int(0.95 * (len(values) - 1))]:>8.2f}")
    in_process = sum(statistics.median(v) for v in stages.values())
    print(f"{'sum of stages':<14} {in_process:>10.2f}")
    print(f"HTTP / in-process: {statistics.median(rtt) / in_process:.2f}×")
    print(f"peak RSS of the serving process: {rss:.0f} MiB; cold start to ready: {cold:.2f} s")
    for kind, noise in (("camera-like", 6.0), ("smooth", 0.0)):
        large, small, size = large_vs_small(files[5], env, noise, task=args.task)
        print(f"12 MP {kind} JPEG ({size / 1e6:.1f} MB request) end to end: {large:.1f} ms; its 640-px original: "
              f"{small:.1f} ms ({large / small:.2f}×)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
