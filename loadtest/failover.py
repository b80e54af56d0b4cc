"""A replica killed under load: what it costs, how fast nginx routes around it, when Swarm's replacement serves.

    make swarm-up REPLICAS=2
    python -m loadtest.failover                          # 140 clients, 40 s, `docker kill` of slot 1 at 12 s
    python -m loadtest.failover --up --down --replicas 2 # bring the stack up first, remove it after

Closed-loop clients (no think time: each posts the next photo as soon as its answer arrives, so the load is
the concurrency) post to one function through the Swarm gateway for --duration seconds; at --kill-at the
container of one replica (--slot) gets `docker kill` (SIGKILL: no graceful stop, as a crash or an OOM kill).
Every request is recorded with who answered (X-Served-By) and which replicas nginx tried, in order
(X-Upstream-Addr: "a, b" when it retried on b), so the run shows:

- the failed requests and why, against the requests in flight on the killed replica when it died (those
  whose first try was its address, started before the kill and not answered by then): nginx can lose at most
  those; with `proxy_next_upstream` it resends them to another replica instead;
- how fast nginx routed around it: the last request it still sent to the dead address, and when the gateway's
  replica set (refreshed from Docker's DNS every second, swarm/nginx/gateway.sh) dropped it;
- when the replacement Swarm starts (same slot, so the same hostname) was healthy, back in the gateway, and
  first answered, and its share of the answers after that.

Writes into --out (default results/failover/<time>): requests.csv (every request), timeline.csv (per second:
answers per replica, failures, retries, latency), events.csv (Docker's container events, the gateway's
replica set over time), summary.json, summary.md and failover.png.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from .engines import swarm
from .payload import CHECKS, DATA, body, load_bodies, path_for, percentile

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM_POLL_S = 0.2
# Half the 2-replica max users, as requests in flight. docs/experiment.md measured 399 and 422 users at 41.6
# and 43.8 answers/s (think time 1-2 s, 10 s timeout). Half of 410 users at 42.7 answers/s: 42.7 x 1.5 s = 64 of
# them are thinking, 141 have a request in flight, each waiting 141 / 42.7 = 3.3 s. Closed-loop clients have
# no think time, so all of them are in flight: the same load is 3.3 s x the throughput, 141 clients there.
HALF_MAX_IN_FLIGHT_S = 3.3


@dataclass
class Request:
    """One request; times in epoch seconds. `upstreams`: the replica addresses nginx tried, in order."""

    start: float
    end: float
    status: int = 0  # 0: no HTTP answer (timeout, connection error)
    ok: bool = False
    served_by: str = ""
    upstreams: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def ms(self) -> float:
        return 1000 * (self.end - self.start)


@dataclass
class Kill:
    victim: swarm.Task
    sent: float  # epoch s: `docker kill` invoked
    done: float  # epoch s: it returned (the container is dead)
    output: str = ""


def upstream_list(header: str | None) -> list[str]:
    """X-Upstream-Addr ("10.0.1.5:8080, 10.0.1.6:8080", groups joined by " : ") → the addresses, in order."""
    if not header:
        return []
    return [a.strip().rsplit(":", 1)[0] for a in header.replace(" : ", ", ").split(",") if a.strip()]


# --- the load and the kill -----------------------------------------------------------------------------------


async def client(i: int, http: httpx.AsyncClient, url: str, bodies: list[bytes], function: str, timeout: float,
                 stop_at: float, out: list[Request]) -> None:  # fmt: skip
    """One closed-loop client: post, wait for the answer (at most `timeout` s in all), check it, repeat."""
    check, n = CHECKS[function], i * 7
    while time.time() < stop_at:
        rid, image = str(uuid.uuid4()), bodies[n % len(bodies)]
        n += 1
        req = Request(start=time.time(), end=math.nan)
        try:
            r = await asyncio.wait_for(http.post(url, content=body(image, rid)), timeout)
            req.end, req.status = time.time(), r.status_code
            req.served_by, req.upstreams = r.headers.get("x-served-by", ""), upstream_list(r.headers.get("x-upstream-addr"))
            if r.status_code == 200:
                try:
                    problem = check(json.loads(r.content), rid)
                except ValueError:
                    problem = "answer is not JSON"
                req.ok, req.error = problem is None, problem or ""
            else:
                try:
                    code = r.json()["error"]["code"]
                except (ValueError, KeyError, TypeError):
                    code = ""
                req.error = f"HTTP {r.status_code}" + (f" {code}" if code else "")
        except asyncio.TimeoutError:
            req.end, req.error = time.time(), f"timeout (> {timeout:g} s)"
        except httpx.HTTPError as exc:
            req.end, req.error = time.time(), f"{type(exc).__name__}: {exc}"[:120]
        out.append(req)


async def watch_upstreams(base: str, function: str, stop: asyncio.Event, out: list[tuple[float, list[str]]]) -> None:
    """The gateway's replica set for `function`, polled every 0.2 s; one entry per change."""
    async with httpx.AsyncClient(timeout=2) as http:
        while not stop.is_set():
            try:
                text = (await http.get(f"{base}/_/upstreams")).text
                now = sorted(swarm.parse_upstreams(text).get(function, set()))
                if not out or out[-1][1] != now:
                    out.append((time.time(), now))
            except httpx.HTTPError:
                pass
            try:
                await asyncio.wait_for(stop.wait(), UPSTREAM_POLL_S)
            except asyncio.TimeoutError:
                pass


