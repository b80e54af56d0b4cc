"""The experiment: the most users each replica count serves without a failed request, and the response time there.

    python -m loadtest.experiment [--engine local] [--replicas 1,2,4,8] [--repetitions 3] [--client-label master]
    python -m loadtest.experiment --url http://<node>:31112 --engine openfaas --replicas 4 --client-label remote
    python -m loadtest.report results/experiment/A results/experiment/B        # merge, regenerate

For each replica count: scale the engine, wait until every replica is ready, warm every replica up; then,
per repetition (a "point"):

1. ramp: one Locust run (loadtest/shapes.py) that starts --start-users users and adds --step-users every
   --hold seconds until the first failed request (or past --max-users). With --per-replica (the default)
   start, step and spawn rate are per replica (on one host: per replica that fits its cores), so every
   replica count reaches its limit in about as many steps.
2. confirm: max users = the first failing step's users − 1 (or the last step, at the cap); a run at that
   count, users started at --confirm-spawn-rate (1/s) and then held --confirm-hold seconds, must have no
   failure; if it fails, step down (--down-step, default 4 % of the count; straight to throughput ×
   (timeout + mean think time) if the confirm was further past the edge) and confirm again (at most
   --max-confirms runs).
3. record the confirmed count with the average and p95 response time, requests/s and failures of the
   confirm run's hold, and which replica answered how many requests (X-Served-By).

Between runs the runner waits --cooldown seconds (default the request timeout): requests whose clients
gave up may still be queued on the server, and the next run must not inherit them.

The results folder (default results/experiment/<engine>-<client>-<time>) holds steps.csv (every step and
confirm run), results.csv (one row per point), table.md, one PNG per client location, meta.json, and raw/
(each Locust run's own CSVs, --csv-full-history, its per-step JSON and log). Rerunning with the same folder
skips the points in results.csv (--redo measures them again); a point interrupted half-way starts over.

The load generator itself: `--locust-processes N` runs Locust with N worker processes (its `--processes`)
under one master, so one client machine can use its cores; `--locust-master HOST:PORT --locust-workers K`
makes every run a Locust master that waits for K workers, which other machines run with
`python -m loadtest.experiment --locust-worker HOST:PORT` (Locust's distributed mode). Every step records the
client's CPU (loadtest/clientcpu.py: the busiest Locust process, and Locust's own 90 % warning) and is
flagged when the client, not the service, was the limit; the table and the plot mark such points.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import psutil
from cloudpose.deployment import CPU_CORES, NAMESPACE, OPENFAAS_CE_MAX_REPLICAS, REPLICA_COUNTS
from rich.console import Console
from rich.live import Live
from rich.table import Table

from . import clientcpu, report
from .engines import Engine
from .payload import ANNOTATE_OF, CHECKS, DATA, PATH_STYLES, body, load_bodies, path_for, server_inference_ms

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
SHAPES = Path(__file__).with_name("shapes.py")
ENGINES = ("local", "swarm", "kubectl", "knative", "openfaas")
LOCUST_MASTER_PORT = 5557  # Locust's default --master-bind-port


# --- the search (pure: tested with fake runs) ----------------------------------------------------------------


@dataclass
class Step:
    """One step of a ramp, or one confirm run. Requests and failures count the whole step; the response
    times and requests/s only its hold (every user running), or the whole step if it never held."""

    users: int
    requests: int = 0
    failures: int = 0
    hold_requests: int = 0
    avg_ms: float = math.nan
    p50_ms: float = math.nan
    p95_ms: float = math.nan
    rps: float = 0.0
    served_by: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    inference_ms: float = math.nan  # the servers' median model time (Server-Timing): the host's speed
    started: float = math.nan  # epoch s: the step's first request, and where the next step began (or its last)
    ended: float = math.nan
    client: clientcpu.ClientLoad = field(default_factory=clientcpu.ClientLoad)  # the load generator's CPU

    @property
    def client_limited(self) -> bool:
        return self.client.limited


def steps_from_buckets(buckets: list[dict]) -> list[Step]:
    """Merge the locustfile's (users, ramp|hold) buckets into one Step per user count."""
    steps: dict[int, Step] = {}
    for b in sorted(buckets, key=lambda b: (b["users"], b["phase"] != "ramp")):  # ramp first, hold overrides
        s = steps.setdefault(b["users"], Step(b["users"]))
        s.requests += b["requests"]
        s.failures += b["failures"]
        if "first" in b:
            s.started = b["first"] if math.isnan(s.started) else min(s.started, b["first"])
            s.ended = b["end"] if math.isnan(s.ended) else max(s.ended, b["end"])
        for name, n in b["served_by"].items():
            s.served_by[name] = s.served_by.get(name, 0) + n
        for reason, n in b["reasons"].items():
            s.reasons[reason] = s.reasons.get(reason, 0) + n
        if b["phase"] == "hold" or not s.hold_requests:
            s.hold_requests = b["requests"] if b["phase"] == "hold" else 0
            s.avg_ms, s.p50_ms, s.p95_ms, s.rps = b["avg_ms"], b["p50_ms"], b["p95_ms"], b["rps"]
            s.inference_ms = b.get("inference_ms", math.nan)
    return [steps[u] for u in sorted(steps)]


