"""Offload timing: is it worth sending images to a remote pose service rather than computing them here?

    cloudpose-offload [--function pose-json] [--images DIR] [--limit N] [--endpoint label=URL ...] [--batch 8] [--out DIR]

An endpoint is a function's URL, or a server's base URL (`http://127.0.0.1:60000`): a base URL is
posted to the function's gateway path, `/function/<name>`, which every CloudPose server answers.

Times the pose library in-process (local: decode, model) and single and batch requests against each endpoint
(remote: bytes, round trip, the server's `speed_*` times), then writes every measurement (measurements.csv), a
summary (summary.md, also printed), a stacked-bar plot (offload.png) and a verdict: for which link bandwidth and
round-trip time offloading beats local execution.

Transfer = round trip − server processing, where server processing is the sum of the `speed_*` fields. The
Server-Timing header is recorded too (server_timing_ms) but not subtracted: the service starts its clock before
it reads the body, so its `total` (and `queue`) include the upload — on a slow link, most of the transfer.
"""

from __future__ import annotations

import argparse
import base64
import csv
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import orjson
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CLOUDPOSE_DATA", ROOT.parent / "shared" / "data"))
DEFAULT_ENDPOINT = "localhost=http://127.0.0.1:60000"
BANDWIDTHS_MBIT = (1.0, 10.0, 20.0, 100.0, 1000.0)
RTTS_MS = (1.0, 10.0, 40.0, 80.0, 150.0)
# Server-Timing stages that are CPU work on the server (queue and total also count the body upload).
SERVER_STAGES = ("decode", "preprocess", "inference", "postprocess", "render", "encode")

console = Console(width=None if sys.stdout.isatty() else 160)  # logs and pipes get the whole table


@dataclass
class Row:
    """One image in one mode. Times in ms and sizes in bytes are per image (a batch's are shared out evenly)."""

    mode: str  # "local", "<label>/single" or "<label>/batch<N>"
    image: str
    batch_size: int = 1
    request_bytes: float = 0.0  # HTTP request body (headers not counted)
    response_bytes: float = 0.0  # HTTP response body
    rtt_ms: float = 0.0  # request sent → response read (a batch's round trip / n)
    client_ms: float = 0.0  # base64 + JSON encoding of the request, JSON parsing of the answer
    preprocess_ms: float = 0.0  # decode + letterbox (the server's speed_preprocess includes base64 decoding)
    inference_ms: float = 0.0
    postprocess_ms: float = 0.0
    compute_ms: float = 0.0  # preprocess + inference + postprocess (local) or Σ speed_* (remote)
    transfer_ms: float = 0.0  # round trip − server processing (a batch's split evenly)
    total_ms: float = 0.0  # local: decode + model, wall clock; remote: client_ms + rtt_ms
    server_timing_ms: float = math.nan  # Σ Server-Timing CPU stages, for reference
    people: int = 0
    error: str = ""


# --- the verdict's arithmetic (pure; see tests/test_offload.py) ------------------------------------------------


@dataclass(frozen=True)
class Costs:
    """Per-image means of one remote mode, against the local compute time they replace."""

    local_ms: float  # computing the image here
    remote_ms: float  # the server's processing
    payload_bytes: float  # request + response bodies
    overhead_ms: float = 0.0  # client-side work offloading adds (base64, JSON)
    round_trips: float = 1.0  # per image: 1 on a kept-alive connection, 1/n in a batch of n; +1 to open a connection


def serialisation_ms(payload_bytes: float, mbit: float) -> float:
    """Time to push `payload_bytes` through a link of `mbit` Mbit/s."""
    return payload_bytes * 8 / (mbit * 1e3)


def offload_ms(c: Costs, rtt_ms: float, mbit: float) -> float:
    """Per-image time when offloading over a link with this round trip and bandwidth (no slow start, no loss)."""
    return c.round_trips * rtt_ms + serialisation_ms(c.payload_bytes, mbit) + c.remote_ms + c.overhead_ms


