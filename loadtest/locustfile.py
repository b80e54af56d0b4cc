"""Locust users for CloudPose: each posts the load photos (base64 JSON, a fresh UUID per request) and checks every answer.

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8088                 # web UI on :8089
    locust -f loadtest/locustfile.py --headless -u 20 -r 1 -t 60s --host URL      # headless
    locust -f loadtest/locustfile.py,loadtest/shapes.py --headless --host URL     # stepped users (shapes.py)
    locust -f loadtest/locustfile.py --headless --processes 4 ...                 # 4 worker processes + a master

A request counts as a failure unless it is a 200 whose body is the right answer to *that* request, as the
function's entry in payload.CHECKS says (pose-json: the same id, the schema's keys, count == len(boxes) ==
len(keypoints), 17 × [x, y, p] per person; the annotate functions: a base64 JPEG, by its magic bytes, not a
full decode, to keep the load generator cheap). `--function` picks the function (pose-json by default;
detect-json once it is deployed). A request slower than --request-timeout fails too: "max users" in the
experiment is the most users whose every request is answered correctly within that time.

`--steps-out PATH` writes, when a test stops, per (target users, ramp|hold) bucket: requests, failures and
their reasons, average / p50 / p95 response time, throughput, and who answered (the X-Served-By header) —
exact numbers the experiment runner reads (loadtest/experiment.py) — plus every Locust process's own CPU
samples (Locust's usage monitor, every 10 s) and its "CPU usage above 90%" warnings, with their times. A
request belongs to the bucket of the target user count when it *started*; "hold" means every target user
was running then. `--live-out PATH` rewrites a small JSON with the last 5 seconds' numbers every second.

Distributed (`--processes N`, or `--master` with `--worker`s on other machines): the workers run the users
and send what they record to the master once a second (a custom message), and the master broadcasts the
run's target user count, so buckets are the whole test's, keyed as in a single process. Only the master
writes the files. Each worker reads the photos from its own `--images` (the master's path may not exist
on a worker's machine); every other option comes from the master.
"""

from __future__ import annotations

import json
import math
import os
import random
import socket
import sys
import time
import uuid
from collections import Counter, deque
from pathlib import Path
from typing import ClassVar

import gevent
from locust import FastHttpUser, between, events, task
from locust.runners import STATE_SPAWNING, MasterRunner, WorkerRunner

try:
    from loadtest.payload import (
        ANNOTATE_OF, CHECKS, DATA, PATH_STYLES, body, load_bodies, path_for, percentile, server_inference_ms,
    )  # fmt: skip
except ImportError:  # locust -f loadtest/locustfile.py from a clone where the package is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from loadtest.payload import (
        ANNOTATE_OF, CHECKS, DATA, PATH_STYLES, body, load_bodies, path_for, percentile, server_inference_ms,
    )  # fmt: skip

try:
    from orjson import loads
except ImportError:  # a client machine with only locust installed
    from json import loads

RECORDS_MESSAGE, TARGET_MESSAGE = "cloudpose_records", "cloudpose_target"


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    g = parser.add_argument_group("CloudPose")
    g.add_argument("--images", env_var="LOCUST_IMAGES", default=str(DATA / "load-128"), help="folder of photos to post")
    g.add_argument(
        "--function",
        env_var="LOCUST_FUNCTION",
        choices=sorted(CHECKS),
        default="pose-json",
        help="the function to load (its answers are checked as payload.CHECKS says)",
    )
    g.add_argument(
        "--paths",
        env_var="LOCUST_PATHS",
        choices=PATH_STYLES,
        default="gateway",
        help="gateway: /function/<name>; course: /api/pose_estimation[_annotation]",
    )
    g.add_argument(
        "--json-path", env_var="LOCUST_JSON_PATH", default="", help="--function's path or full URL (overrides --paths)"
    )
    g.add_argument(
        "--annotate-path", env_var="LOCUST_ANNOTATE_PATH", default="", help="its annotate sibling's path or full URL"
    )
    g.add_argument(
        "--json-host-header",
        env_var="LOCUST_JSON_HOST_HEADER",
        default="",
        help="Host header for --function (Knative via Kourier)",
    )
    g.add_argument(
        "--annotate-host-header",
        env_var="LOCUST_ANNOTATE_HOST_HEADER",
        default="",
        help="Host header for the annotate sibling",
    )
    g.add_argument(
        "--annotate-weight",
        env_var="LOCUST_ANNOTATE_WEIGHT",
        type=float,
        default=0.0,
        help="share of requests sent to --function's annotate sibling (pose-annotate for pose-json), 0..1",
    )
    g.add_argument(
        "--request-timeout",
        env_var="LOCUST_REQUEST_TIMEOUT",
        type=float,
        default=10.0,
        help="seconds; a slower answer is a failure",
    )
    # 1-2 s: a person looks at the result before sending the next photo; random, so users do not march in step.
    g.add_argument(
        "--wait-min", env_var="LOCUST_WAIT_MIN", type=float, default=1.0, help="think time between requests, s"
    )
    g.add_argument("--wait-max", env_var="LOCUST_WAIT_MAX", type=float, default=2.0)
    g.add_argument(
        "--steps-out", env_var="LOCUST_STEPS_OUT", default="", help="write per-step statistics (JSON) here at test stop"
    )
    g.add_argument(
        "--live-out", env_var="LOCUST_LIVE_OUT", default="", help="rewrite live numbers (JSON) here every second"
    )