@dataclass
class Search:
    steps: list[Step]
    confirms: list[Step]
    max_users: int | None  # None: nothing confirmed
    capped: bool  # the ramp reached its cap without a failure
    first_failure: int | None

    @property
    def result(self) -> Step | None:
        return self.confirms[-1] if self.max_users is not None else None


def find_max_users(
    ramp: Callable[[], list[Step]],
    confirm: Callable[[int], Step],
    down_step: int,
    max_confirms: int,
    down_fraction: float = 0.04,
    cycle_s: float = 0.0,
) -> Search:
    """Ramp until the first failure, then confirm first-failing-users − 1, stepping down while confirms fail:
    by `down_step` users, or (0) by `down_fraction` of the count. The limit is a sharp edge: in a closed loop
    every user waits about users / throughput − think time, so latency grows linearly with users until it
    meets the timeout, and a few percent below is where to look. How many requests a confirm failed says
    little about how far past the edge it was (at the edge a quarter may time out), but its throughput does:
    with `cycle_s` = timeout + mean think time, no more than throughput × cycle_s users can be answered in
    time, so a confirm far past that steps straight down to it."""
    steps = sorted(ramp(), key=lambda s: s.users)
    if not steps:
        raise RuntimeError("the ramp recorded no requests")
    first_failure = next((s.users for s in steps if s.failures), None)
    candidate = steps[-1].users if first_failure is None else first_failure - 1
    confirms: list[Step] = []
    while len(confirms) < max_confirms and candidate >= 1:
        confirms.append(confirm(candidate))
        if not confirms[-1].failures:
            return Search(steps, confirms, candidate, first_failure is None, first_failure)
        failed = confirms[-1]
        below = candidate - max(1, down_step or math.ceil(candidate * down_fraction))
        capacity = math.floor(failed.rps * cycle_s) if cycle_s > 0 and failed.rps > 0 else below
        candidate = min(below, capacity)
    return Search(steps, confirms, None, first_failure is None, first_failure)


def host_slowdown(idle_ms: float, loaded_ms: list[float]) -> float:
    """The median of the point's per-step model times over the idle probe's (nan if either is unknown).
    Each replica runs one inference at a time, so load alone leaves the model time where the probe found it;
    a rise means the CPU itself got slower."""
    loaded = [v for v in loaded_ms if not math.isnan(v)]
    if not loaded or math.isnan(idle_ms) or idle_ms <= 0:
        return math.nan
    return statistics.median(loaded) / idle_ms


# --- Locust ---------------------------------------------------------------------------------------------------


@dataclass
class Plan:
    """Per-point parameters (after --per-replica scaling)."""

    start: int
    step: int
    spawn_rate: float
    max_users: int
    hold: float
    confirm_hold: float
    confirm_spawn_rate: float
    down_step: int
    max_confirms: int
    timeout: float
    cooldown: float


def replica_factor(args: argparse.Namespace, replicas: int) -> int:
    """What --per-replica multiplies by: the replicas, but on one host (local, swarm) no more than fit its cores
    at 0.5 CPU each — beyond that more replicas add no capacity, and steps sized for them would overshoot."""
    if not args.per_replica:
        return 1
    if args.engine in ("local", "swarm") and not args.url:
        return max(1, min(replicas, int((os.cpu_count() or 1) / CPU_CORES)))
    return replicas


def plan_for(args: argparse.Namespace, replicas: int) -> Plan:
    k = replica_factor(args, replicas)
    step = args.step_users * k
    return Plan(
        start=args.start_users * k, step=step, spawn_rate=args.spawn_rate * k, max_users=args.max_users, hold=args.hold,
        confirm_hold=args.confirm_hold, confirm_spawn_rate=args.confirm_spawn_rate,
        down_step=args.down_step * k, max_confirms=args.max_confirms,
        timeout=args.timeout, cooldown=args.timeout if args.cooldown is None else args.cooldown,
    )  # fmt: skip


@dataclass
class LocustSetup:
    """How the load generator runs: one process (the default), `processes` worker processes under a master on
    this machine (Locust's --processes), or a master bound to `master` that waits for `workers` workers that
    other machines run (`--locust-worker`)."""

    processes: int = 1
    master: tuple[str, int] | None = None
    workers: int = 0
    worker_wait: float = 120.0

    def args(self) -> list[str]:
        if self.master:
            host, port = self.master
            return ["--master", "--master-bind-host", host, "--master-bind-port", str(port),
                    "--expect-workers", str(self.workers), "--expect-workers-max-wait", f"{self.worker_wait:g}"]  # fmt: skip
        return ["--processes", str(self.processes)] if self.processes > 1 else []

    @property
    def overhead(self) -> float:
        """Extra seconds a run may take to start: a master waits for its workers."""
        return self.worker_wait if self.master else 0.0

    def describe(self) -> str:
        if self.master:
            return f"master on {self.master[0]}:{self.master[1]}, {self.workers} worker(s) elsewhere"
        return f"{self.processes} worker process(es) + master" if self.processes > 1 else "one process"