def network_budget_ms(c: Costs) -> float:
    """What the network may cost per image for offloading to still win; ≤ 0 means it never wins on latency."""
    return c.local_ms - c.remote_ms - c.overhead_ms


def max_rtt_ms(c: Costs, mbit: float) -> float:
    """Largest round trip at which offloading still wins at `mbit` (negative: never)."""
    return (network_budget_ms(c) - serialisation_ms(c.payload_bytes, mbit)) / c.round_trips


def min_bandwidth_mbit(c: Costs, rtt_ms: float) -> float:
    """Least bandwidth at which offloading wins at this round trip (inf: never)."""
    slack = network_budget_ms(c) - c.round_trips * rtt_ms
    return c.payload_bytes * 8 / (slack * 1e3) if slack > 0 else math.inf


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else math.nan


# --- measuring ---------------------------------------------------------------------------------------------------


def parse_endpoint(text: str) -> tuple[str, str]:
    """'label=URL' → (label, URL); a bare URL is labelled by its host."""
    label, sep, url = text.partition("=")
    if not sep or "://" in label:
        label, url = urlsplit(text).hostname or "remote", text
    if not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{text!r}: expected label=http(s)://host:port[/path]")
    return label, url


def function_url(url: str, function: str) -> str:
    """A server's base URL (no path) → its `/function/<name>` path; a URL with a path is kept as given."""
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        return f"{parts.scheme}://{parts.netloc}/function/{function}"
    return url


def server_timing(header: str | None) -> float:
    """Σ of the CPU stages in a Server-Timing header (nan if absent)."""
    if not header:
        return math.nan
    stages = dict(part.strip().split(";dur=", 1) for part in header.split(",") if ";dur=" in part)
    return sum(float(stages.get(name, 0.0)) for name in SERVER_STAGES)


def run_local(images: list[tuple[str, bytes]], warmup: int, progress: Progress, function: str = "pose-json") -> list[Row]:
    """The function's task in-process: decode + model per image, as the service does minus HTTP and base64."""
    from cloudpose.backends import load
    from cloudpose.config import Settings
    from cloudpose.functions import FUNCTIONS
    from cloudpose.imaging import decode

    settings = Settings.from_env()
    model = load(FUNCTIONS[function].task, settings)
    task = progress.add_task("local (in-process)", total=len(images))
    rows = []
    for position, (name, data) in enumerate([*images[:warmup], *images]):
        t0 = time.perf_counter()
        decoded = decode(data, max_pixels=settings.max_pixels, min_side=model.min_side)
        t1 = time.perf_counter()
        result = model(decoded)
        total = (time.perf_counter() - t0) * 1e3
        if position < min(warmup, len(images)):
            continue
        s = result.speed
        pre = (t1 - t0) * 1e3 + s["preprocess"]
        compute = pre + s["inference"] + s["postprocess"]
        rows.append(Row("local", name, preprocess_ms=pre, inference_ms=s["inference"], postprocess_ms=s["postprocess"],
                        compute_ms=compute, total_ms=total, people=result.count))  # fmt: skip
        progress.advance(task)
    return rows