async def watch_docker(function: str, stop: asyncio.Event, out: list[dict]) -> None:
    """Docker's events for the function's containers (kill, die, start, health_status: healthy …)."""
    proc = await asyncio.create_subprocess_exec(
        "docker", "events", "--filter", "type=container", "--filter",
        f"label=com.docker.swarm.service.name={swarm.service(function)}", "--format", "{{json .}}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip

    async def read() -> None:
        while line := await proc.stdout.readline():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if (e.get("Action") or "").startswith("exec_"):  # the health checks' own commands: noise here
                continue
            out.append({"t": e["timeNano"] / 1e9, "action": e.get("Action") or e.get("status", ""),
                        "container": e.get("id", ""), "name": e.get("Actor", {}).get("Attributes", {}).get("name", "")})  # fmt: skip

    reader = asyncio.create_task(read())
    await stop.wait()
    await asyncio.sleep(0.5)  # the last events
    proc.terminate()
    await proc.wait()
    reader.cancel()


async def kill_at(when: float, victim: swarm.Task) -> Kill:
    await asyncio.sleep(max(0.0, when - time.time()))
    sent = time.time()
    proc = await asyncio.create_subprocess_exec(
        "docker", "kill", victim.container, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output = (await proc.communicate())[0].decode(errors="replace").strip()
    if proc.returncode:
        raise RuntimeError(f"docker kill {victim.container[:12]} failed: {output}")
    return Kill(victim, sent, time.time(), output)


@dataclass
class Run:
    t0: float
    duration: float
    clients: int
    function: str
    replicas: list[swarm.Task]
    kill: Kill
    requests: list[Request]
    upstreams: list[tuple[float, list[str]]]
    events: list[dict]


async def calibrate(base: str, function: str, clients: int, seconds: float, bodies: list[bytes], timeout: float) -> float:
    """The gateway's answers/s with `clients` closed-loop clients (the first 2 s left out: queues fill)."""
    out: list[Request] = []
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=clients), timeout=timeout + 5,
                                 headers={"Content-Type": "application/json"}) as http:  # fmt: skip
        t0 = time.time()
        await asyncio.gather(*(client(i, http, base + path_for(function), bodies, function, timeout, t0 + seconds, out)
                               for i in range(clients)))  # fmt: skip
    done = [r for r in out if r.ok and r.end > t0 + 2]
    return len(done) / max(1e-9, max(r.end for r in done) - (t0 + 2)) if done else 0.0