def address(text: str, default_host: str = "0.0.0.0") -> tuple[str, int]:
    """HOST:PORT, HOST or :PORT (Locust's port by default)."""
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    return host or default_host, int(port) if port else LOCUST_MASTER_PORT


class Display:
    """What runs now, live (rich), plus one log line per finished step and point."""

    def __init__(self, console: Console) -> None:
        self.state: dict[str, str] = {}
        self.live = Live(get_renderable=self.render, console=console, refresh_per_second=2, transient=True)

    def render(self) -> Table:
        t = Table.grid(padding=(0, 2))
        for k, v in self.state.items():
            t.add_row(f"[bold]{k}[/]", v)
        return t

    def set(self, **items: str) -> None:
        self.state.update(items)


def functions_of(args: argparse.Namespace) -> tuple[str, ...]:
    """The functions a run sends requests to: --function, and its annotate sibling if --annotate-weight."""
    annotate = ANNOTATE_OF.get(args.function)
    return (args.function, annotate) if annotate and args.annotate_weight > 0 else (args.function,)


def locust_target_args(engine: Engine, function: str, paths: str) -> list[str]:
    """Where Locust sends each function's requests: the engine's own endpoints, else base URL + --paths."""
    args = ["--host", engine.base_url, "--paths", paths, "--function", function]
    annotate = ANNOTATE_OF.get(function)
    for fn, opt in ((function, "json"), (annotate, "annotate")):
        if fn and hasattr(engine, "endpoint"):
            url, headers = engine.endpoint(fn)
            args += [f"--{opt}-path", url] + ([f"--{opt}-host-header", headers["Host"]] if "Host" in headers else [])
    return args


def read_steps_out(data: object) -> tuple[list[dict], list[dict], list[dict]]:
    """(buckets, Locust's CPU usage samples, its 90 % warnings) from a --steps-out file (older: buckets only)."""
    if isinstance(data, list):
        return data, [], []
    return data["buckets"], data.get("usage", []), data.get("cpu_warnings", [])


def attach_client_load(steps: list[Step], samples: list, usage: list[dict], warnings: list[dict]) -> list[Step]:
    """Each step's client CPU, from the runner's psutil samples and Locust's own figures."""
    timed = [s for s in steps if not math.isnan(s.started)]
    windows = [(s.started, s.ended) for s in timed]
    for s, load in zip(timed, clientcpu.per_step(windows, samples, usage, warnings) if timed else []):
        s.client = load
    return steps


def stop_tree(proc: subprocess.Popen) -> None:
    """Kill a Locust run and the worker processes it forked (by their pids: a killed master leaves them)."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    for p in [*children]:
        try:
            p.kill()
        except psutil.Error:
            pass
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    psutil.wait_procs(children, timeout=5)


def run_locust(
    name: str, folder: Path, args: list[str], bound: float, display: Display, setup: LocustSetup = LocustSetup()
) -> list[Step]:
    """One headless Locust run; its CSVs, per-step JSON and log go to `folder`/`name`*. Killed after `bound` s.
    Its processes' CPU is sampled every second while it runs; each step gets its figures."""
    folder.mkdir(parents=True, exist_ok=True)
    steps_out, live_out = folder / f"{name}_steps.json", folder / f"{name}_live.json"
    for f in (steps_out, live_out):
        f.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "locust", "--headless", "--only-summary", "--csv", str(folder / name), "--csv-full-history",
           "--steps-out", str(steps_out), "--live-out", str(live_out), "--loglevel", "WARNING", *setup.args(), *args]  # fmt: skip
    (folder / f"{name}_command.txt").write_text(" ".join(cmd) + "\n")
    deadline = time.monotonic() + bound + setup.overhead
    with (folder / f"{name}.log").open("w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        sampler = clientcpu.ProcessSampler(proc.pid)
        sampler.start()
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"locust {name} still running after {bound:.0f} s (see {folder / name}.log)")
                try:
                    live = json.loads(live_out.read_text())
                    display.set(live=f"{live['users']} users · {live['rps']:.1f} req/s · avg {live['avg_ms']:.0f} ms (5 s)"
                                f" · {live['requests']} requests, {live['failures']} failed")  # fmt: skip
                except (OSError, ValueError, KeyError):
                    pass
                time.sleep(0.5)
        finally:
            samples = sampler.stop()
            if proc.poll() is None:
                stop_tree(proc)
    if not steps_out.exists():
        raise RuntimeError(
            f"locust {name} exited {proc.returncode} without results:\n{(folder / f'{name}.log').read_text()[-3000:]}"
        )
    buckets, usage, warnings = read_steps_out(json.loads(steps_out.read_text()))
    (folder / f"{name}_client_cpu.json").write_text(json.dumps(
        [{"t": t, "cpu_s": {str(pid): v for pid, v in cpu.items()}} for t, cpu in samples]) + "\n")  # fmt: skip
    return attach_client_load(steps_from_buckets(buckets), samples, usage, warnings)


