"""Photos per minute through the whole pipeline, and where each photo's time goes: `python -m album.bench`.

Closed loop at each concurrency: C clients, each uploads one photo of load-128, waits until its row in
PostgreSQL is final, then uploads the next. Reports photos/min, upload → SUCCEEDED (median, p95: from the
client's request to the row it polls every 20 ms), and each step's share of a photo's time, from the
photo's Temporal history (an activity from scheduled to completed, so its queueing is in it) and from the
milliseconds each step measured itself (S3 read, function call, write).

By default it starts a fresh system in a temporary home on free ports (`--home` uses yours, started if
needed) and removes it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path

import httpx
import psycopg
from psycopg.rows import dict_row

from .config import DEFAULT_HOME
from .local import DEFAULT_PORTS, LocalSystem
from .processes import free_port

DATA = Path(os.environ.get("CLOUDPOSE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "load-128"
POLL_S = 0.02
STEPS = ("extract-metadata", "make-thumbnail", "detect-labels", "detect-people", "store-photo")


@dataclass
class Sample:
    photo_id: str
    sent: float  # wall clock (time.time), like Temporal's event times
    accepted: float = 0.0
    seen_final: float = 0.0
    status: str = ""
    row: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def run_level(system: LocalSystem, album: str, photos: list[Path], clients: int) -> tuple[list[Sample], float]:
    """Upload every photo with `clients` closed-loop clients; (samples, wall seconds)."""
    queue = list(photos)
    lock = threading.Lock()
    samples: list[Sample] = []

    def client() -> None:
        with httpx.Client(base_url=system.url, timeout=120) as http, psycopg.connect(
            system.cluster.url, autocommit=True, row_factory=dict_row
        ) as db:
            while True:
                with lock:
                    if not queue:
                        return
                    path = queue.pop(0)
                sent = time.time()  # wall clock: compared with Temporal's event times
                r = http.post(f"/api/albums/{album}/photos", files=[("files", (path.name, path.read_bytes(), "image/jpeg"))])
                r.raise_for_status()
                sample = Sample(r.json()["photos"][0]["id"], sent, accepted=time.time())
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    row = db.execute("SELECT * FROM photos WHERE id = %s", (sample.photo_id,)).fetchone()
                    if row and row["status"] in ("SUCCEEDED", "FAILED"):
                        sample.seen_final, sample.status, sample.row = time.time(), row["status"], row
                        break
                    time.sleep(POLL_S)
                with lock:
                    samples.append(sample)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return samples, time.perf_counter() - started


def histories(system: LocalSystem, samples: list[Sample]) -> None:
    """Each photo's timeline from its Temporal history (wall-clock seconds): the workflow's start, and per
    activity when it was scheduled, started (a worker took it) and completed."""
    from temporalio.client import Client

    async def run() -> None:
        client = await Client.connect(f"127.0.0.1:{system.ports['temporal']}")
        for sample in samples:
            names: dict[int, str] = {}
            steps: dict[str, dict[str, float]] = {}
            timeline: dict = {"steps": steps}
            async for event in client.get_workflow_handle(sample.photo_id).fetch_history_events():
                at = event.event_time.ToDatetime(tzinfo=timezone.utc).timestamp()
                if event.workflow_execution_started_event_attributes.workflow_type.name:
                    timeline["started"] = at
                if event.activity_task_scheduled_event_attributes.activity_type.name:
                    names[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
                    steps[names[event.event_id]] = {"scheduled": at}
                for kind in ("started", "completed"):
                    attrs = getattr(event, f"activity_task_{kind}_event_attributes")
                    if attrs.scheduled_event_id in names:
                        steps[names[attrs.scheduled_event_id]][kind] = at  # the last attempt's, if retried
            sample.history = timeline

    asyncio.run(asyncio.wait_for(run(), 600))


PHASES = ("upload", "metadata", "parallel", "store", "workflow tasks", "until seen")


def timeline(s: Sample) -> dict[str, float]:
    """The photo's milliseconds per phase; they add up to its upload → seen-SUCCEEDED time exactly."""
    h, steps = s.history, s.history["steps"]
    branches = [steps[k] for k in ("make-thumbnail", "detect-labels", "detect-people")]
    parallel_start, parallel_end = min(b["scheduled"] for b in branches), max(b["completed"] for b in branches)
    meta, store = steps["extract-metadata"], steps["store-photo"]
    ms = {
        "upload": h["started"] - s.sent,  # S3 put, row insert, workflow start
        "metadata": meta["completed"] - meta["scheduled"],
        "parallel": parallel_end - parallel_start,
        "store": store["completed"] - store["scheduled"],
        "workflow tasks": (meta["scheduled"] - h["started"]) + (parallel_start - meta["completed"])
        + (store["scheduled"] - parallel_end),
        "until seen": s.seen_final - store["completed"],  # the workflow's completion, our 20 ms poll
    }
    return {k: v * 1000 for k, v in ms.items()}


