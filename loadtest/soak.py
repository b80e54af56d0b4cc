"""Soak: thousands of mixed requests against one function in a pod-sized cgroup, and nothing may go wrong.

    python -m loadtest.soak --function pose-json --requests 10000     # make soak: pose-json and detect-json at once

The mix (the one an issue measured by hand): 60% real photos of load-128, each with a fresh id, and
40% spread over nine kinds of bad input — bad base64, random bytes, a truncated JPEG, no id, the header
of a 60000×60000 PNG, a body that is not JSON, wrong types, a batch of 17, an empty body — sent by
16 concurrent clients to `python -m cloudpose.serve <function>` inside a 0.5-CPU / 512 MiB cgroup.
It passes when every photo gets its 200 with its own id, every bad input a 4xx with the error shape
(and the code it should), nothing answers 5xx, and the server's resident memory after warm-up (the
first 10% of requests) grows less than 10% by the end. Exit status 0 on a pass, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import struct
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .cgroup import Cgroup, available
from .process import ServerProcess

DATA = Path(os.environ.get("CLOUDPOSE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
PHOTO_SHARE = 0.6
CONCURRENCY = 16
WARMUP_SHARE = 0.1
RSS_GROWTH_LIMIT = 1.10
ANSWER_FIELDS = {"pose-json": "boxes", "detect-json": "objects", "pose-annotate": "image", "detect-annotate": "image"}


def _png_header(width: int, height: int) -> bytes:
    """The first chunk of a PNG claiming width × height pixels (and nothing after it)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


@dataclass(frozen=True)
class Case:
    """One request: its body, and what a correct server answers."""

    kind: str
    body: bytes
    status: int  # expected HTTP status
    code: str = ""  # expected error code (bad inputs)
    id: str = ""  # expected id in the answer (photos)


