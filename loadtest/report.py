"""Tables and plots of experiment results, from their CSVs; merges several results folders.

    python -m loadtest.report results/experiment/master-run results/experiment/remote-run [--out DIR]

Reads each folder's results.csv (one row per point: engine, client, replicas, repetition → max users and the
numbers at it) and steps.csv (every step of every search), and writes into --out (default: the folder
itself when one is given, else results/experiment/merged):

- table.md: per engine, rows = replicas, per client location the max users and the average response time
  at it (mean ± standard deviation over repetitions), then the details (p95, throughput, replica share);
- response-time-<engine>-<client>.png: average response time against users, one line per replica count
  (the ramp's steps up to the first failure, a cross there; a star at the confirmed max users; a red ring
  round every step in which the load generator, not the service, was the limit).

A point is marked ⚑ when the client was the limit in a step that decided it (a ramp step up to the first
failure, or a confirm): its busiest Locust process was above 90 % CPU, or Locust warned (clientcpu.py).

The experiment runner (loadtest/experiment.py) calls `write_report` after every point.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY = ("engine", "client", "replicas", "repetition")
STEP_FIELDS = [
    *KEY, "phase", "users", "spawn_rate", "requests", "failures", "hold_requests", "avg_ms", "p50_ms", "p95_ms",
    "rps", "inference_ms", "client_cpu_pct", "client_locust_cpu_pct", "client_processes", "client_cpu_warnings",
    "client_limited", "served_by", "reasons", "started", "raw",
]  # fmt: skip
RESULT_FIELDS = [
    *KEY, "max_users", "confirmed", "capped", "first_failure_users", "requests", "failures", "avg_ms", "p95_ms", "rps",
    "inference_ms", "served_by", "idle_inference_ms", "host_slowdown", "replicas_serving", "client_cpu_pct",
    "client_peak_cpu_pct", "client_limited_steps", "locust_processes", "locust_workers", "function", "start_users",
    "step_users", "hold_s", "confirm_hold_s", "timeout_s", "wait_min_s", "wait_max_s", "annotate_weight", "finished",
]  # fmt: skip
# A point whose servers' model time under load exceeds the idle probe's by this factor ran on a slower host:
# one inference at a time per replica keeps it flat under load on a quiet host (measured 0.9–1.1×).
SLOWDOWN_LIMIT = 1.5
CLIENT_MARK = "⚑"  # the load generator was the limit somewhere in this point


# --- CSV -----------------------------------------------------------------------------------------------------


def read_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def read_header(path: Path) -> list[str]:
    with path.open(newline="") as f:
        return next(csv.reader(f), [])


def write_csv(path: Path, fields: Sequence[str], rows: Iterable[dict], append: bool = False) -> None:
    new = not (append and path.exists())
    if not new and read_header(path) != list(fields):  # written by another version: rewrite in today's columns
        rows, new = [*read_csv(path), *rows], True
    with path.open("w" if new else "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerows({k: fmt(v) for k, v in row.items()} for row in rows)


def fmt(value: object) -> object:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, dict):  # served_by, reasons: "name=count;name=count", names sorted
        clean = {str(k).replace(";", ",").replace("=", ":"): v for k, v in value.items()}
        return ";".join(f"{k}={clean[k]}" for k in sorted(clean))
    return value


def counts(text: str) -> dict[str, int]:
    """The inverse of fmt() for a dict of counts."""
    return {k: int(v) for k, _, v in (p.rpartition("=") for p in text.split(";") if p)}


def key(row: dict) -> tuple[str, str, int, int]:
    return row["engine"], row["client"], int(row["replicas"]), int(row["repetition"])


def num(row: dict, field: str) -> float:
    value = row.get(field, "")
    return float(value) if value not in ("", None) else math.nan


def load(folders: Sequence[Path]) -> tuple[list[dict], list[dict]]:
    """Steps and results of every folder; for a point measured in several folders, the last folder wins."""
    results: dict[tuple, dict] = {}
    steps: dict[tuple, list[dict]] = {}
    for folder in folders:
        points = {key(r): r for r in read_csv(Path(folder) / "results.csv")}
        results.update(points)
        by_point = defaultdict(list)
        for s in read_csv(Path(folder) / "steps.csv"):
            by_point[key(s)].append(s)
        steps.update({k: v for k, v in by_point.items() if k in points or k not in steps})
    return [s for k in sorted(steps) for s in steps[k]], [results[k] for k in sorted(results)]


# --- table ---------------------------------------------------------------------------------------------------


def spread(values: list[float], digits: int = 0) -> str:
    """ "mean ± sd" over repetitions ("mean" alone for one)."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "—"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def share(served_by: dict[str, int]) -> str:
    total = sum(served_by.values())
    return " · ".join(f"{name} {100 * n / total:.0f}%" for name, n in sorted(served_by.items())) if total else "—"