async def run_load(base: str, function: str, clients: int, duration: float, kill_after: float, victim: swarm.Task,
                   replicas: list[swarm.Task], bodies: list[bytes], timeout: float) -> Run:  # fmt: skip
    url = base + path_for(function)
    stop, requests, upstreams, events = asyncio.Event(), [], [], []
    watchers = [asyncio.create_task(watch_upstreams(base, function, stop, upstreams)),
                asyncio.create_task(watch_docker(function, stop, events))]  # fmt: skip
    await asyncio.sleep(0.5)  # docker events is listening
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=timeout + 5, headers={"Content-Type": "application/json"}) as http:
        t0 = time.time()
        killer = asyncio.create_task(kill_at(t0 + kill_after, victim))
        await asyncio.gather(*(client(i, http, url, bodies, function, timeout, t0 + duration, requests)
                               for i in range(clients)))  # fmt: skip
        kill = await killer
    await asyncio.sleep(1.5)  # the gateway's and Docker's last changes
    stop.set()
    await asyncio.gather(*watchers)
    return Run(t0, duration, clients, function, replicas, kill, sorted(requests, key=lambda r: r.start), upstreams, events)


# --- what the run shows (pure: tested on made-up runs) -------------------------------------------------------


def _rel(t: float | None, origin: float) -> float | None:
    return None if t is None else round(t - origin, 3)


def label(r: Request, kill: Kill) -> str:
    """Who answered: the replica's hostname; the killed slot's replacement has the same one, so it is told apart
    by starting after the kill (the killed container cannot have taken a request after it died)."""
    if r.served_by == kill.victim.name and r.start > kill.done:
        return f"{r.served_by} (replacement)"
    return r.served_by or "?"