# --- engines -------------------------------------------------------------------------------------------------


class FixedTarget:
    """--url: a deployment someone else runs and scales; the runner only measures it."""

    def __init__(self, url: str, replicas: int, paths: str = "gateway", knative_domain: str | None = None) -> None:
        self.base_url, self.replicas, self.paths, self.knative_domain = url.rstrip("/"), replicas, paths, knative_domain

    def endpoint(self, function: str) -> tuple[str, dict[str, str]]:
        """`--paths` under the URL; through Kourier (--engine knative) with the Service's host name."""
        host = {"Host": f"{function}.{NAMESPACE}.{self.knative_domain}"} if self.knative_domain else {}
        return self.base_url + path_for(function, self.paths), host

    def scale(self, replicas: int) -> None:
        if replicas != self.replicas:
            raise ValueError(f"--url {self.base_url} is not scaled by the runner: it runs {self.replicas} replica(s)")

    def wait_ready(self, timeout: float = 300) -> None:
        pass

    def replica_names(self) -> list[str]:
        return []


def make_engine(args: argparse.Namespace) -> Engine:
    functions = functions_of(args)
    if args.url:
        return FixedTarget(
            args.url, args.replicas[0], args.paths, args.knative_domain if args.engine == "knative" else None
        )
    if args.engine == "local":
        from .engines.local import LocalEngine

        return LocalEngine(functions, port=args.gateway_port, limits=not args.no_limits).start()
    if args.engine == "swarm":
        from .engines.swarm import SWARM_PORT, SwarmEngine

        engine = SwarmEngine(port=args.gateway_port or SWARM_PORT, overcommit=args.overcommit, functions=[args.function])
        engine.up(args.replicas[0])
        return engine
    if args.engine == "kubectl":
        from .engines.kubectl import KubectlEngine

        return KubectlEngine(args.node, functions)
    if args.engine == "knative":
        from .engines.knative import KnativeEngine

        return KnativeEngine(args.node, functions, domain=args.knative_domain)
    from .engines.openfaas import OpenFaasEngine

    return OpenFaasEngine(args.node, functions, gateway=args.openfaas_url or None)


# --- the runner ----------------------------------------------------------------------------------------------


class Store:
    """steps.csv and results.csv in the results folder; a point is done once it has a row in results.csv."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.steps, self.results = folder / "steps.csv", folder / "results.csv"

    def done(self, point: tuple) -> bool:
        return any(report.key(r) == point for r in report.read_csv(self.results))

    def forget(self, point: tuple) -> None:
        """Drop a point's rows (an interrupted or redone point starts over)."""
        for path, fields in ((self.steps, report.STEP_FIELDS), (self.results, report.RESULT_FIELDS)):
            rows = report.read_csv(path)
            if any(report.key(r) == point for r in rows):
                report.write_csv(path, fields, [r for r in rows if report.key(r) != point])


def step_row(point: tuple, phase: str, step: Step, spawn_rate: float, raw: Path) -> dict:
    return {**dict(zip(report.KEY, point)), "phase": phase, "users": step.users, "spawn_rate": spawn_rate,
            "requests": step.requests, "failures": step.failures, "hold_requests": step.hold_requests,
            "avg_ms": step.avg_ms, "p50_ms": step.p50_ms, "p95_ms": step.p95_ms, "rps": step.rps,
            "inference_ms": step.inference_ms, "client_cpu_pct": step.client.cpu_pct,
            "client_locust_cpu_pct": step.client.locust_cpu_pct, "client_processes": step.client.processes,
            "client_cpu_warnings": step.client.warnings, "client_limited": step.client_limited,
            "served_by": step.served_by, "reasons": step.reasons, "started": datetime.now().isoformat(timespec="seconds"),
            "raw": str(raw)}  # fmt: skip


def client_limited_steps(search: Search) -> list[Step]:
    """The steps that decided the point and in which the client was the limit: the ramp up to its first
    failing step, and every confirm."""
    edge = search.first_failure or math.inf
    return [s for s in (*[s for s in search.steps if s.users <= edge], *search.confirms) if s.client_limited]