def _post(client: httpx.Client, url: str, chunk: list[tuple[str, bytes]], batch: bool) -> list[Row]:
    """One request (single or batch) → a row per image; failures become rows with `error` set."""
    n = len(chunk)
    t0 = time.perf_counter()
    items = [{"id": name, "image": base64.b64encode(data).decode()} for name, data in chunk]
    body = orjson.dumps({"images": items} if batch else items[0])
    t1 = time.perf_counter()
    try:
        r = client.post(url, content=body, headers={"Content-Type": "application/json"})
        t2 = time.perf_counter()
        r.raise_for_status()
        doc = orjson.loads(r.content)
        answers = doc["results"] if batch else [doc]
    except (httpx.HTTPError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        return [Row("", name, n, len(body) / n, error=f"{type(exc).__name__}: {exc}"[:200]) for name, _ in chunk]
    t3 = time.perf_counter()
    rtt, client_ms = (t2 - t1) * 1e3, ((t1 - t0) + (t3 - t2)) * 1e3
    speeds = [[float(a.get(f"speed_{k}", 0.0)) for k in ("preprocess", "inference", "postprocess")] for a in answers]
    transfer = (rtt - sum(map(sum, speeds))) / n
    st = server_timing(r.headers.get("server-timing")) / n
    return [
        Row("", name, n, len(body) / n, len(r.content) / n, rtt / n, client_ms / n, pre, inf, post,
            pre + inf + post, transfer, (rtt + client_ms) / n, st, int(a.get("count", 0)))  # fmt: skip
        for (name, _), (pre, inf, post), a in zip(chunk, speeds, answers)
    ]


def run_remote(
    label: str, url: str, images: list[tuple[str, bytes]], batch: int, warmup: int, timeout: float, progress: Progress
) -> list[Row]:
    """Single-image then batch requests over one kept-alive connection (so a request costs one round trip)."""
    rows: list[Row] = []
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(timeout=timeout, limits=limits) as client:
        for size in dict.fromkeys((1, batch)):  # once each: single, then the batch size (if it is not 1)
            mode = f"{label}/single" if size == 1 else f"{label}/batch{size}"
            chunks = [images[i : i + size] for i in range(0, len(images), size)]
            for chunk in chunks[: max(0, warmup)]:  # un-timed: opens the connection, warms the server and TCP
                failed = [r.error for r in _post(client, url, chunk, size > 1) if r.error]
                if failed:
                    console.print(f"[red]{mode}: warm-up failed ({failed[0]}); skipping this mode[/red]")
                    break
            else:
                task = progress.add_task(mode, total=len(images))
                for chunk in chunks:
                    for row in _post(client, url, chunk, size > 1):
                        row.mode = mode
                        rows.append(row)
                    progress.advance(task, len(chunk))
    return rows


# --- reporting ---------------------------------------------------------------------------------------------------


def summarise(rows: list[Row]) -> list[dict]:
    """Per mode: averages and p95 of the times, average payload sizes (rows with errors are counted, not used)."""
    out = []
    for mode in dict.fromkeys(r.mode for r in rows):
        ok = [r for r in rows if r.mode == mode and not r.error]
        col = {f.name: [getattr(r, f.name) for r in ok] for f in fields(Row) if f.type in ("float", "int")}
        entry: dict = {"mode": mode, "n": len(ok), "errors": sum(1 for r in rows if r.mode == mode and r.error)}
        for key in ("inference_ms", "compute_ms", "transfer_ms", "total_ms", "client_ms", "request_bytes",
                    "response_bytes"):  # fmt: skip
            entry[key] = float(np.mean(col[key])) if ok else math.nan
            entry[key + "_p95"] = percentile(col[key], 95)
        entry["other_ms"] = entry["compute_ms"] - entry["inference_ms"]
        out.append(entry)
    return out


SUMMARY_COLUMNS = [  # (header, key, format)
    ("mode", "mode", "{}"), ("n", "n", "{}"), ("errors", "errors", "{}"),
    ("inference ms avg", "inference_ms", "{:.1f}"), ("p95", "inference_ms_p95", "{:.1f}"),
    ("compute ms avg", "compute_ms", "{:.1f}"),
    ("transfer ms avg", "transfer_ms", "{:.1f}"), ("p95", "transfer_ms_p95", "{:.1f}"),
    ("total ms avg", "total_ms", "{:.1f}"), ("p95", "total_ms_p95", "{:.1f}"),
    ("request KB avg", "request_bytes", "{:.1f}"), ("response KB avg", "response_bytes", "{:.2f}"),
]  # fmt: skip


def _cell(entry: dict, key: str, fmt: str) -> str:
    value = entry[key] / 1e3 if key.endswith("_bytes") else entry[key]
    return fmt.format(value)


def markdown_table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(row) + " |" for row in [head, ["---"] * len(head), *rows]]