def _values(rows: list[dict], *fields: str) -> str:
    """The distinct values of `fields` (joined by –) over `rows`, e.g. "10" or "1.5 / 10"."""
    return " / ".join(sorted({"–".join(r[f] for f in fields) for r in rows}))


def _slowdowns(rows: list[dict]) -> str:
    """Each run's host_slowdown, flagged past the limit ("—" for runs measured before the probe existed)."""
    cells = []
    for r in rows:
        value = num(r, "host_slowdown")
        cells.append("—" if math.isnan(value) else f"{value:.2f}×" + (" ⚠" if value > SLOWDOWN_LIMIT else ""))
    return ", ".join(cells)


def client_bound(row: dict) -> bool:
    """A point in which the load generator was the limit in a step that decided it."""
    return num(row, "client_limited_steps") > 0


def _client(rows: list[dict]) -> str:
    """Each run's busiest Locust process (peak over its steps, % of one core), marked when client-bound."""
    cells = []
    for r in rows:
        value = num(r, "client_peak_cpu_pct")
        cell = "—" if math.isnan(value) else f"{value:.0f} %"
        cells.append(cell + (f" {CLIENT_MARK}" if client_bound(r) else ""))
    return ", ".join(cells)


def table(results: list[dict]) -> str:
    """Markdown: per engine, the seed's shape (replicas × client location), then one detail row per point."""
    out = []
    for engine in sorted({r["engine"] for r in results}):
        rows = [r for r in results if r["engine"] == engine]
        clients = sorted({r["client"] for r in rows})
        replicas = sorted({int(r["replicas"]) for r in rows})
        group = defaultdict(list)
        for r in rows:
            group[(int(r["replicas"]), r["client"])].append(r)
        reps = max(len(g) for g in group.values())
        values = partial(_values, rows)
        out += [
            f"## Engine `{engine}`",
            "",
            f"Max users = the most users whose every request was answered correctly within {values('timeout_s')} s "
            f"(think time {values('wait_min_s', 'wait_max_s')} s), confirmed by a {values('confirm_hold_s')} s run "
            f"at that count; average response time at that count. "
            + ("Mean ± standard deviation over repetitions." if reps > 1 else "One repetition."),
            "",
            "| replicas | " + " | ".join(f"{c}: max users | {c}: avg response time (ms)" for c in clients) + " |",
            "| ---: | " + " | ".join("---: | ---:" for _ in clients) + " |",
        ]
        for n in replicas:
            cells = []
            for c in clients:
                g = [r for r in group.get((n, c), []) if r["confirmed"] == "True"]
                mark = f" {CLIENT_MARK}" if any(client_bound(r) for r in g) else ""
                cells += [spread([num(r, "max_users") for r in g]) + mark, spread([num(r, "avg_ms") for r in g])]
            out.append(f"| {n} | " + " | ".join(cells) + " |")
        out += [
            "",
            "| replicas | client | runs | max users per run | first failure at (users) | p95 (ms) | requests/s "
            "| server inference (ms) | loaded / idle model time | client CPU (busiest Locust process) | replica share |",
            "| ---: | --- | ---: | --- | --- | ---: | ---: | ---: | --- | --- | --- |",
        ]
        for (n, c), g in sorted(group.items()):
            per_run = ", ".join(
                (r["max_users"] if r["confirmed"] == "True" else "unconfirmed")
                + (" (cap)" if r["capped"] == "True" else "")
                + (f" {CLIENT_MARK}" if client_bound(r) else "")
                for r in g
            )
            served = defaultdict(int)
            for r in g:
                for name, k in counts(r["served_by"]).items():
                    served[name] += k
            ok = [r for r in g if r["confirmed"] == "True"]
            out.append(
                f"| {n} | {c} | {len(g)} | {per_run} | {', '.join(r['first_failure_users'] or '—' for r in g)} | "
                f"{spread([num(r, 'p95_ms') for r in ok])} | {spread([num(r, 'rps') for r in ok], 1)} | "
                f"{spread([num(r, 'inference_ms') for r in ok], 1)} | {_slowdowns(g)} | {_client(g)} | "
                f"{share(dict(served))} |"
            )
        slow = [r for r in rows if num(r, "host_slowdown") > SLOWDOWN_LIMIT]
        if slow:
            out += [""] + [
                f"⚠ {r['replicas']} replica(s), {r['client']}, run {r['repetition']}: the servers' model time under "
                f"load was {num(r, 'host_slowdown'):.1f}× the idle probe's ({num(r, 'idle_inference_ms'):.1f} ms). "
                "Each replica runs one inference at a time, so load alone does not do that: the host was slower "
                "during this run (another tenant, a busy hypervisor). Measure it again (`--redo`) before using it."
                for r in slow
            ]
        bound = [r for r in rows if client_bound(r)]
        if bound:
            out += [""] + [
                f"{CLIENT_MARK} {r['replicas']} replica(s), {r['client']}, run {r['repetition']}: the load generator "
                f"was the limit in {int(num(r, 'client_limited_steps'))} step(s) that decided this point (its busiest "
                f"Locust process peaked at {num(r, 'client_peak_cpu_pct'):.0f} % of a core, or Locust warned of CPU "
                "above 90 %): the response times include the client's own queueing. Measure it again with more "
                "Locust processes (`--locust-processes N`) or workers on other machines (`--locust-master`)."
                for r in bound
            ]
        out.append("")
    return "\n".join(out)