class Recorder:
    """Per-bucket exact statistics and X-Served-By counts, from Locust's request event; and the client's CPU."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.buckets: dict[tuple[int, str], dict] = {}
        self.recent: deque[tuple[float, float, bool]] = deque()  # (end time, ms, failed), last 5 s
        self.usage: list[dict] = []  # {"t", "process", "cpu"}: Locust's own CPU figure of each process
        self.cpu_warnings: list[dict] = []  # the same, when Locust found it above 90 %

    def add(
        self, users: int, phase: str, start: float, ms: float, error: str | None, served_by: str | None,
        inference_ms: float | None = None,
    ) -> None:  # fmt: skip
        b = self.buckets.setdefault(
            (users, phase),
            {"times": [], "failures": 0, "reasons": Counter(), "served_by": Counter(), "first": start, "last": start,
             "inference": []},
        )  # fmt: skip
        if inference_ms is not None:
            b["inference"].append(inference_ms)
        b["times"].append(ms)
        b["first"], b["last"] = min(b["first"], start), max(b["last"], start)
        if error:
            b["failures"] += 1
            b["reasons"][error[:120]] += 1
        elif served_by:
            b["served_by"][served_by] += 1
        now = time.time()
        self.recent.append((now, ms, bool(error)))
        while self.recent and self.recent[0][0] < now - 5:
            self.recent.popleft()

    def summary(self) -> list[dict]:
        """One dict per bucket. Requests/s over the bucket's window: from its first request's start to the next
        bucket's (the last bucket: to its last request's start; none if that is under a second). `first` and
        `end` (epoch seconds) are that window, for matching the client's CPU samples to steps."""
        order = sorted(self.buckets, key=lambda k: self.buckets[k]["first"])
        out = []
        for i, k in enumerate(order):
            b = self.buckets[k]
            times, n = sorted(b["times"]), len(b["times"])
            end = self.buckets[order[i + 1]]["first"] if i + 1 < len(order) else b["last"]
            span = end - b["first"]
            rps = (n if i + 1 < len(order) else n - 1) / span if span >= 1 else math.nan
            out.append({
                "users": k[0], "phase": k[1], "requests": n, "failures": b["failures"],
                "avg_ms": sum(times) / n, "p50_ms": percentile(times, 0.5), "p95_ms": percentile(times, 0.95),
                "max_ms": times[-1], "rps": rps, "span_s": span, "first": b["first"], "end": end,
                "inference_ms": percentile(sorted(b["inference"]), 0.5) if b["inference"] else math.nan,
                "served_by": dict(b["served_by"]), "reasons": dict(b["reasons"].most_common(5)),
            })  # fmt: skip
        return sorted(out, key=lambda b: (b["users"], b["phase"]))

    def report(self) -> dict:
        """What --steps-out holds."""
        return {"buckets": self.summary(), "usage": self.usage, "cpu_warnings": self.cpu_warnings}

    def live(self, users: int) -> dict:
        times = [ms for _, ms, _ in self.recent]
        return {"users": users, "rps": len(times) / 5, "avg_ms": sum(times) / len(times) if times else 0.0,
                "failures_5s": sum(f for *_, f in self.recent),
                "requests": sum(len(b["times"]) for b in self.buckets.values()),
                "failures": sum(b["failures"] for b in self.buckets.values())}  # fmt: skip