def bad_inputs(photo: bytes) -> list[tuple[str, bytes, int, str]]:
    """(kind, body, status, error code) for the nine kinds of bad input."""
    rng = random.Random(7)

    def doc(d) -> bytes:
        return json.dumps(d).encode()

    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    return [
        ("bad base64", doc({"id": "bad-b64", "image": "not*base64*at*all"}), 400, "invalid_base64"),
        ("random bytes", doc({"id": "random", "image": b64(rng.randbytes(4096))}), 400, "not_an_image"),
        ("truncated jpeg", doc({"id": "truncated", "image": b64(photo[: len(photo) // 2])}), 400, "not_an_image"),
        ("no id", doc({"image": b64(photo)}), 400, "invalid_request"),
        ("60000x60000 png", doc({"id": "huge", "image": b64(_png_header(60000, 60000))}), 413, "image_too_large"),
        ("not json", b"this is not JSON {", 400, "invalid_json"),
        ("wrong types", doc({"id": {"a": 1}, "image": 12345}), 400, "invalid_request"),
        ("batch of 17", doc({"images": [b64(b"x")] * 17}), 413, "batch_too_large"),
        ("empty body", b"", 400, "invalid_json"),
    ]


def cases(photos: list[bytes], n: int, seed: int = 1) -> list[Case]:
    """n requests in a shuffled, reproducible mix: PHOTO_SHARE photos, the rest bad inputs in turn."""
    rng = random.Random(seed)
    bad = bad_inputs(photos[0])
    out = []
    for i in range(n):
        if rng.random() < PHOTO_SHARE:
            rid = str(uuid.UUID(int=rng.getrandbits(128)))
            body = json.dumps({"id": rid, "image": base64.b64encode(photos[i % len(photos)]).decode()}).encode()
            out.append(Case("photo", body, 200, id=rid))
        else:
            kind, body, status, code = bad[i % len(bad)]
            out.append(Case(kind, body, status, code))
    return out


@dataclass
class Tally:
    by_kind: Counter = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)  # the first few wrong answers, described
    wrong_count: int = 0
    server_errors: int = 0
    rss_samples: list[tuple[int, int]] = field(default_factory=list)  # (requests done, RSS bytes)

    def fail(self, text: str) -> None:
        self.wrong_count += 1
        if len(self.wrong) < 20:
            self.wrong.append(text)


def check(case: Case, status: int, content: bytes, answer_field: str) -> str | None:
    """None if the answer is what a correct server gives for `case`, else why not."""
    if status >= 500:
        return f"{case.kind}: {status} {content[:200]!r}"
    if status != case.status:
        return f"{case.kind}: status {status}, expected {case.status}: {content[:200]!r}"
    try:
        doc = json.loads(content)
    except ValueError:
        return f"{case.kind}: the answer is not JSON: {content[:100]!r}"
    if case.status == 200:
        if doc.get("id") != case.id or answer_field not in doc:
            return f"photo: id {doc.get('id')!r} (expected {case.id}) or no {answer_field!r}"
        return None
    error = doc.get("error") if isinstance(doc, dict) else None
    if not (isinstance(error, dict) and error.get("code") == case.code and error.get("message")):
        return f"{case.kind}: error shape or code wrong: {doc}"
    return None


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def drive(url: str, work: list[Case], answer_field: str, pid: int, deadline: float) -> Tally:
    tally = Tally()
    queue: asyncio.Queue[Case] = asyncio.Queue()
    for case in work:
        queue.put_nowait(case)
    done = 0
    sample_every = max(1, len(work) // 50)

    async def client() -> None:
        nonlocal done
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            while not queue.empty() and time.monotonic() < deadline:
                case = queue.get_nowait()
                try:
                    r = await http.post("/", content=case.body, headers={"Content-Type": "application/json"})
                    problem = check(case, r.status_code, r.content, answer_field)
                    tally.server_errors += r.status_code >= 500
                except httpx.HTTPError as exc:
                    problem = f"{case.kind}: {type(exc).__name__}: {exc}"
                tally.by_kind[case.kind] += 1
                if problem:
                    tally.fail(problem)
                done += 1
                if done % sample_every == 0:
                    tally.rss_samples.append((done, rss_bytes(pid)))

    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    return tally


def soak(
    function: str, requests: int, *, limits: bool = True, time_limit: float = 3600, env: dict | None = None
) -> dict:
    """Run the soak; the report's "passed" says whether every check held."""
    photos = [p.read_bytes() for p in sorted((DATA / "load-128").glob("*.jpg"))]
    if not photos:
        raise SystemExit(f"no photos in {DATA / 'load-128'}: set CLOUDPOSE_DATA to the shared data folder")
    work = cases(photos, requests)
    cgroup = Cgroup(f"soak-{function}", 0.5, 512 << 20).create() if limits else None
    started = time.monotonic()
    try:
        server = ServerProcess(["-m", "cloudpose.serve", function], env=env, prefix=cgroup.prefix() if cgroup else None,
                               timeout=180)  # fmt: skip
        try:
            tally = asyncio.run(
                drive(server.url, work, ANSWER_FIELDS.get(function, "id"), server.pid, started + time_limit)
            )
        finally:
            server.stop()
        peak = cgroup.peak_memory() if cgroup else -1
        oom = cgroup.oom_kills() if cgroup else 0
    finally:
        if cgroup:
            cgroup.remove()
    sent = sum(tally.by_kind.values())
    warm = [rss for n, rss in tally.rss_samples if n >= WARMUP_SHARE * len(work)]
    growth = warm[-1] / warm[0] if len(warm) >= 2 and warm[0] else float("nan")
    passed = (
        sent == len(work)
        and tally.wrong_count == 0
        and tally.server_errors == 0
        and oom == 0
        and growth < RSS_GROWTH_LIMIT
    )
    return {
        "function": function, "requests": len(work), "sent": sent, "seconds": round(time.monotonic() - started, 1),
        "by_kind": dict(tally.by_kind), "wrong": tally.wrong_count, "wrong_examples": tally.wrong,
        "server_errors": tally.server_errors, "oom_kills": oom, "cgroup_peak_mib": round(peak / 2**20, 1),
        "rss_after_warmup_mib": round(warm[0] / 2**20, 1) if warm else None,
        "rss_end_mib": round(warm[-1] / 2**20, 1) if warm else None, "rss_growth": round(growth, 3),
        "limits": "0.5 CPU / 512 MiB cgroup" if cgroup else "none", "passed": passed,
    }  # fmt: skip


def soak_all(requests: dict[str, int], **kwargs) -> list[dict]:
    """Each function's soak (function → requests) at the same time, each server in its own 0.5-CPU cgroup: the wall
    time of the longest soak for all of them, and each pod still sees only its own half core."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(lambda item: soak(*item, **kwargs), requests.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--function", action="append", help="repeatable; default pose-json and detect-json")
    parser.add_argument("--requests", type=int, default=10_000, help="per function")
    parser.add_argument("--time-limit", type=float, default=3600, help="seconds per function, at most")
    parser.add_argument("--no-limits", action="store_true", help="no cgroup (for a machine without root)")
    args = parser.parse_args(argv)
    reason = None if args.no_limits else available()
    if reason:
        parser.error(f"cannot limit the server ({reason}); run as root, or pass --no-limits")
    ok = True
    functions = args.function or ["pose-json", "detect-json"]
    work = dict.fromkeys(functions, args.requests)
    for report in soak_all(work, limits=not args.no_limits, time_limit=args.time_limit):
        print(json.dumps(report, indent=2), flush=True)
        ok &= report["passed"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
