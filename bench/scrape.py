"""What a Prometheus scrape costs a busy pod: requests/s with and without scraping, and the scrape's own latency.

    python -m bench.scrape [--function detect-json] [--rounds 3] [--seconds 8] [--every 0.2]

One function in a 0.5-CPU / 512 MiB cgroup (root; --no-limits otherwise), 4 closed-loop clients over
load-128. Rounds alternate: a stretch without scraping, then the same stretch with a scraper hitting
`/metrics` every `--every` seconds (0.2 s: 75 times Prometheus's usual 15 s interval, so a cost would
show). Prints, per round and as medians, the requests/s of both and their ratio, and the scrape's p50 /
p95 / max latency while the pod is saturated.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import time
from pathlib import Path

import httpx

from loadtest.cgroup import Cgroup, available
from loadtest.process import ServerProcess

from .load import closed_loop

DATA = Path(os.environ.get("CLOUDPOSE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


async def _scrape_while(url: str, seconds: float, every: float) -> list[float]:
    """Scrape `url`/metrics every `every` s for `seconds`; the latencies in ms."""
    took: list[float] = []
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=10) as client:
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            r = await client.get(f"{url}/metrics")
            r.raise_for_status()
            took.append((time.perf_counter() - t0) * 1e3)
            await asyncio.sleep(every)
    return took


def scraped_round(url: str, path: str, bodies: list[bytes], seconds: float, every: float) -> tuple[float, list[float]]:
    """Closed-loop load with a scraper beside it, in one event loop's worth of threads."""
    import threading

    box: dict = {}

    def scraper() -> None:
        box["took"] = asyncio.run(_scrape_while(url, seconds + 1, every))

    thread = threading.Thread(target=scraper)
    thread.start()
    stats = closed_loop(f"{url}{path}", bodies, 4, duration=seconds, warmup=1.0)
    thread.join(seconds + 30)
    return stats.rps, box.get("took", [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--function", default="detect-json")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--every", type=float, default=0.2, help="seconds between scrapes")
    parser.add_argument("--no-limits", action="store_true")
    args = parser.parse_args(argv)
    if not args.no_limits and (reason := available()):
        parser.error(f"cannot limit the server ({reason}); run as root or pass --no-limits")
    photos = sorted((DATA / "load-128").glob("*.jpg"))[:64]
    bodies = [json.dumps({"id": p.name, "image": base64.b64encode(p.read_bytes()).decode()}).encode() for p in photos]
    cgroup = None if args.no_limits else Cgroup("scrape", 0.5, 512 << 20).create()
    try:
        server = ServerProcess(["-m", "cloudpose.serve", args.function], prefix=cgroup.prefix() if cgroup else None, timeout=240)
        try:
            closed_loop(f"{server.url}/", bodies, 4, duration=3, warmup=1.0)  # warm
            rows = []
            for i in range(args.rounds):
                plain = closed_loop(f"{server.url}/", bodies, 4, duration=args.seconds, warmup=1.0).rps
                scraped, took = scraped_round(server.url, "/", bodies, args.seconds, args.every)
                rows.append((plain, scraped, took))
                p = sorted(took)
                print(f"round {i + 1}: {plain:.2f} req/s without scraping, {scraped:.2f} with ({scraped / plain:.3f}×); "
                      f"{len(took)} scrapes, p50 {statistics.median(p):.1f} ms, max {p[-1]:.1f} ms", flush=True)  # fmt: skip
        finally:
            server.stop()
    finally:
        if cgroup:
            cgroup.remove()
    ratios = [s / p for p, s, _ in rows]
    took = sorted(t for _, _, ts in rows for t in ts)
    print(f"\n{args.function}, 4 clients, {'0.5 CPU / 512 MiB cgroup' if cgroup else 'no limits'}: "
          f"req/s with scraping every {args.every} s = {statistics.median(ratios):.3f}× without "
          f"(rounds {', '.join(f'{r:.3f}' for r in ratios)}); scrape latency p50 {statistics.median(took):.1f} ms, "
          f"p95 {took[int(0.95 * (len(took) - 1))]:.1f} ms, max {took[-1]:.1f} ms over {len(took)} scrapes")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