class Session:
    """This Locust process's part of a run. Standalone or master: the Recorder and the files. Worker: an outbox
    sent to the master every second (and at the stop, before the worker reports it has stopped, so the master
    has every request before its own test_stop). One per process, because Locust's event hooks are."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.outbox: dict[str, list] = {"records": [], "usage": [], "cpu_warnings": []}
        # A worker: the whole test's (target users, ramp|hold), as the master last said. Not the worker's own: its
        # target is its share, and the master hands it users step by step, so it would always look "hold".
        self.target: tuple[int, str] | None = None
        self.own_images = ""  # a worker: its own --images, before the master's options replace it
        self.greenlets: list[gevent.Greenlet] = []
        self.runner = None  # set at init: Locust creates the runner before it fires `init`

    @property
    def role(self) -> str:
        runner = self.runner
        return "master" if isinstance(runner, MasterRunner) else "worker" if isinstance(runner, WorkerRunner) else "local"

    def record(self, *values) -> None:
        if self.role == "worker":
            self.outbox["records"].append(list(values))
        else:
            self.recorder.add(*values)

    def sample(self, kind: str, cpu: float) -> None:
        """A CPU figure from Locust's usage monitor (kind "usage") or its 90 % warning ("cpu_warnings")."""
        entry = {"t": time.time(), "process": f"{self.role}@{socket.gethostname()}:{os.getpid()}", "cpu": cpu}
        (self.outbox[kind] if self.role == "worker" else getattr(self.recorder, kind)).append(entry)

    def flush(self) -> None:
        if any(self.outbox.values()):
            box, self.outbox = self.outbox, {"records": [], "usage": [], "cpu_warnings": []}
            self.runner.send_message(RECORDS_MESSAGE, box)

    def receive(self, box: dict) -> None:
        """The master's side of flush()."""
        for values in box["records"]:
            self.recorder.add(*values)
        self.recorder.usage += box["usage"]
        self.recorder.cpu_warnings += box["cpu_warnings"]

    def every(self, seconds: float, action) -> None:
        def loop() -> None:
            while True:
                action()
                gevent.sleep(seconds)

        self.greenlets.append(gevent.spawn(loop))

    def stop_greenlets(self) -> None:
        while self.greenlets:
            self.greenlets.pop().kill(block=False)


SESSION = Session()


def _write(path: str, data: object) -> None:
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)  # readers never see half a file


@events.init.add_listener
def _init(environment, **_) -> None:
    runner = SESSION.runner = environment.runner
    if isinstance(runner, MasterRunner):
        runner.register_message(RECORDS_MESSAGE, lambda environment, msg, **_: SESSION.receive(msg.data))
    elif isinstance(runner, WorkerRunner):

        def on_target(environment, msg, **_) -> None:
            SESSION.target = (int(msg.data[0]), str(msg.data[1]))

        runner.register_message(TARGET_MESSAGE, on_target)
        opts = environment.parsed_options
        SESSION.own_images = opts.images if opts else ""


def configure(environment) -> None:
    """PoseUser from the options. At each test start, not at init: a worker has the master's options only then."""
    opts = environment.parsed_options
    if opts is None or SESSION.role == "master":  # the master runs no users
        return
    PoseUser.network_timeout = PoseUser.connection_timeout = opts.request_timeout
    PoseUser.wait_time = between(opts.wait_min, max(opts.wait_min, opts.wait_max))
    images = SESSION.own_images if SESSION.own_images and Path(SESSION.own_images).is_dir() else opts.images
    if PoseUser.images != images:
        PoseUser.bodies, PoseUser.images = load_bodies(Path(images)), images
    main, annotate = opts.function, ANNOTATE_OF.get(opts.function)
    PoseUser.function, PoseUser.annotate = main, annotate
    PoseUser.targets = {main: (opts.json_path or path_for(main, opts.paths),
                               {"Host": opts.json_host_header} if opts.json_host_header else {})}  # fmt: skip
    if annotate:
        PoseUser.targets[annotate] = (opts.annotate_path or path_for(annotate, opts.paths),
                                      {"Host": opts.annotate_host_header} if opts.annotate_host_header else {})  # fmt: skip
    PoseUser.annotate_weight = opts.annotate_weight if annotate else 0.0


