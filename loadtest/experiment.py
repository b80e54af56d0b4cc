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
"""

from __future__ import annotations

import argparse
import functools
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
from cloudpose.deployment import CPU_CORES, FUNCTION_NAMES, NAMESPACE, OPENFAAS_CE_MAX_REPLICAS, REPLICA_COUNTS
from rich.console import Console
from rich.live import Live
from rich.table import Table

from . import report
from .engines import Engine
from .payload import DATA, PATHS, body, load_bodies, server_inference_ms

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
SHAPES = Path(__file__).with_name("shapes.py")
ENGINES = ("local", "swarm", "kubectl", "knative", "openfaas")
console = Console(width=None if sys.stdout.isatty() else 150)


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


def steps_from_buckets(buckets: list[dict]) -> list[Step]:
    """Merge the locustfile's (users, ramp|hold) buckets into one Step per user count."""
    steps: dict[int, Step] = {}
    for b in sorted(buckets, key=lambda b: (b["users"], b["phase"] != "ramp")):  # ramp first, hold overrides
        s = steps.setdefault(b["users"], Step(b["users"]))
        s.requests += b["requests"]
        s.failures += b["failures"]
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


# --- Locust --------------------------------------------------------------------------------------------------


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


class Display:
    """What runs now, live (rich), plus one log line per finished step and point."""

    def __init__(self) -> None:
        self.state: dict[str, str] = {}
        self.live = Live(get_renderable=self.render, console=console, refresh_per_second=2, transient=True)

    def render(self) -> Table:
        t = Table.grid(padding=(0, 2))
        for k, v in self.state.items():
            t.add_row(f"[bold]{k}[/]", v)
        return t

    def set(self, **items: str) -> None:
        self.state.update(items)


def locust_target_args(engine: Engine, paths: str) -> list[str]:
    """Where Locust sends each function's requests: the engine's own endpoints, else base URL + --paths."""
    args = ["--host", engine.base_url, "--paths", paths]
    for function, opt in (("pose-json", "json"), ("pose-annotate", "annotate")):
        if hasattr(engine, "endpoint"):
            url, headers = engine.endpoint(function)
            args += [f"--{opt}-path", url] + ([f"--{opt}-host-header", headers["Host"]] if "Host" in headers else [])
    return args


