"""A closed-loop load driver for benchmarks: C clients, each sends its next request when the last answers.

Throughput and latency of a server at fixed concurrency, over pre-encoded request bodies
(base64 done once, outside the timing). Bounded by duration and by request count.
"""

from __future__ import annotations

import asyncio
import http.client
import statistics
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx


@dataclass
class LoadStats:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p95(self) -> float:
        return self.percentile(0.95)


async def _run(url: str, bodies: list[bytes], concurrency: int, duration: float, warmup: float, max_requests: int) -> LoadStats:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    counter = 0
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        start = time.perf_counter()
        measure_from = start + warmup
        stop_at = measure_from + duration

        async def worker(offset: int) -> None:
            nonlocal errors, counter
            i = offset
            while time.perf_counter() < stop_at and counter < max_requests:
                body = bodies[i % len(bodies)]
                i += concurrency
                t0 = time.perf_counter()
                try:
                    r = await client.post(url, content=body, headers=headers)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                t1 = time.perf_counter()
                # Count what completes inside the window and divide by the window: counting what starts in it
                # and waiting for the stragglers would stretch the window by up to one latency, which
                # understates slow servers more than fast ones.
                if measure_from <= t1 <= stop_at:
                    counter += 1
                    if ok:
                        latencies.append((t1 - t0) * 1e3)
                    else:
                        errors += 1

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return LoadStats(concurrency, len(latencies), errors, max(stop_at - measure_from, 1e-9), latencies)


def closed_loop(
    url: str, bodies: list[bytes], concurrency: int, duration: float = 20.0, warmup: float = 3.0, max_requests: int = 100_000
) -> LoadStats:
    """Run C concurrent clients against `url` for `duration` seconds after `warmup` seconds."""
    return asyncio.run(_run(url, bodies, concurrency, duration, warmup, max_requests))


def one_client(url: str, bodies: list[bytes], duration: float = 10.0, warmup: float = 1.0) -> LoadStats:
    """One client posting back to back on a kept-alive connection (the standard library's, which adds
    ~0.1 ms): end-to-end latency as the server gives it, not as a heavier client library adds to it."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    errors, i = 0, 0
    measure_from = time.perf_counter() + warmup
    stop_at = measure_from + duration
    try:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            try:
                conn.request("POST", parts.path or "/", body=bodies[i % len(bodies)], headers=headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                ok = False
            t1 = time.perf_counter()
            i += 1
            if measure_from <= t1 <= stop_at:
                if ok:
                    latencies.append((t1 - t0) * 1e3)
                else:
                    errors += 1
    finally:
        conn.close()
    return LoadStats(1, len(latencies), errors, max(stop_at - measure_from, 1e-9), latencies)