@events.test_start.add_listener
def _test_start(environment, **_) -> None:
    SESSION.recorder.reset()
    SESSION.stop_greenlets()
    SESSION.runner = runner = environment.runner
    configure(environment)
    role, opts = SESSION.role, environment.parsed_options
    if role == "worker":
        SESSION.every(1, SESSION.flush)
        return
    if role == "master":
        sent: list[int] = []

        def broadcast() -> None:  # the target changes at each step: tell the workers within 50 ms
            now = [runner.target_user_count, "ramp" if runner.state == STATE_SPAWNING else "hold"]
            if not sent or sent[-1] != now:
                sent.append(now)
                runner.send_message(TARGET_MESSAGE, now)

        SESSION.every(0.05, broadcast)
    if opts and opts.live_out:
        SESSION.every(1, lambda: _write(opts.live_out, SESSION.recorder.live(runner.user_count if runner else 0)))


@events.request.add_listener
def _record(context: dict, start_time: float, response_time: float, exception=None, response=None, **_) -> None:
    if "users" not in context:
        return
    headers = response.headers if response is not None and response.headers else {}
    SESSION.record(
        context["users"], context["phase"], start_time, response_time,
        str(exception) if exception else None, headers.get("X-Served-By"),
        server_inference_ms(headers.get("Server-Timing")),
    )  # fmt: skip


@events.usage_monitor.add_listener
def _usage(environment, cpu_usage: float, **_) -> None:
    SESSION.sample("usage", cpu_usage)


@events.cpu_warning.add_listener
def _cpu_warning(environment, cpu_usage: float, **_) -> None:
    SESSION.sample("cpu_warnings", cpu_usage)


@events.test_stop.add_listener
def _test_stop(environment, **_) -> None:
    SESSION.stop_greenlets()
    if SESSION.role == "worker":
        SESSION.flush()  # before "client_stopped": the master stops only after that
        return
    opts = environment.parsed_options
    if opts and opts.steps_out:
        _write(opts.steps_out, SESSION.recorder.report())


@events.reset_stats.add_listener
def _reset() -> None:
    SESSION.recorder.reset()


def transport_error(error: BaseException | None, timeout: float) -> str:
    """A short reason for a request that got no answer (geventhttpclient wraps the cause in RetriesExceeded)."""
    text = str(error).split("original=")[-1]
    return f"timeout (> {timeout:g} s)" if "timed out" in text else f"{type(error).__name__}: {text}"[:120]


class PoseUser(FastHttpUser):
    """One person using the service: post a photo, check the answer, think 1-2 s, repeat (photos in turn)."""

    wait_time = between(1.0, 2.0)
    network_timeout = connection_timeout = 10.0
    bodies: ClassVar[list[bytes]] = []
    images: ClassVar[str] = ""
    function: ClassVar[str] = "pose-json"
    annotate: ClassVar[str | None] = "pose-annotate"
    targets: ClassVar[dict[str, tuple[str, dict[str, str]]]] = {
        "pose-json": (path_for("pose-json"), {}),
        "pose-annotate": (path_for("pose-annotate"), {}),
    }
    annotate_weight = 0.0

    def on_start(self) -> None:
        if not self.bodies:
            type(self).bodies = load_bodies(DATA / "load-128")
        self.next_image = random.randrange(len(self.bodies))  # users start at different photos

    @task
    def post_image(self) -> None:
        use_annotate = self.annotate and self.annotate_weight > 0 and random.random() < self.annotate_weight
        function = self.annotate if use_annotate else self.function
        path, extra = self.targets[function]
        request_id = str(uuid.uuid4())
        image = self.bodies[self.next_image % len(self.bodies)]
        self.next_image += 1
        runner = self.environment.runner
        target = runner.target_user_count if runner else 0
        phase = "hold" if runner is None or runner.user_count >= target else "ramp"
        if isinstance(runner, WorkerRunner) and SESSION.target is not None:
            target, phase = SESSION.target
        headers = {"Content-Type": "application/json", **extra}
        context = {"users": target, "phase": phase}
        with self.client.post(path, data=body(image, request_id), headers=headers, name=function, catch_response=True,
                              context=context) as resp:  # fmt: skip
            if resp.status_code == 0 or resp.content is None:
                resp.failure(transport_error(resp.error, self.network_timeout))
                return
            try:
                answer = loads(resp.content)
            except ValueError:
                answer = None
            if resp.status_code != 200:
                error = answer.get("error") if isinstance(answer, dict) else None
                code = error.get("code") if isinstance(error, dict) else None
                resp.failure(f"HTTP {resp.status_code}" + (f" {code}" if code else ""))
                return
            if answer is None:
                resp.failure("answer is not JSON")
                return
            problem = CHECKS[function](answer, request_id)
            if problem:
                resp.failure(problem)
            else:
                resp.success()