class Experiment:
    """One invocation: its options, results folder, engine, display and load generator. Everything a point needs
    is here, so nothing about a run lives in module globals."""

    def __init__(self, args: argparse.Namespace, console: Console | None = None) -> None:
        self.args = args
        self.console = console or Console(width=None if sys.stdout.isatty() else 150)
        self.engine_name = args.engine or "url"
        self.folder: Path = args.results or ROOT / "results" / "experiment" / (
            args.name or f"{self.engine_name}-{args.client_label}-{datetime.now():%Y%m%d-%H%M%S}"
        )
        self.store = Store(self.folder)
        self.display = Display(self.console)
        self.locust = LocustSetup(args.locust_processes, args.locust_master, args.locust_workers, args.locust_worker_wait)
        self.engine: Engine | None = None
        self._bodies: list[bytes] | None = None

    # -- helpers around the engine --

    @property
    def bodies(self) -> list[bytes]:
        """The photos, read once: warm-up and probes reuse them."""
        if self._bodies is None:
            self._bodies = load_bodies(Path(self.args.images))
        return self._bodies

    def endpoint(self) -> tuple[str, dict[str, str]]:
        if hasattr(self.engine, "endpoint"):
            return self.engine.endpoint(self.args.function)
        return self.engine.base_url + path_for(self.args.function, self.args.paths), {}

    def warm_up(self, replicas: int) -> dict[str, int]:
        """`--warmup` requests per replica, as many at once as replicas: every replica runs its first inferences
        (slow: lazy initialisation) before anything is measured. Returns who answered."""
        bodies, (url, headers) = self.bodies, self.endpoint()
        served: dict[str, int] = {}

        def post(i: int) -> None:
            r = httpx.post(url, content=body(bodies[i % len(bodies)], f"warmup-{i}"),
                           headers={"Content-Type": "application/json", **headers}, timeout=120)  # fmt: skip
            r.raise_for_status()
            name = r.headers.get("X-Served-By", "?")
            served[name] = served.get(name, 0) + 1

        with ThreadPoolExecutor(max_workers=replicas) as pool:
            list(pool.map(post, range(self.args.warmup * replicas)))
        return served

    def probe_inference(self, replicas: int, per_replica: int = 4) -> float:
        """The servers' median model time (Server-Timing) over requests sent one at a time: the host's speed
        when nothing else runs. A point whose model time under load is well above it ran on a slower host
        (another tenant, a busy hypervisor) and says nothing about the method: the table flags it."""
        bodies, (url, headers) = self.bodies, self.endpoint()
        times = []
        with httpx.Client(timeout=60, headers={"Content-Type": "application/json", **headers}) as client:
            for i in range(per_replica * replicas):
                r = client.post(url, content=body(bodies[i % len(bodies)], f"probe-{i}"))
                r.raise_for_status()
                ms = server_inference_ms(r.headers.get("Server-Timing"))
                if ms is not None:
                    times.append(ms)
        return statistics.median(times) if times else math.nan

    # -- one point --

    def run_point(self, point: tuple, plan: Plan, cool_first: bool) -> dict:
        """One search (ramp, confirms) at the engine's current scale; its steps go to steps.csv as they finish."""
        args, display, console, store = self.args, self.display, self.console, self.store
        _, client, replicas, repetition = point
        raw = store.folder / "raw" / client / f"replicas-{replicas}" / f"rep-{repetition}"
        shutil.rmtree(raw, ignore_errors=True)
        common = [
            *locust_target_args(self.engine, args.function, args.paths), "--images", str(args.images),
            "--request-timeout", str(plan.timeout), "--wait-min", str(args.wait_min), "--wait-max", str(args.wait_max),
            "--annotate-weight", str(args.annotate_weight),
            "--stop-timeout", str(math.ceil(plan.timeout + 1)),  # requests in flight at the stop finish (or time out)
        ]  # fmt: skip
        overhead = 60 + plan.timeout  # the bound on Locust's start and stop
        runs = [0]

        def cool_down() -> None:
            display.set(phase=f"cooldown {plan.cooldown:g} s", live="")
            time.sleep(plan.cooldown)

        if cool_first:
            cool_down()
        display.set(phase="probe: the servers' model time, one request at a time", live="")
        idle_ms = self.probe_inference(replicas)
        console.log(f"  probe: server inference {idle_ms:.1f} ms with one request at a time")

        def locust(name: str, extra: list[str], seconds: float) -> list[Step]:
            if runs[0]:
                cool_down()
            runs[0] += 1
            return run_locust(name, raw, [*extra, *common], seconds + overhead, display, self.locust)

        def record(phase: str, step: Step, spawn_rate: float, name: str) -> None:
            row = step_row(point, phase, step, spawn_rate, (raw / name).relative_to(store.folder))
            report.write_csv(store.steps, report.STEP_FIELDS, [row], append=True)
            reason = f"  [red]{max(step.reasons, key=step.reasons.get)}[/]" if step.reasons else ""
            cpu = step.client.cpu_pct if not math.isnan(step.client.cpu_pct) else step.client.locust_cpu_pct
            bound = "  [yellow]client-bound[/]" if step.client_limited else ""
            console.log(f"  {phase} {step.users:>4} users: {step.requests:>5} requests, {step.failures} failed, "
                        f"avg {step.avg_ms:6.0f} ms, p95 {step.p95_ms:6.0f} ms, {step.rps:5.1f} req/s, "
                        f"server inference {step.inference_ms:4.1f} ms, client CPU {cpu:3.0f} %{bound}{reason}")  # fmt: skip

        def ramp() -> list[Step]:
            display.set(
                phase=f"ramp: {plan.start} users, +{plan.step} every {plan.hold:g} s until a failure (cap {plan.max_users})"
            )
            shape = ["--step-start", plan.start, "--step-users", plan.step, "--step-hold", plan.hold,
                     "--step-spawn-rate", plan.spawn_rate, "--step-max-users", plan.max_users]  # fmt: skip
            steps = locust("ramp", ["-f", f"{LOCUSTFILE},{SHAPES}", *map(str, shape)],
                           (max(0, plan.max_users - plan.start) // max(1, plan.step) + 2) * plan.hold)  # fmt: skip
            for s in steps:
                record("step", s, plan.spawn_rate, "ramp")
            return steps

        def confirm(users: int) -> Step:
            display.set(phase=f"confirm {users} users ({plan.confirm_spawn_rate:g}/s, then {plan.confirm_hold:g} s)")
            seconds = math.ceil(users / plan.confirm_spawn_rate) + math.ceil(plan.confirm_hold)
            steps = locust(f"confirm-{users}", ["-f", str(LOCUSTFILE), "-u", str(users), "-r", str(plan.confirm_spawn_rate),
                                                "-t", f"{seconds}s"], seconds)  # fmt: skip
            step = next((s for s in steps if s.users == users), Step(users))
            for s in steps:  # the target changes only as the run stops: count such stragglers as this run's too
                if s is not step:
                    step.requests, step.failures = step.requests + s.requests, step.failures + s.failures
            record("confirm", step, plan.confirm_spawn_rate, f"confirm-{users}")
            return step

        cycle_s = plan.timeout + (args.wait_min + args.wait_max) / 2
        search = find_max_users(ramp, confirm, plan.down_step, plan.max_confirms, cycle_s=cycle_s)
        result = search.result or Step(0)
        slowdown = host_slowdown(idle_ms, [s.inference_ms for s in (*search.steps, *search.confirms)])
        if slowdown > report.SLOWDOWN_LIMIT:
            console.log(f"  [yellow]the servers' model time under load was {slowdown:.1f}× the probe's: the host was "
                        f"slower during this point than the method explains; measure it again (--redo)[/]")  # fmt: skip
        bound = client_limited_steps(search)
        if bound:
            console.log(f"  [yellow]the load generator was the limit in {len(bound)} step(s) "
                        f"({', '.join(str(s.users) for s in bound)} users): its busiest process was above "
                        f"{clientcpu.LIMIT:g} % CPU or Locust warned; use more --locust-processes or workers[/]")  # fmt: skip
        names = self.engine.replica_names()
        serving = len([n for n in names if result.served_by.get(n)]) if names else len(result.served_by)
        peak = max((s.client.cpu_pct for s in (*search.steps, *search.confirms) if not math.isnan(s.client.cpu_pct)),
                   default=math.nan)  # fmt: skip
        return {
            **dict(zip(report.KEY, point)), "max_users": search.max_users if search.max_users is not None else "",
            "confirmed": search.max_users is not None, "capped": search.capped, "first_failure_users": search.first_failure or "",
            "requests": result.requests, "failures": result.failures, "avg_ms": result.avg_ms, "p95_ms": result.p95_ms,
            "rps": result.rps, "inference_ms": result.inference_ms, "served_by": result.served_by,
            "idle_inference_ms": idle_ms, "host_slowdown": slowdown, "replicas_serving": serving,
            "client_cpu_pct": result.client.cpu_pct, "client_peak_cpu_pct": peak,
            "client_limited_steps": len(bound), "locust_processes": self.locust.processes,
            "locust_workers": self.locust.workers, "function": args.function, "start_users": plan.start,
            "step_users": plan.step, "hold_s": plan.hold, "confirm_hold_s": plan.confirm_hold, "timeout_s": plan.timeout,
            "wait_min_s": args.wait_min, "wait_max_s": args.wait_max, "annotate_weight": args.annotate_weight,
            "finished": datetime.now().isoformat(timespec="seconds"),
        }  # fmt: skip

    # -- the whole experiment --

    def run(self) -> Path:
        args, store, console, display = self.args, self.store, self.console, self.display
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = self.folder / "meta.json"
        if not meta.exists():
            meta.write_text(
                json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, indent=1) + "\n"
            )
        points = [(self.engine_name, args.client_label, n, k) for n in args.replicas for k in range(1, args.repetitions + 1)]
        todo = [p for p in points if args.redo or not store.done(p)]
        console.log(f"results: {self.folder}  ({len(points) - len(todo)} of {len(points)} points already done)")
        if not todo:
            report.write_report([self.folder], self.folder)
            return self.folder
        console.log(f"load generator: Locust, {self.locust.describe()}")
        self.engine = make_engine(args)
        try:
            with display.live:
                scaled, first = None, True
                for point in todo:
                    replicas = point[2]
                    display.set(point=f"{replicas} replica(s), repetition {point[3]}/{args.repetitions}, "
                                      f"client {args.client_label}, engine {self.engine_name}")  # fmt: skip
                    if scaled != replicas:
                        display.set(phase=f"scaling to {replicas}", live="")
                        t0 = time.monotonic()
                        self.engine.scale(replicas)
                        self.engine.wait_ready(args.ready_timeout)
                        served = self.warm_up(replicas)
                        console.log(
                            f"{replicas} replica(s) ready in {time.monotonic() - t0:.0f} s; warm-up served by {served}"
                        )
                        scaled = replicas
                    store.forget(point)
                    console.log(f"[bold]point: {replicas} replica(s), repetition {point[3]}[/]")
                    result = self.run_point(point, plan_for(args, replicas), cool_first=not first)
                    first = False
                    report.write_csv(store.results, report.RESULT_FIELDS, [result], append=True)
                    report.write_report([self.folder], self.folder)
                    console.log(f"[bold]{replicas} replica(s): max users {result['max_users'] or 'unconfirmed'}"
                                f" (avg {result['avg_ms']:.0f} ms, served by {result['replicas_serving']} replica(s))[/]")  # fmt: skip
        finally:
            if hasattr(self.engine, "stop"):
                self.engine.stop()
        return self.folder


def run(args: argparse.Namespace) -> Path:
    return Experiment(args).run()


# --- a worker host: Locust workers for a master elsewhere ----------------------------------------------------


def worker_command(args: argparse.Namespace) -> list[str]:
    host, port = args.locust_worker
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker", "--master-host", host,
           "--master-port", str(port), "--images", str(args.images), "--loglevel", "WARNING"]  # fmt: skip
    return cmd + (["--processes", str(args.locust_processes)] if args.locust_processes > 1 else [])