def summary_markdown(summary: list[dict]) -> str:
    cells = [[_cell(e, k, f) for _, k, f in SUMMARY_COLUMNS] for e in summary]
    return "\n".join(markdown_table([h for h, _, _ in SUMMARY_COLUMNS], cells))


def summary_table(summary: list[dict]) -> Table:
    table = Table(title="Per image, by mode (ms; KB = 1000 bytes)")
    for header, key, _ in SUMMARY_COLUMNS:
        table.add_column(header, justify="left" if key == "mode" else "right")
    for e in summary:
        table.add_row(*(_cell(e, k, f) for _, k, f in SUMMARY_COLUMNS))
    return table


def costs_for(entry: dict, local_ms: float) -> Costs:
    return Costs(local_ms, entry["compute_ms"], entry["request_bytes"] + entry["response_bytes"],
                 entry["client_ms"], 1 / max(1, _batch_of(entry["mode"])))  # fmt: skip


def _batch_of(mode: str) -> int:
    tail = mode.rsplit("/batch", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else 1


def _ms(value: float) -> str:
    return "never" if value <= 0 or math.isinf(value) else f"{value:,.0f}"


def _mbit(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:,.1f}"


def verdict(summary: list[dict], local_ms: float, source: str) -> str:
    """The break-even, per remote mode, as Markdown text (also printed)."""
    remote = [e for e in summary if e["mode"] != "local" and e["n"]]
    lines = [
        f"Local compute: {local_ms:.1f} ms per image ({source}). Offloading wins when round_trips × RTT + "
        "bytes × 8 / bandwidth + remote compute + client overhead < local compute (round trips per image: 1 for a "
        "single request on a kept-alive connection, 1/n in a batch of n). A batch's figures are per image, i.e. "
        "throughput: each of its images waits for the whole batch's round trip.",
        "",
    ]
    costs = {e["mode"]: costs_for(e, local_ms) for e in remote}
    lines += markdown_table(
        ["mode", "network budget ms"] + [f"max RTT ms @ {b:g} Mbit/s" for b in BANDWIDTHS_MBIT],
        [[m, f"{network_budget_ms(c):.1f}", *(_ms(max_rtt_ms(c, b)) for b in BANDWIDTHS_MBIT)]
         for m, c in costs.items()],  # fmt: skip
    )
    lines += [""] + markdown_table(
        ["mode"] + [f"min Mbit/s @ RTT {t:g} ms" for t in RTTS_MS],
        [[m, *(_mbit(min_bandwidth_mbit(c, t)) for t in RTTS_MS)] for m, c in costs.items()],
    )
    lines.append("")
    for e in remote:
        c = costs[e["mode"]]
        gain = local_ms - e["total_ms"]
        word = "WINS" if gain > 0 else "LOSES"
        lines.append(f"- {e['mode']}: measured transfer {e['transfer_ms']:.1f} ms/image against a network budget of "
                     f"{network_budget_ms(c):.1f} ms → offloading {word} by {abs(gain):.1f} ms/image "
                     f"(offloaded total {e['total_ms']:.1f} vs local {local_ms:.1f}); it pays off for a client that "
                     f"needs more than {e['total_ms']:.0f} ms per image locally.")  # fmt: skip
    if not remote:
        lines.append("- no remote measurements: nothing to compare")
    return "\n".join(lines)


def plot(summary: list[dict], path: Path, n_images: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [e["mode"] for e in summary if e["n"]]
    entries = [e for e in summary if e["n"]]
    stacks = [
        ("transfer (network + HTTP)", "transfer_ms", "#d62728"),
        ("inference", "inference_ms", "#1f77b4"),
        ("decode, pre/post-processing", "other_ms", "#9ecae1"),
        ("client base64/JSON", "client_ms", "#bbbbbb"),
    ]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(modes) + 3.5), 4.5))
    bottom = np.zeros(len(entries))
    for label, key, color in stacks:
        values = np.array([max(0.0, e[key]) for e in entries])
        ax.bar(modes, values, bottom=bottom, label=label, color=color)
        bottom += values
    for x, total in enumerate(bottom):
        ax.annotate(f"{total:.0f}", (x, total), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("time per image, mean (ms)")
    ax.set_title(f"Local execution vs offloading: where the time goes ({n_images} images)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def write_csv(rows: list[Row], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[fl.name for fl in fields(Row)])
        writer.writeheader()
        for r in rows:
            writer.writerow({k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(r).items()})


def load_images(folder: Path, limit: int) -> list[tuple[str, bytes]]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp", ".bmp"})
    return [(p.name, p.read_bytes()) for p in files[: max(0, limit) or None]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=DATA / "load-128", help="folder of images (default: load-128)")
    parser.add_argument("--limit", type=int, default=0, help="use the first N images (0 = all)")
    parser.add_argument("--function", default="pose-json", choices=["pose-json", "detect-json"],
                        help="the function to time, locally and remotely (default: pose-json)")  # fmt: skip
    parser.add_argument("--endpoint", action="append", type=parse_endpoint, metavar="LABEL=URL",
                        help=f"the function's URL or a server's base URL, repeatable (default: {DEFAULT_ENDPOINT})")  # fmt: skip
    parser.add_argument("--batch", type=int, default=8, help="images per batch request (1 = no batch mode)")
    parser.add_argument("--no-local", action="store_true", help="skip the in-process run")
    parser.add_argument("--local-ms", type=float, help="local compute per image for the verdict (default: measured)")
    parser.add_argument("--out", type=Path, help="output folder (default: results/offload/<timestamp>)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per request")
    parser.add_argument("--warmup", type=int, default=2, help="un-timed requests (or images, locally) per mode")
    args = parser.parse_args(argv)
    images = load_images(args.images, args.limit) if args.images.is_dir() else []
    if not images:
        parser.error(f"no images in {args.images} (set CLOUDPOSE_DATA or pass --images)")
    endpoints = [(label, function_url(url, args.function)) for label, url in args.endpoint or [parse_endpoint(DEFAULT_ENDPOINT)]]
    out = args.out or Path("results") / "offload" / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)

    rows: list[Row] = []
    with Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:  # fmt: skip
        if not args.no_local:
            rows += run_local(images, args.warmup, progress, args.function)
        for label, url in endpoints:
            rows += run_remote(label, url, images, max(1, min(args.batch, 64)), args.warmup, args.timeout, progress)

    summary = summarise(rows)
    local = next((e for e in summary if e["mode"] == "local" and e["n"]), None)
    if args.local_ms:
        text = verdict(summary, args.local_ms, "given with --local-ms")
    elif local:
        text = verdict(summary, local["total_ms"], "measured in-process")
    else:
        text = "No verdict: local compute not measured (--no-local); pass --local-ms."
    write_csv(rows, out / "measurements.csv")
    plot(summary, out / "offload.png", len(images))
    (out / "summary.md").write_text(f"# Offload timing, {len(images)} images from {args.images}\n\n"
                                    f"{summary_markdown(summary)}\n\n## Verdict\n\n{text}\n")  # fmt: skip
    console.print(summary_table(summary))
    console.rule("VERDICT")
    console.print(Markdown(text))
    console.print(f"\nwrote {out}/measurements.csv, summary.md, offload.png")
    silent = [(label, url) for label, url in endpoints if not any(r.mode.startswith(f"{label}/") for r in rows)]
    for label, url in silent:
        console.print(f"[red]{label}: {url} gave no answer. Post to a function's path: <base>/function/{args.function}, "
                      f"or a course path on the local default (/api/pose_estimation, /api/object_detection).[/red]")  # fmt: skip
    if silent:
        return 2
    return 0 if rows and not any(r.error for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