# --- plots ---------------------------------------------------------------------------------------------------


def plot(steps: list[dict], results: list[dict], engine: str, client: str, out: Path) -> Path:
    """Average response time against users, one line per replica count, for one engine and client location."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    mine = [s for s in steps if s["engine"] == engine and s["client"] == client and s["phase"] == "step"]
    done = [r for r in results if r["engine"] == engine and r["client"] == client and r["confirmed"] == "True"]
    first_failure: dict[tuple, int] = {}  # per point: the ramp's first failing step; later steps are not plotted
    any_bound = False
    for s in mine:
        if int(s["failures"]):
            first_failure[key(s)] = min(first_failure.get(key(s), 1 << 30), int(s["users"]))
    for i, n in enumerate(sorted({int(s["replicas"]) for s in mine} | {int(r["replicas"]) for r in done})):
        ok, failed = defaultdict(list), defaultdict(list)
        for s in mine:
            users, limit = int(s["users"]), first_failure.get(key(s), 1 << 30)
            if int(s["replicas"]) == n and users <= limit and not math.isnan(num(s, "avg_ms")):
                (failed if users == limit else ok)[users].append(num(s, "avg_ms"))
        color, label = f"C{i}", f"{n} replica{'s' if n > 1 else ''}"
        ax.plot(sorted(ok), [statistics.fmean(ok[x]) for x in sorted(ok)], marker="o", ms=3, color=color, label=label)
        ax.plot(
            sorted(failed),
            [statistics.fmean(failed[x]) for x in sorted(failed)],
            marker="x",
            ms=8,
            color=color,
            linestyle="none",
        )
        bound = [s for s in mine if int(s["replicas"]) == n and s.get("client_limited") == "True"
                 and int(s["users"]) <= first_failure.get(key(s), 1 << 30) and not math.isnan(num(s, "avg_ms"))]
        if bound:
            ax.plot([int(s["users"]) for s in bound], [num(s, "avg_ms") for s in bound], marker="o", ms=11,
                    markerfacecolor="none", markeredgecolor="red", linestyle="none")  # fmt: skip
            any_bound = True
        at = [r for r in done if int(r["replicas"]) == n]
        if at:
            ax.plot([statistics.fmean(num(r, "max_users") for r in at)], [statistics.fmean(num(r, "avg_ms") for r in at)],
                    marker="*", ms=14, color=color, linestyle="none")  # fmt: skip
    timeouts = {num(r, "timeout_s") for r in results if r["engine"] == engine and r["client"] == client}
    if len(timeouts) == 1 and not math.isnan(t := timeouts.pop()):
        ax.axhline(t * 1000, color="grey", linestyle=":", linewidth=1, label=f"request timeout ({t:g} s)")
    ax.plot([], [], marker="*", ms=10, color="black", linestyle="none", label="confirmed max users")
    ax.plot([], [], marker="x", ms=7, color="black", linestyle="none", label="first step with a failure")
    if any_bound:
        ax.plot([], [], marker="o", ms=9, markerfacecolor="none", markeredgecolor="red", linestyle="none",
                label=f"client-bound step (Locust > 90 % CPU) {CLIENT_MARK}")  # fmt: skip
    ax.set_title(f"CloudPose: average response time vs users\nengine {engine}, client location {client}")
    ax.set_xlabel("concurrent users")
    ax.set_ylabel("average response time (ms)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    path = out / f"response-time-{engine}-{client}.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(folders: Sequence[Path], out: Path) -> list[Path]:
    """table.md and one plot per (engine, client) into `out`; returns the files written."""
    steps, results = load(folders)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if results:
        (out / "table.md").write_text("# CloudPose: max users per replica count\n\n" + table(results))
        written.append(out / "table.md")
    for engine, client in sorted({(r["engine"], r["client"]) for r in steps + results}):
        written.append(plot(steps, results, engine, client, out))
    if len(folders) > 1 or Path(folders[0]).resolve() != out.resolve():
        write_csv(out / "results.csv", RESULT_FIELDS, results)
        write_csv(out / "steps.csv", STEP_FIELDS, steps)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the table and plots from one or more results folders.")
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument(
        "--out", type=Path, help="default: the folder itself (one given), else results/experiment/merged"
    )
    args = parser.parse_args(argv)
    missing = [str(f) for f in args.folders if not (f / "results.csv").exists() and not (f / "steps.csv").exists()]
    if missing:
        parser.error(f"no results.csv or steps.csv in {', '.join(missing)}")
    out = args.out or (args.folders[0] if len(args.folders) == 1 else ROOT / "results" / "experiment" / "merged")
    for path in write_report(args.folders, out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