def run_workers(args: argparse.Namespace, console: Console | None = None) -> int:
    """Serve the master's runs until --worker-for seconds pass (or --worker-runs runs, or Ctrl-C): a Locust
    worker exits when the master's run ends, and the experiment makes one run per ramp and confirm, so the
    workers are started again each time. Each waits up to 5 minutes for a master (Locust's own retries)."""
    console = console or Console(width=None if sys.stdout.isatty() else 150)
    cmd, deadline = worker_command(args), time.monotonic() + args.worker_for
    host, port = args.locust_worker
    console.log(f"Locust worker(s) for the master on {host}:{port}: {args.locust_processes} process(es), "
                f"until {args.worker_for:g} s have passed or {args.worker_runs} runs")  # fmt: skip
    for run_index in range(1, args.worker_runs + 1):
        if time.monotonic() > deadline:
            break
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT)
        try:
            proc.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            stop_tree(proc)
            break
        finally:
            if proc.poll() is None:
                stop_tree(proc)
        console.log(f"worker run {run_index} ended (exit {proc.returncode}) after {time.monotonic() - started:.0f} s")
        if time.monotonic() - started < 2:  # it could not even start: do not spin
            time.sleep(2)
    return 0


def replica_list(text: str) -> list[int]:
    return [int(x) for x in text.replace(" ", "").split(",") if x]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    g = p.add_argument_group("target")
    g.add_argument(
        "--engine",
        choices=ENGINES,
        help="what to scale (default local); with --url, only a label (knative: Host header)",
    )
    g.add_argument("--url", help="measure this running deployment, unscaled (give its count with --replicas)")
    g.add_argument("--replicas", type=replica_list, default=list(REPLICA_COUNTS), help="comma-separated replica counts")
    g.add_argument(
        "--function", choices=sorted(CHECKS), default="pose-json", help="the function to load"
    )
    g.add_argument(
        "--paths", choices=PATH_STYLES, default="gateway", help="/function/<name> or the course's /api/... paths"
    )
    g.add_argument("--annotate-weight", type=float, default=0.0, help="share of requests to --function's annotate sibling")
    g.add_argument(
        "--no-limits", action="store_true", help="local: no cgroups (no root); numbers not comparable to pods"
    )
    g.add_argument("--overcommit", action="store_true", help="swarm: reserve no CPU (more replicas than cores)")
    g.add_argument(
        "--gateway-port", type=int, default=0, help="local: nginx's port (default a free one); swarm: default 8088"
    )
    g.add_argument("--node", help="kubectl/knative/openfaas: a node's address (default: the first node's InternalIP)")
    g.add_argument("--knative-domain", default="cloudpose.test")
    g.add_argument("--openfaas-url", default=os.environ.get("OPENFAAS_URL", ""), help="default http://<node>:31112")
    g.add_argument("--ready-timeout", type=float, default=600)
    g = p.add_argument_group("load")
    g.add_argument("--images", type=Path, default=DATA / "load-128")
    g.add_argument("--client-label", default="local", help="where Locust runs (master, remote, …): a table column")
    g.add_argument("--timeout", type=float, default=10.0, help="request timeout, s: a slower answer is a failure")
    g.add_argument("--wait-min", type=float, default=1.0, help="think time between a user's requests, s")
    g.add_argument("--wait-max", type=float, default=2.0)
    g.add_argument(
        "--start-users", type=int, default=20, help="users in the first step (per replica with --per-replica)"
    )
    g.add_argument("--step-users", type=int, default=20, help="users added per step (per replica with --per-replica)")
    g.add_argument(
        "--spawn-rate", type=float, default=5.0, help="users started per second in the ramp (per replica too)"
    )
    g.add_argument(
        "--per-replica",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="scale start, step, spawn rate by replicas (local, swarm: at most cores / 0.5)",
    )
    g.add_argument("--hold", type=float, default=30.0, help="seconds per step")
    g.add_argument("--max-users", type=int, default=1000, help="the ramp stops past this many users")
    g.add_argument("--confirm-hold", type=float, default=60.0, help="seconds at full users in a confirm run")
    g.add_argument("--confirm-spawn-rate", type=float, default=1.0, help="users started per second in a confirm run")
    g.add_argument(
        "--down-step", type=int, default=0, help="users fewer per failed confirm (per replica); 0: 4%% of the count"
    )
    g.add_argument("--max-confirms", type=int, default=6)
    g.add_argument("--cooldown", type=float, default=None, help="seconds between Locust runs (default: the timeout)")
    g.add_argument("--warmup", type=int, default=4, help="warm-up requests per replica after scaling")
    g = p.add_argument_group("load generator (Locust)")
    g.add_argument("--locust-processes", type=int, default=1,
                   help="Locust worker processes on this machine (Locust's --processes; 1: a single process); "
                        "with --locust-worker: worker processes on this worker host")  # fmt: skip
    g.add_argument("--locust-master", type=address, metavar="[HOST]:PORT",
                   help="run Locust as a master bound here and wait for --locust-workers workers from other machines")  # fmt: skip
    g.add_argument("--locust-workers", type=int, default=0, help="with --locust-master: how many workers to wait for")
    g.add_argument("--locust-worker-wait", type=float, default=120.0,
                   help="with --locust-master: seconds each run waits for its workers before failing")  # fmt: skip
    g.add_argument("--locust-worker", type=lambda t: address(t, "127.0.0.1"), metavar="MASTER[:PORT]",
                   help="be a worker host only: run Locust workers for the master there until --worker-for passes")  # fmt: skip
    g.add_argument("--worker-for", type=float, default=8 * 3600, help="--locust-worker: seconds to keep serving")
    g.add_argument("--worker-runs", type=int, default=1000, help="--locust-worker: most master runs to serve")
    g = p.add_argument_group("runs")
    g.add_argument("--repetitions", type=int, default=1, help="points per replica count (for the spread)")
    g.add_argument("--results", type=Path, help="results folder (reuse one to resume)")
    g.add_argument("--name", help="results/experiment/<name> (default <engine>-<client>-<time>)")
    g.add_argument("--redo", action="store_true", help="measure points again even if results.csv has them")
    args = p.parse_args(argv)
    args.engine = args.engine or (None if args.url else "local")
    if args.url and len(args.replicas) != 1:
        p.error("--url measures what is deployed: give its replica count, e.g. --replicas 4")
    if not args.url and args.engine == "openfaas" and max(args.replicas) > OPENFAAS_CE_MAX_REPLICAS:
        p.error(f"OpenFaaS CE runs at most {OPENFAAS_CE_MAX_REPLICAS} replicas per function: drop "
                f"{[n for n in args.replicas if n > OPENFAAS_CE_MAX_REPLICAS]} or use --engine knative/kubectl")  # fmt: skip
    if args.wait_max < args.wait_min or args.repetitions < 1 or min(args.replicas) < 1:
        p.error("need wait-max >= wait-min, repetitions >= 1, replicas >= 1")
    if args.locust_processes < 1:
        p.error("--locust-processes must be 1 or more")
    if args.locust_master and args.locust_worker:
        p.error("--locust-master and --locust-worker: one machine is one or the other (run both commands)")
    if args.locust_master and args.locust_workers < 1:
        p.error("--locust-master needs --locust-workers N (the worker processes that will connect)")
    if args.locust_master and args.locust_processes > 1:
        p.error("Locust cannot fork --processes under --master: start workers here too with --locust-worker")
    if args.paths == "course":
        try:
            [path_for(f, "course") for f in functions_of(args)]
        except ValueError as exc:
            p.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the local replicas and nginx
    if args.locust_worker:
        try:
            return run_workers(args)
        except KeyboardInterrupt:
            return 130
    experiment = Experiment(args)
    console = experiment.console
    try:
        folder = experiment.run()
    except KeyboardInterrupt:
        console.log("interrupted: rerun with --results <the folder above> to resume")
        return 130
    except (RuntimeError, TimeoutError, ValueError) as exc:
        console.log(f"[red]experiment failed: {exc}[/]")
        return 1
    console.log(f"done: {folder / 'table.md'}")
    console.print((folder / "table.md").read_text() if (folder / "table.md").exists() else "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