def analyse(run: Run) -> dict:
    """The figures of a run (times in s from the kill unless named otherwise)."""
    k, victim = run.kill, run.kill.victim
    reqs = run.requests
    ok = [r for r in reqs if r.ok]
    failed = [r for r in reqs if not r.ok]
    in_flight = [r for r in reqs if r.start < k.sent and r.end > k.sent]
    on_victim = [r for r in in_flight if r.upstreams[:1] == [victim.address]]
    unknown = [r for r in in_flight if not r.upstreams]  # no answer at all: where it was is not known
    retried = [r for r in reqs if len(r.upstreams) > 1]
    to_dead = [r for r in reqs if r.start >= k.sent and victim.address in r.upstreams]
    dropped = next((t for t, addrs in run.upstreams if t > k.sent and victim.address not in addrs), None)
    replacement_addrs = [a for t, addrs in run.upstreams if t > k.sent for a in addrs if a not in {x.address for x in run.replicas}]
    added = next((t for t, addrs in run.upstreams if t > k.sent and any(a in addrs for a in replacement_addrs)), None)
    new_containers = [e for e in run.events if e["t"] > k.sent and e["container"] != victim.container]
    started = next((e["t"] for e in new_containers if e["action"] == "start"), None)
    healthy = next((e["t"] for e in new_containers if e["action"].startswith("health_status: healthy")), None)
    died = next((e["t"] for e in run.events if e["container"] == victim.container and e["action"] == "die"), None)
    repl_name = f"{victim.name} (replacement)"
    repl_ok = [r for r in ok if label(r, k) == repl_name]
    first_served = min((r.end for r in repl_ok), default=None)
    after = [r for r in ok if first_served is not None and r.end >= first_served]
    last10 = [r for r in ok if r.end >= run.t0 + run.duration - 10]
    first_ok_after = min((r.end for r in ok if r.end > k.sent), default=None)
    rescued = [r for r in on_victim if r.ok]  # in flight on the dead replica, answered by another one
    degraded_end = first_served or (run.t0 + run.duration)

    def lat(rs: list[Request]) -> dict:
        ms = sorted(r.ms for r in rs)
        return {"n": len(ms), "p50_ms": round(percentile(ms, 0.5), 1), "p95_ms": round(percentile(ms, 0.95), 1),
                "max_ms": round(ms[-1], 1) if ms else math.nan}  # fmt: skip

    return {
        "function": run.function, "clients": run.clients, "duration_s": run.duration,
        "kill_at_s": round(k.sent - run.t0, 3), "docker_kill_ms": round(1000 * (k.done - k.sent), 1),
        "victim": {"name": victim.name, "address": victim.address, "container": victim.container[:12]},
        "replicas": [t.name for t in run.replicas],
        "requests": len(reqs), "ok": len(ok), "failed": len(failed),
        "failure_reasons": dict(Counter(r.error for r in failed).most_common()),
        "failed_after_kill": len([r for r in failed if r.end > k.sent]),
        "failed_by_period": {"before the kill": len([r for r in failed if r.end <= k.sent]),
                             "one replica": len([r for r in failed if k.sent < r.end <= degraded_end]),
                             "after the replacement's first answer": len([r for r in failed if r.end > degraded_end])},
        "in_flight_at_kill": len(in_flight), "in_flight_on_victim": len(on_victim),
        "in_flight_unknown": len(unknown), "in_flight_on_victim_failed": len([r for r in on_victim if not r.ok]),
        "in_flight_on_victim_rescued": len(rescued),
        "rescued_latency": lat(rescued),
        "retried": len(retried), "retried_ok": len([r for r in retried if r.ok]),
        "sent_to_dead_after_kill": len(to_dead),
        "last_sent_to_dead_s": _rel(max((r.start for r in to_dead), default=None), k.sent),
        "victim_died_s": _rel(died, k.sent),
        "gateway_dropped_s": _rel(dropped, k.sent),
        "first_ok_after_kill_s": _rel(first_ok_after, k.sent),
        "replacement_started_s": _rel(started, k.sent),
        "replacement_healthy_s": _rel(healthy, k.sent),
        "replacement_in_gateway_s": _rel(added, k.sent),
        "replacement_first_served_s": _rel(first_served, k.sent),
        "replacement_share_after": round(len([r for r in after if label(r, k) == repl_name]) / len(after), 3) if after else None,
        "replacement_share_last_10s": round(len([r for r in last10 if label(r, k) == repl_name]) / len(last10), 3) if last10 else None,
        "rps_before": round(len([r for r in ok if r.end < k.sent]) / max(1e-9, k.sent - run.t0), 1),
        "latency_before": lat([r for r in ok if r.end < k.sent]),
        "latency_degraded": lat([r for r in ok if k.sent <= r.end < degraded_end]),
        "latency_after": lat([r for r in ok if r.end >= degraded_end]),
    }  # fmt: skip


def timeline(run: Run) -> list[dict]:
    """Per second (by when answers arrived): answers per replica, failures, retried requests, latency."""
    rows: dict[int, dict] = {}
    for r in run.requests:
        sec = int(r.end - run.t0)
        row = rows.setdefault(sec, {"second": sec, "ok": Counter(), "failed": 0, "retried": 0, "ms": []})
        if r.ok:
            row["ok"][label(r, run.kill)] += 1
            row["ms"].append(r.ms)
        else:
            row["failed"] += 1
        row["retried"] += len(r.upstreams) > 1
    out = []
    for sec in range(0, max(rows, default=-1) + 1):
        row = rows.get(sec, {"second": sec, "ok": Counter(), "failed": 0, "retried": 0, "ms": []})
        ms = sorted(row["ms"])
        out.append({"second": sec, "ok": dict(row["ok"]), "failed": row["failed"], "retried": row["retried"],
                    "p50_ms": percentile(ms, 0.5), "max_ms": ms[-1] if ms else math.nan})  # fmt: skip
    return out


# --- outputs -------------------------------------------------------------------------------------------------