def summarise(samples: list[Sample], wall: float) -> dict:
    ok = [s for s in samples if s.status == "SUCCEEDED"]
    latency = [(s.seen_final - s.sent) * 1000 for s in ok]
    server = [(s.row["finished_at"] - s.row["upload_time"]).total_seconds() * 1000 for s in ok]
    phases: dict[str, list[float]] = {k: [] for k in PHASES}
    queue: dict[str, list[float]] = {k: [] for k in STEPS}
    run: dict[str, list[float]] = {k: [] for k in STEPS}
    inside: dict[str, dict[str, list[float]]] = {k: {} for k in STEPS}
    for s in ok:
        for k, v in timeline(s).items():
            phases[k].append(v)
        for step in STEPS:
            t = s.history["steps"][step]
            queue[step].append((t["started"] - t["scheduled"]) * 1000)
            run[step].append((t["completed"] - t["started"]) * 1000)
            for part, ms in ((s.row.get("timings") or {}).get(step) or {}).items():
                inside[step].setdefault(part, []).append(ms)
    mean_total = sum(statistics.fmean(v) for v in phases.values())

    def r1(x: float) -> float:
        return round(x, 1)

    return {
        "photos": len(samples),
        "succeeded": len(ok),
        "wall_s": r1(wall),
        "photos_per_min": r1(len(ok) / wall * 60),
        "latency_ms": {"median": r1(statistics.median(latency)), "p95": r1(percentile(latency, 0.95))},
        "server_ms": {"median": r1(statistics.median(server)), "p95": r1(percentile(server, 0.95))},
        "share": {k: r1(statistics.fmean(v) / mean_total * 100) for k, v in phases.items()},
        "phase_ms": {k: r1(statistics.fmean(v)) for k, v in phases.items()},
        "queue_ms": {k: r1(statistics.fmean(v)) for k, v in queue.items()},
        "run_ms": {k: r1(statistics.fmean(v)) for k, v in run.items()},
        "inside_ms": {k: {p: r1(statistics.fmean(v)) for p, v in parts.items()} for k, parts in inside.items()},
    }


def table(results: dict[int, dict]) -> str:
    lines = ["| clients | photos | photos/min | upload → SUCCEEDED median / p95 ms | server-side median / p95 ms |",
             "|---|---|---|---|---|"]  # fmt: skip
    for c, r in results.items():
        lines.append(f"| {c} | {r['succeeded']}/{r['photos']} | {r['photos_per_min']} | {r['latency_ms']['median']} / "
                     f"{r['latency_ms']['p95']} | {r['server_ms']['median']} / {r['server_ms']['p95']} |")  # fmt: skip
    phases = list(next(iter(results.values()))["share"])
    lines += ["", "| clients | " + " | ".join(phases) + " |", "|---" * (len(phases) + 1) + "|"]
    for c, r in results.items():
        lines.append(f"| {c} | " + " | ".join(f"{r['share'][p]}% ({r['phase_ms'][p]:.0f} ms)" for p in phases) + " |")
    lines += ["", "Per step, ms: waiting for a worker + running (inside: S3 read, function call, write)", "",
              "| clients | " + " | ".join(STEPS) + " |", "|---" * (len(STEPS) + 1) + "|"]  # fmt: skip
    for c, r in results.items():
        cells = []
        for step in STEPS:
            parts = ", ".join(f"{p} {v:.0f}" for p, v in r["inside_ms"][step].items())
            cells.append(f"{r['queue_ms'][step]:.0f} + {r['run_ms'][step]:.0f}" + (f" ({parts})" if parts else ""))
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help=f"use this system (e.g. {DEFAULT_HOME}); default: a fresh temporary one")
    parser.add_argument("--concurrency", default="1,4", help="clients uploading at once, comma-separated")
    parser.add_argument("--photos", type=int, default=40, help="photos per concurrency level (after 4 warm-up ones)")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of JPEGs (load-128)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    photos = sorted(args.data.glob("*.jpg"))
    if not photos:
        parser.error(f"no JPEGs in {args.data}")
    temporary = args.home is None
    home = args.home or Path(tempfile.mkdtemp(prefix="album-bench-", dir="/tmp"))
    if temporary:
        home.chmod(0o711)
        ports = {name: free_port() for name in DEFAULT_PORTS}
        ports["functions"] = free_port()
        (home / "system.json").write_text(json.dumps({"ports": ports}))
    system = LocalSystem(home)
    try:
        print(f"Starting the system in {home}:", flush=True)
        system.up(log=lambda line: print(line, flush=True))
        with httpx.Client(base_url=system.url, timeout=60) as http:
            album = http.post("/api/albums", json={"name": f"bench {time.strftime('%H:%M:%S')}"}).json()["id"]
        run_level(system, album, photos[:4], 2)  # warm-up: every model compiled, every pool open
        results = {}
        for clients in levels:
            chosen = [photos[(i + 4) % len(photos)] for i in range(args.photos)]
            samples, wall = run_level(system, album, chosen, clients)
            histories(system, samples)
            results[clients] = summarise(samples, wall)
            r = results[clients]
            print(f"  {clients} client(s): {r['photos_per_min']} photos/min, upload → SUCCEEDED median "
                  f"{r['latency_ms']['median']} ms, p95 {r['latency_ms']['p95']} ms", flush=True)  # fmt: skip
        print("\n" + table(results))
        if args.out:
            args.out.write_text(json.dumps(results, indent=2))
    finally:
        if temporary:
            system.down(log=lambda line: None)
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