def run_locust(name: str, folder: Path, args: list[str], bound: float, display: Display) -> list[Step]:
    """One headless Locust run; its CSVs, per-step JSON and log go to `folder`/`name`*. Killed after `bound` s."""
    folder.mkdir(parents=True, exist_ok=True)
    steps_out, live_out = folder / f"{name}_steps.json", folder / f"{name}_live.json"
    for f in (steps_out, live_out):
        f.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "locust", "--headless", "--only-summary", "--csv", str(folder / name), "--csv-full-history",
           "--steps-out", str(steps_out), "--live-out", str(live_out), "--loglevel", "WARNING", *args]  # fmt: skip
    (folder / f"{name}_command.txt").write_text(" ".join(cmd) + "\n")
    deadline = time.monotonic() + bound
    with (folder / f"{name}.log").open("w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
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
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if not steps_out.exists():
        raise RuntimeError(
            f"locust {name} exited {proc.returncode} without results:\n{(folder / f'{name}.log').read_text()[-3000:]}"
        )
    return steps_from_buckets(json.loads(steps_out.read_text()))


# --- engines -------------------------------------------------------------------------------------------------


class FixedTarget:
    """--url: a deployment someone else runs and scales; the runner only measures it."""

    def __init__(self, url: str, replicas: int, paths: str = "gateway", knative_domain: str | None = None) -> None:
        self.base_url, self.replicas, self.paths, self.knative_domain = url.rstrip("/"), replicas, paths, knative_domain

    def endpoint(self, function: str) -> tuple[str, dict[str, str]]:
        """`--paths` under the URL; through Kourier (--engine knative) with the Service's host name."""
        path = PATHS[self.paths][FUNCTION_NAMES.index(function)]
        host = {"Host": f"{function}.{NAMESPACE}.{self.knative_domain}"} if self.knative_domain else {}
        return self.base_url + path, host

    def scale(self, replicas: int) -> None:
        if replicas != self.replicas:
            raise ValueError(f"--url {self.base_url} is not scaled by the runner: it runs {self.replicas} replica(s)")

    def wait_ready(self, timeout: float = 300) -> None:
        pass

    def replica_names(self) -> list[str]:
        return []


def make_engine(args: argparse.Namespace) -> Engine:
    functions = ("pose-json", "pose-annotate") if args.annotate_weight > 0 else ("pose-json",)
    if args.url:
        return FixedTarget(
            args.url, args.replicas[0], args.paths, args.knative_domain if args.engine == "knative" else None
        )
    if args.engine == "local":
        from .engines.local import LocalEngine

        return LocalEngine(functions, port=args.gateway_port, limits=not args.no_limits).start()
    if args.engine == "swarm":
        from .engines.swarm import SWARM_PORT, SwarmEngine

        engine = SwarmEngine(port=args.gateway_port or SWARM_PORT, overcommit=args.overcommit)
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


_bodies = functools.lru_cache(maxsize=1)(load_bodies)  # warm-up and probes reuse one read of the folder


def _pose_json_endpoint(engine: Engine, args: argparse.Namespace) -> tuple[str, dict[str, str]]:
    if hasattr(engine, "endpoint"):
        return engine.endpoint("pose-json")
    return engine.base_url + PATHS[args.paths][0], {}


def warm_up(engine: Engine, args: argparse.Namespace, replicas: int) -> dict[str, int]:
    """`--warmup` requests per replica, as many at once as replicas: every replica runs its first inferences
    (slow: lazy initialisation) before anything is measured. Returns who answered."""
    bodies = _bodies(Path(args.images))
    url, headers = _pose_json_endpoint(engine, args)
    served: dict[str, int] = {}

    def post(i: int) -> None:
        r = httpx.post(url, content=body(bodies[i % len(bodies)], f"warmup-{i}"),
                       headers={"Content-Type": "application/json", **headers}, timeout=120)  # fmt: skip
        r.raise_for_status()
        name = r.headers.get("X-Served-By", "?")
        served[name] = served.get(name, 0) + 1

    with ThreadPoolExecutor(max_workers=replicas) as pool:
        list(pool.map(post, range(args.warmup * replicas)))
    return served


def probe_inference(engine: Engine, args: argparse.Namespace, replicas: int, per_replica: int = 4) -> float:
    """The servers' median model time (Server-Timing) over requests sent one at a time: the host's speed
    when nothing else runs. A point whose model time under load is well above it ran on a slower host
    (another tenant, a busy hypervisor) and says nothing about the method: the table flags it."""
    bodies = _bodies(Path(args.images))
    url, headers = _pose_json_endpoint(engine, args)
    times = []
    with httpx.Client(timeout=60, headers={"Content-Type": "application/json", **headers}) as client:
        for i in range(per_replica * replicas):
            r = client.post(url, content=body(bodies[i % len(bodies)], f"probe-{i}"))
            r.raise_for_status()
            ms = server_inference_ms(r.headers.get("Server-Timing"))
            if ms is not None:
                times.append(ms)
    return statistics.median(times) if times else math.nan


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
            "inference_ms": step.inference_ms, "served_by": step.served_by, "reasons": step.reasons, "started": datetime.now().isoformat(timespec="seconds"),
            "raw": str(raw)}  # fmt: skip