def write_outputs(run: Run, summary: dict, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    t0, k = run.t0, run.kill
    with (folder / "requests.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["start_s", "end_s", "ms", "status", "ok", "served_by", "upstreams", "error"])
        for r in run.requests:
            w.writerow([f"{r.start - t0:.3f}", f"{r.end - t0:.3f}", f"{r.ms:.1f}", r.status, r.ok, label(r, k),
                        " ".join(r.upstreams), r.error])  # fmt: skip
    rows = timeline(run)
    names = sorted({n for row in rows for n in row["ok"]})
    with (folder / "timeline.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["second", *names, "failed", "retried", "p50_ms", "max_ms"])
        for row in rows:
            w.writerow([row["second"], *(row["ok"].get(n, 0) for n in names), row["failed"], row["retried"],
                        "" if math.isnan(row["p50_ms"]) else f"{row['p50_ms']:.0f}",
                        "" if math.isnan(row["max_ms"]) else f"{row['max_ms']:.0f}"])  # fmt: skip
    with (folder / "events.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "source", "what"])
        entries = [(k.sent, "failover", f"docker kill {k.victim.name} ({k.victim.address}, {k.victim.container[:12]})")]
        entries += [(e["t"], "docker", f"{e['action']} {e['name'] or e['container'][:12]}") for e in run.events]
        entries += [(t, "gateway", "upstreams " + " ".join(addrs)) for t, addrs in run.upstreams]
        for t, source, what in sorted(entries):
            w.writerow([f"{t - t0:.3f}", source, what])
    (folder / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (folder / "summary.md").write_text(summary_md(summary))
    return [folder / n for n in ("requests.csv", "timeline.csv", "events.csv", "summary.json", "summary.md")] + [
        plot(run, summary, rows, folder / "failover.png")
    ]


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def summary_md(s: dict) -> str:
    reasons = ", ".join(f"{n} × {why}" for why, n in s["failure_reasons"].items()) or "none"
    lines = [
        f"# Failover: `docker kill` of {s['victim']['name']} under load",
        "",
        f"{s['clients']} closed-loop clients on {s['function']} for {s['duration_s']:g} s, replicas "
        f"{', '.join(s['replicas'])}; kill at {s['kill_at_s']:.2f} s (docker kill took {s['docker_kill_ms']:.0f} ms).",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| requests (answered correctly / failed) | {s['requests']} ({s['ok']} / {s['failed']}) |",
        f"| failures and their causes | {reasons} |",
        "| failures before the kill / while one replica served / after the replacement's first answer | "
        + " / ".join(str(n) for n in s["failed_by_period"].values()) + " |",
        f"| in flight at the kill: all / on the killed replica / no answer, replica unknown | "
        f"{s['in_flight_at_kill']} / {s['in_flight_on_victim']} / {s['in_flight_unknown']} |",
        f"| of those on the killed replica: failed / answered by another replica (nginx retried) | "
        f"{s['in_flight_on_victim_failed']} / {s['in_flight_on_victim_rescued']} |",
        f"| retried requests (X-Upstream-Addr lists two replicas): all / answered | {s['retried']} / {s['retried_ok']} |",
        f"| requests nginx sent to the dead address after the kill; the last one | {s['sent_to_dead_after_kill']}; "
        f"{_s(s['last_sent_to_dead_s'])} |",
        f"| killed container died (Docker) | {_s(s['victim_died_s'])} |",
        f"| gateway dropped its address (DNS refresh + reload) | {_s(s['gateway_dropped_s'])} |",
        f"| first correct answer after the kill | {_s(s['first_ok_after_kill_s'])} |",
        f"| replacement started / healthy / in the gateway / first answer | {_s(s['replacement_started_s'])} / "
        f"{_s(s['replacement_healthy_s'])} / {_s(s['replacement_in_gateway_s'])} / {_s(s['replacement_first_served_s'])} |",
        f"| replacement's share of answers after its first / in the last 10 s | {_pct(s['replacement_share_after'])} / "
        f"{_pct(s['replacement_share_last_10s'])} |",
        "| the rescued requests' latency p50 / max (ms) | " + (f"{s['rescued_latency']['p50_ms']:.0f} / "
        f"{s['rescued_latency']['max_ms']:.0f} |" if s["rescued_latency"]["n"] else "— |"),
        f"| answers/s before the kill | {s['rps_before']} |",
        "| latency p50 / p95 / max (ms): before, one replica, after | "
        + "; ".join(f"{s[k]['p50_ms']:.0f} / {s[k]['p95_ms']:.0f} / {s[k]['max_ms']:.0f}" if s[k]["n"] else "—"
                    for k in ("latency_before", "latency_degraded", "latency_after")) + " |",  # fmt: skip
        "",
        "Times are from the kill. In flight on the killed replica = started before the kill, not answered by then,",
        "first sent to its address (X-Upstream-Addr).",
        "",
    ]
    return "\n".join(lines)


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.0f} %"


def plot(run: Run, summary: dict, rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6), dpi=110, sharex=True, height_ratios=(3, 2))
    names = sorted({n for row in rows for n in row["ok"]})
    x = [row["second"] + 0.5 for row in rows]
    base = [0.0] * len(rows)
    for i, name in enumerate(names):
        ys = [row["ok"].get(name, 0) for row in rows]
        top.bar(x, ys, width=0.9, bottom=base, color=f"C{i}", label=f"answered by {name}")
        base = [b + y for b, y in zip(base, ys)]
    top.bar(x, [row["failed"] for row in rows], width=0.9, bottom=base, color="red", label="failed")
    retried = [(xi, row["retried"]) for xi, row in zip(x, rows) if row["retried"]]
    if retried:
        top.plot(*zip(*retried), "k^", ms=5, linestyle="none", label="of them retried by nginx")
    kill_s = summary["kill_at_s"]
    marks = [(0.0, "kill", "black", "-"), (summary["gateway_dropped_s"], "gateway drops it", "grey", "--"),
             (summary["replacement_healthy_s"], "replacement healthy", "green", ":"),
             (summary["replacement_first_served_s"], "replacement answers", "green", "--")]  # fmt: skip
    for ax in (top, bottom):
        for at, text, color, style in marks:
            if at is not None:
                ax.axvline(kill_s + at, color=color, linestyle=style, linewidth=1, label=text if ax is top else None)
    top.set_ylabel("requests per second")
    top.set_title(f"CloudPose failover: docker kill of {summary['victim']['name']} at {kill_s:.1f} s\n"
                  f"{summary['clients']} closed-loop clients, {summary['requests']} requests, {summary['failed']} failed")  # fmt: skip
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    top.grid(alpha=0.3)
    bottom.plot(x, [row["p50_ms"] for row in rows], label="median latency")
    bottom.plot(x, [row["max_ms"] for row in rows], label="slowest", alpha=0.7)
    bottom.set_ylabel("ms")
    bottom.set_xlabel("seconds since the start")
    bottom.set_ylim(bottom=0)
    bottom.grid(alpha=0.3)
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# --- the command ---------------------------------------------------------------------------------------------


def warm_up(base: str, function: str, bodies: list[bytes], replicas: int, per_replica: int = 4) -> Counter:
    served = Counter()
    with httpx.Client(timeout=60, headers={"Content-Type": "application/json"}) as http:
        for i in range(per_replica * replicas):
            r = http.post(base + path_for(function), content=body(bodies[i % len(bodies)], f"warmup-{i}"))
            r.raise_for_status()
            served[r.headers.get("x-served-by", "?")] += 1
    return served


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--url", help="the gateway (default: the running cloudpose-gateway container's port)")
    p.add_argument("--function", default="pose-json", choices=sorted(CHECKS))
    p.add_argument("--clients", default="auto",
                   help="closed-loop clients; auto: the measured throughput x 3.3 s, the requests in flight at half "
                        "the 2-replica max users (docs/failover.md; 141 on the host of docs/experiment.md)")  # fmt: skip
    p.add_argument("--duration", type=float, default=40.0, help="seconds of load")
    p.add_argument("--kill-at", type=float, default=12.0, help="seconds into the load")
    p.add_argument("--slot", type=int, default=1, help="the replica (task slot) whose container is killed")
    p.add_argument("--timeout", type=float, default=10.0, help="per request, s: a slower answer is a failure")
    p.add_argument("--images", type=Path, default=DATA / "load-128")
    p.add_argument("--out", type=Path, help="results folder (default results/failover/<time>)")
    p.add_argument("--up", action="store_true", help="bring the Swarm stack up first (--replicas, --gateway-port)")
    p.add_argument("--down", action="store_true", help="remove the stack at the end (make swarm-down)")
    p.add_argument("--replicas", type=int, default=2, help="with --up: replicas per function")
    p.add_argument("--gateway-port", type=int, default=swarm.SWARM_PORT, help="with --up: the gateway's port")
    p.add_argument("--overcommit", action="store_true", help="with --up: reserve no CPU")
    args = p.parse_args(argv)
    if args.clients != "auto" and (not args.clients.isdigit() or int(args.clients) < 1):
        p.error("--clients: a count, or auto")
    if not 0 < args.kill_at < args.duration:
        p.error("need 0 < --kill-at < --duration")
    return args


def run(args: argparse.Namespace) -> tuple[dict, Path]:
    folder = args.out or ROOT / "results" / "failover" / f"{datetime.now():%Y%m%d-%H%M%S}"
    bodies = load_bodies(args.images)
    if args.up:
        engine = swarm.SwarmEngine(port=args.gateway_port, overcommit=args.overcommit, functions=[args.function])
        engine.up(args.replicas)
        base = engine.base_url
    else:
        base = args.url.rstrip("/") if args.url else swarm.url()
    state = swarm.wait_ready(120)[args.function]
    victim = next((t for t in state.tasks if t.slot == args.slot), None)
    if len(state.tasks) < 2 or victim is None:
        raise RuntimeError(f"need 2+ running replicas of {args.function} with slot {args.slot}; have "
                           f"{[(t.slot, t.name) for t in state.tasks]} (make swarm-up REPLICAS=2)")  # fmt: skip
    print(f"warm-up: {dict(warm_up(base, args.function, bodies, len(state.tasks)))}", flush=True)
    throughput = math.nan
    if args.clients == "auto":
        throughput = asyncio.run(calibrate(base, args.function, 4 * len(state.tasks), 10, bodies, args.timeout))
        clients = max(2, round(throughput * HALF_MAX_IN_FLIGHT_S))
        print(f"calibration: {throughput:.1f} answers/s with {4 * len(state.tasks)} clients; "
              f"{clients} clients = {HALF_MAX_IN_FLIGHT_S:g} s x that", flush=True)  # fmt: skip
        time.sleep(args.timeout / 2)  # its last requests drain
    else:
        clients = int(args.clients)
    print(f"{clients} clients for {args.duration:g} s on {base}; docker kill {victim.name} "
          f"({victim.address}) at {args.kill_at:g} s", flush=True)  # fmt: skip
    result = asyncio.run(run_load(base, args.function, clients, args.duration, args.kill_at, victim,
                                  state.tasks, bodies, args.timeout))  # fmt: skip
    summary = analyse(result)
    summary["calibrated_rps"] = None if math.isnan(throughput) else round(throughput, 1)
    summary["command"] = " ".join(["python -m loadtest.failover", *args.argv])
    write_outputs(result, summary, folder)
    return summary, folder


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        summary, folder = run(args)
    except (RuntimeError, TimeoutError) as exc:
        print(f"failover: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.down:
            swarm.down()
    print((folder / "summary.md").read_text())
    print(f"written to {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