def run_point(engine: Engine, args, point: tuple, plan: Plan, store: Store, display: Display, cool_first: bool) -> dict:
    """One search (ramp, confirms) at the engine's current scale; its steps go to steps.csv as they finish."""
    _, client, replicas, repetition = point
    raw = store.folder / "raw" / client / f"replicas-{replicas}" / f"rep-{repetition}"
    shutil.rmtree(raw, ignore_errors=True)
    common = [
        *locust_target_args(engine, args.paths), "--images", str(args.images), "--request-timeout", str(plan.timeout),
        "--wait-min", str(args.wait_min), "--wait-max", str(args.wait_max), "--annotate-weight", str(args.annotate_weight),
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
    idle_ms = probe_inference(engine, args, replicas)
    console.log(f"  probe: server inference {idle_ms:.1f} ms with one request at a time")

    def locust(name: str, extra: list[str], seconds: float) -> list[Step]:
        if runs[0]:
            cool_down()
        runs[0] += 1
        return run_locust(name, raw, [*extra, *common], seconds + overhead, display)

    def record(phase: str, step: Step, spawn_rate: float, name: str) -> None:
        row = step_row(point, phase, step, spawn_rate, (raw / name).relative_to(store.folder))
        report.write_csv(store.steps, report.STEP_FIELDS, [row], append=True)
        reason = f"  [red]{max(step.reasons, key=step.reasons.get)}[/]" if step.reasons else ""
        console.log(f"  {phase} {step.users:>4} users: {step.requests:>5} requests, {step.failures} failed, "
                    f"avg {step.avg_ms:6.0f} ms, p95 {step.p95_ms:6.0f} ms, {step.rps:5.1f} req/s, "
                    f"server inference {step.inference_ms:4.1f} ms{reason}")  # fmt: skip

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
    names = engine.replica_names()
    serving = len([n for n in names if result.served_by.get(n)]) if names else len(result.served_by)
    return {
        **dict(zip(report.KEY, point)), "max_users": search.max_users if search.max_users is not None else "",
        "confirmed": search.max_users is not None, "capped": search.capped, "first_failure_users": search.first_failure or "",
        "requests": result.requests, "failures": result.failures, "avg_ms": result.avg_ms, "p95_ms": result.p95_ms,
        "rps": result.rps, "inference_ms": result.inference_ms, "served_by": result.served_by,
        "idle_inference_ms": idle_ms, "host_slowdown": slowdown, "replicas_serving": serving, "start_users": plan.start,
        "step_users": plan.step, "hold_s": plan.hold, "confirm_hold_s": plan.confirm_hold, "timeout_s": plan.timeout,
        "wait_min_s": args.wait_min, "wait_max_s": args.wait_max, "annotate_weight": args.annotate_weight,
        "finished": datetime.now().isoformat(timespec="seconds"),
    }  # fmt: skip


def run(args: argparse.Namespace) -> Path:
    engine_name = args.engine or "url"
    folder = args.results or ROOT / "results" / "experiment" / (
        args.name or f"{engine_name}-{args.client_label}-{datetime.now():%Y%m%d-%H%M%S}"
    )
    folder.mkdir(parents=True, exist_ok=True)
    store = Store(folder)
    meta = folder / "meta.json"
    if not meta.exists():
        meta.write_text(
            json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, indent=1) + "\n"
        )
    points = [(engine_name, args.client_label, n, k) for n in args.replicas for k in range(1, args.repetitions + 1)]
    todo = [p for p in points if args.redo or not store.done(p)]
    console.log(f"results: {folder}  ({len(points) - len(todo)} of {len(points)} points already done)")
    if not todo:
        report.write_report([folder], folder)
        return folder
    display = Display()
    engine = make_engine(args)
    try:
        with display.live:
            scaled, first = None, True
            for point in todo:
                replicas = point[2]
                display.set(
                    point=f"{replicas} replica(s), repetition {point[3]}/{args.repetitions}, client {args.client_label}, engine {engine_name}"
                )
                if scaled != replicas:
                    display.set(phase=f"scaling to {replicas}", live="")
                    t0 = time.monotonic()
                    engine.scale(replicas)
                    engine.wait_ready(args.ready_timeout)
                    served = warm_up(engine, args, replicas)
                    console.log(
                        f"{replicas} replica(s) ready in {time.monotonic() - t0:.0f} s; warm-up served by {served}"
                    )
                    scaled = replicas
                store.forget(point)
                console.log(f"[bold]point: {replicas} replica(s), repetition {point[3]}[/]")
                result = run_point(engine, args, point, plan_for(args, replicas), store, display, cool_first=not first)
                first = False
                report.write_csv(store.results, report.RESULT_FIELDS, [result], append=True)
                report.write_report([folder], folder)
                console.log(f"[bold]{replicas} replica(s): max users {result['max_users'] or 'unconfirmed'}"
                            f" (avg {result['avg_ms']:.0f} ms, served by {result['replicas_serving']} replica(s))[/]")  # fmt: skip
    finally:
        if hasattr(engine, "stop"):
            engine.stop()
    return folder


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
        "--paths", choices=sorted(PATHS), default="gateway", help="/function/<name> or the course's /api/... paths"
    )
    g.add_argument("--annotate-weight", type=float, default=0.0, help="share of requests to pose-annotate")
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
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the local replicas and nginx
    try:
        folder = run(args)
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
