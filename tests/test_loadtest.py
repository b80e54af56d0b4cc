"""The experiment: its search logic, report, engine commands, and a short real run on the local engine.

Nothing here imports Locust into the test process (Locust monkey-patches the standard library with gevent
on import): Locust runs in subprocesses, as the runner runs it.
"""

from __future__ import annotations

import http.server
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from loadtest import cgroup, clientcpu, report
from loadtest.engines import Engine
from loadtest.engines.knative import KnativeEngine
from loadtest.engines.kubectl import KubectlEngine
from loadtest.engines.openfaas import OpenFaasEngine
from loadtest.experiment import (
    LOCUSTFILE,
    Display,
    LocustSetup,
    Step,
    find_max_users,
    host_slowdown,
    make_engine,
    parse_args,
    plan_for,
    run_locust,
    steps_from_buckets,
)
from loadtest.nginx import render_config, render_upstreams
from loadtest.payload import (
    CHECKS,
    path_for,
    percentile,
    server_inference_ms,
)

from .conftest import DATA, LOAD_128, ROOT

# --- the search, with a fake system that fails above a known number of users ----------------------------------


def fake_system(ramp_limit: int, confirm_limit: int, start: int = 5, step: int = 5, cap: int = 100):
    """A ramp that fails at the first step above `ramp_limit`; confirms that fail above `confirm_limit`."""
    confirmed: list[int] = []

    def ramp() -> list[Step]:
        steps = []
        for users in range(start, cap + 1, step):
            steps.append(Step(users, requests=10 * users, failures=int(users > ramp_limit)))
            if users > ramp_limit:
                break
        return steps

    def confirm(users: int) -> Step:
        confirmed.append(users)
        return Step(users, requests=10 * users, failures=int(users > confirm_limit), avg_ms=float(users))

    return ramp, confirm, confirmed


def test_search_confirms_one_below_the_first_failing_step():
    ramp, confirm, confirmed = fake_system(ramp_limit=23, confirm_limit=30)
    search = find_max_users(ramp, confirm, down_step=2, max_confirms=4)
    assert [s.users for s in search.steps] == [5, 10, 15, 20, 25]
    assert search.first_failure == 25 and confirmed == [24] and search.max_users == 24
    assert not search.capped and search.result.users == 24


def test_search_steps_down_while_confirms_fail():
    ramp, confirm, confirmed = fake_system(ramp_limit=23, confirm_limit=19)
    search = find_max_users(ramp, confirm, down_step=2, max_confirms=4)
    assert confirmed == [24, 22, 20, 18] and search.max_users == 18


def test_search_gives_up_after_max_confirms_or_at_zero_users():
    ramp, confirm, confirmed = fake_system(ramp_limit=23, confirm_limit=3)
    search = find_max_users(ramp, confirm, down_step=2, max_confirms=3)
    assert confirmed == [24, 22, 20] and search.max_users is None and search.result is None
    ramp, confirm, confirmed = fake_system(ramp_limit=0, confirm_limit=0, start=2, step=2)
    search = find_max_users(ramp, confirm, down_step=1, max_confirms=10)
    assert search.first_failure == 2 and confirmed == [1] and search.max_users is None


def test_search_at_the_cap_confirms_the_last_step():
    ramp, confirm, confirmed = fake_system(ramp_limit=1000, confirm_limit=1000, cap=40)
    search = find_max_users(ramp, confirm, down_step=5, max_confirms=4)
    assert search.capped and search.first_failure is None and confirmed == [40] and search.max_users == 40


def test_steps_merge_ramp_and_hold_buckets():
    bucket = {"avg_ms": 0.0, "p50_ms": 0.0, "p95_ms": 0.0, "rps": 0.0, "reasons": {}}
    steps = steps_from_buckets([
        {**bucket, "users": 4, "phase": "hold", "requests": 30, "failures": 1, "avg_ms": 200.0, "rps": 5.0,
         "served_by": {"a": 15, "b": 14}, "reasons": {"timeout": 1}},
        {**bucket, "users": 4, "phase": "ramp", "requests": 5, "failures": 0, "avg_ms": 90.0, "served_by": {"a": 5}},
        {**bucket, "users": 2, "phase": "ramp", "requests": 3, "failures": 0, "avg_ms": 80.0, "served_by": {"b": 3}},
    ])  # fmt: skip
    assert [s.users for s in steps] == [2, 4]
    two, four = steps
    assert (two.requests, two.hold_requests, two.avg_ms) == (3, 0, 80.0)  # never held: the ramp's numbers
    assert (four.requests, four.failures, four.hold_requests, four.avg_ms, four.rps) == (35, 1, 30, 200.0, 5.0)
    assert four.served_by == {"a": 20, "b": 14} and four.reasons == {"timeout": 1}


def test_search_steps_down_by_a_fraction_by_default():
    ramp, confirm, confirmed = fake_system(ramp_limit=175, confirm_limit=170, start=20, step=20, cap=400)
    search = find_max_users(ramp, confirm, down_step=0, max_confirms=4)
    assert search.first_failure == 180 and confirmed == [179, 171, 164] and search.max_users == 164  # 4 % each


def test_plan_scales_per_replica():
    args = parse_args(
        ["--engine", "kubectl", "--start-users", "10", "--step-users", "5", "--spawn-rate", "2", "--timeout", "7"]
    )
    plan = plan_for(args, 8)
    assert (plan.start, plan.step, plan.spawn_rate, plan.down_step, plan.cooldown) == (80, 40, 16.0, 0, 7.0)
    plan = plan_for(parse_args(["--no-per-replica", "--step-users", "5", "--down-step", "2"]), 4)
    assert (plan.step, plan.down_step) == (5, 2)
    # one host: no more replicas count than fit its cores at 0.5 CPU each
    fit = int((os.cpu_count() or 1) / 0.5)
    assert plan_for(parse_args(["--step-users", "10"]), 64).step == 10 * min(64, fit)


def test_cli_refuses_what_cannot_be_measured(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--engine", "openfaas", "--replicas", "1,2,4,8"])
    assert "OpenFaaS CE runs at most 5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--url", "http://10.0.0.1:31112", "--replicas", "1,2"])
    args = parse_args(
        ["--url", "http://10.0.0.1:31080/", "--replicas", "4", "--engine", "knative", "--paths", "course"]
    )
    target = make_engine(args)
    assert target.endpoint("pose-json") == (
        "http://10.0.0.1:31080/api/pose_estimation",
        {"Host": "pose-json.cloudpose.cloudpose.test"},
    )
    with pytest.raises(ValueError, match="not scaled by the runner"):
        target.scale(8)
    assert parse_args([]).engine == "local" and parse_args(["--url", "http://x", "--replicas", "2"]).engine is None


# --- what users send and check -------------------------------------------------------------------------------


def answer(n: int = 1, request_id: str = "r1") -> dict:
    return {"id": request_id, "count": n, "boxes": [{"x": 1, "y": 2, "width": 3, "height": 4, "probability": 0.9}] * n,
            "keypoints": [[[1.0, 2.0, 0.5]] * 17] * n, "speed_preprocess": 1, "speed_inference": 2, "speed_postprocess": 3}  # fmt: skip


def test_pose_json_checks():
    check_json = CHECKS["pose-json"]
    assert check_json(answer(2), "r1") is None and check_json(answer(0), "r1") is None
    assert check_json(answer(1), "other") == "wrong id"
    assert check_json({**answer(2), "count": 3}, "r1").startswith("count")
    assert check_json({**answer(1), "keypoints": [[[1.0, 2.0, 0.5]] * 16]}, "r1").startswith("keypoints")
    assert check_json({k: v for k, v in answer().items() if k != "boxes"}, "r1").startswith("boxes")
    assert check_json([], "r1") is not None


def test_annotate_checks():
    import base64

    jpeg = base64.b64encode(b"\xff\xd8\xff\xe0" + bytes(200)).decode()
    for check_annotate in (CHECKS["pose-annotate"], CHECKS["detect-annotate"]):
        assert check_annotate({"id": "a", "image": jpeg}, "a") is None
        assert check_annotate({"id": "a", "image": base64.b64encode(b"\x89PNG" + bytes(200)).decode()}, "a") is not None
        assert check_annotate({"id": "b", "image": jpeg}, "a") == "wrong id"
        assert check_annotate({"id": "a", "image": "not base64!" * 20}, "a") is not None


def detect_answer(request_id: str = "r1", **changes) -> dict:
    obj = {"label": "person", "accuracy": 0.91, "rectangle": {"height": 120, "left": 10, "top": 4, "width": 50}}
    return {"id": request_id, "objects": [{**obj, **changes}], "speed_preprocess": 1.0, "speed_inference": 20.0,
            "speed_postprocess": 0.5}  # fmt: skip


def test_answers_are_checked_per_function_against_its_schema():
    """Every function has an entry, made from its response model (one contract: the task's schema.py)."""
    from cloudpose.deployment import FUNCTION_NAMES

    assert set(CHECKS) == set(FUNCTION_NAMES)
    check_detect_json = CHECKS["detect-json"]
    assert check_detect_json(detect_answer(), "r1") is None
    assert check_detect_json({**detect_answer(), "objects": []}, "r1") is None
    assert check_detect_json(detect_answer("other"), "r1") == "wrong id"
    assert "accuracy" in check_detect_json(detect_answer(accuracy=1.5), "r1")
    assert check_detect_json(detect_answer(label=None), "r1").startswith("objects.0.label")
    bad_rect = {"height": 1.5, "left": 0, "top": 0, "width": 2}
    assert check_detect_json(detect_answer(rectangle=bad_rect), "r1").startswith("objects.0.rectangle")
    assert check_detect_json({k: v for k, v in detect_answer().items() if k != "speed_inference"}, "r1").startswith(
        "speed_inference"
    )
    assert check_detect_json(answer(), "r1").startswith("objects")  # a pose answer is not a detection answer
    assert path_for("detect-json") == "/function/detect-json" and path_for("pose-annotate", "course").endswith(
        "annotation"
    )
    with pytest.raises(ValueError, match="no course path"):
        path_for("detect-json", "course")
    with pytest.raises(SystemExit):  # the runner refuses it before starting anything
        parse_args(["--function", "detect-json", "--paths", "course"])
    assert parse_args(["--function", "detect-json"]).function == "detect-json"


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.95) == 95.0 and percentile(values, 0.5) == 50.0 and math.isnan(percentile([], 0.5))


def test_step_shape_and_recorder_in_locust(tmp_path):
    """shapes.py and the locustfile's Recorder, in a subprocess (they import Locust)."""
    code = f"""
import sys; sys.path.insert(0, {str(ROOT)!r})
from loadtest.shapes import StepLoadShape
from loadtest.locustfile import Recorder
s = StepLoadShape()
assert [s.users_at(t) for t in (0, 29.9, 30, 61, 3000)] == [5, 5, 10, 15, None]
r = Recorder()
for i, ms in enumerate([100.0, 200.0, 300.0, 400.0]):
    r.add(4, "hold", 1000.0 + i, ms, None if i else "timeout", "replica-" + str(i % 2))
(b,) = r.summary()
assert (b["requests"], b["failures"], b["avg_ms"], b["p95_ms"], b["rps"]) == (4, 1, 250.0, 400.0, 1.0), b
assert b["served_by"] == {{"replica-1": 2, "replica-0": 1}} and b["reasons"] == {{"timeout": 1}}, b
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


# --- the client's CPU -----------------------------------------------------------------------------------------


def test_client_cpu_per_step_from_samples_and_locust_figures():
    """psutil samples (cumulative CPU seconds per pid) give each step's mean; Locust's own figures and warnings
    go to the step their 10-s interval falls in; each process's first Locust figure (its baseline, 0) is skipped."""
    samples = [(t, {1: 0.05 * t, 2: 0.2 * t if t <= 10 else 2 + 0.95 * (t - 10)}) for t in range(0, 21)]  # 2: busy
    usage = [{"t": 5.0, "process": "w", "cpu": 0.0}, {"t": 14.0, "process": "w", "cpu": 40.0},
             {"t": 25.0, "process": "w", "cpu": 97.0}]  # fmt: skip
    warnings = [{"t": 25.0, "process": "w", "cpu": 97.0}]
    first, second = clientcpu.per_step([(0.0, 10.0), (10.0, 20.0)], samples, usage, warnings)
    assert first.cpu_pct == pytest.approx(20.0) and first.processes == 2 and first.locust_cpu_pct == 40.0
    assert not first.limited and first.warnings == 0
    assert second.cpu_pct == pytest.approx(95.0) and second.locust_cpu_pct == 97.0 and second.warnings == 1
    assert second.limited
    assert clientcpu.ClientLoad(cpu_pct=50.0, warnings=1).limited  # Locust's warning alone flags a step
    assert not clientcpu.ClientLoad().limited  # nothing measured: not flagged


def test_process_sampler_measures_a_real_busy_process():
    busy = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.time() + 2.5\nwhile time.time() < end: pass"]
    )
    sampler = clientcpu.ProcessSampler(busy.pid, interval=0.25)
    sampler.start()
    busy.wait(10)
    samples = sampler.stop()
    cpu = clientcpu.window_cpu(samples, samples[0][0], samples[-1][0])
    assert cpu[busy.pid] > 20  # of one core, which other work here shares


def test_locust_cpu_warning_flags_the_step_end_to_end(tmp_path):
    """A real Locust run whose process is kept busy (an extra locustfile that spins): Locust's own monitor warns,
    the locustfile records the warning, the runner's psutil samples see the load too, and the step is flagged.
    The spinner also lowers Locust's threshold from 90 % to 20 %: on a host shared with other work a spinning
    process may not get 90 % of a core, and what is tested is the path from Locust's warning to the flag.
    Requests go to a closed port (they fail fast; only the client's CPU matters here)."""
    burn = tmp_path / "burn.py"
    burn.write_text("import gevent\nimport locust.runners\nfrom locust import events\n\n"
                    "locust.runners.CPU_WARNING_THRESHOLD = 20\n\n@events.test_start.add_listener\n"
                    "def _(**_):\n    def spin():\n        while True:\n            sum(range(20000))\n"
                    "            gevent.sleep(0)\n    gevent.spawn(spin)\n")  # fmt: skip
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    args = ["-f", f"{LOCUSTFILE},{burn}", "--host", f"http://127.0.0.1:{closed}", "-u", "1", "-r", "1", "-t", "23s",
            "--images", str(LOAD_128), "--wait-min", "1", "--wait-max", "1"]  # fmt: skip
    if not LOAD_128.is_dir():
        pytest.skip(f"no load images in {LOAD_128}: set CLOUDPOSE_DATA")
    from rich.console import Console

    steps = run_locust("burn", tmp_path, args, 90, Display(Console()), LocustSetup())
    (step,) = steps
    assert step.client.warnings >= 1 and step.client.locust_cpu_pct > 20, step.client
    assert step.client.cpu_pct > 20 and step.client.processes == 1 and step.client_limited, step.client
    assert "CPU usage above 20%" in (tmp_path / "burn.log").read_text()  # Locust's own warning, logged once


# --- report --------------------------------------------------------------------------------------------------


def fake_results(folder: Path, client: str, max_users: dict[int, list[int]]) -> None:
    """results.csv and steps.csv as the runner writes them: per replica count, one point per repetition."""
    results, steps = [], []
    for n, per_rep in max_users.items():
        for rep, m in enumerate(per_rep, 1):
            point = {"engine": "local", "client": client, "replicas": n, "repetition": rep}
            for users in range(5 * n, m + 5 * n + 1, 5 * n):
                failed = users > m
                steps.append({**point, "phase": "step", "users": users, "requests": 10 * users, "failures": int(failed),
                              "avg_ms": 100.0 + 1000 * users / (n * 50), "served_by": {f"r{i}": users for i in range(n)}})  # fmt: skip
            results.append({**point, "max_users": m, "confirmed": True, "capped": False, "first_failure_users": m + 1,
                            "requests": 500, "failures": 0, "avg_ms": 1000.0 + m, "p95_ms": 2000.0, "rps": 10.0 * n,
                            "served_by": {f"r{i}": 100 for i in range(n)}, "timeout_s": 10.0, "wait_min_s": 1.0,
                            "wait_max_s": 2.0, "confirm_hold_s": 60.0})  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    report.write_csv(folder / "results.csv", report.RESULT_FIELDS, results)
    report.write_csv(folder / "steps.csv", report.STEP_FIELDS, steps)


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_table_and_plot(tmp_path):
    fake_results(tmp_path, "master", {1: [40, 44], 2: [90, 86]})
    written = report.write_report([tmp_path], tmp_path)
    assert {p.name for p in written} == {"table.md", "response-time-local-master.png"}
    text = (tmp_path / "table.md").read_text()
    assert "| replicas | master: max users | master: avg response time (ms) |" in text
    assert "| 1 | 42 ± 3 | 1042 ± 3 |" in text and "| 2 | 88 ± 3 | 1088 ± 3 |" in text
    assert "r0 50% · r1 50%" in text  # the replica share at 2 replicas
    assert is_png(tmp_path / "response-time-local-master.png")


def test_report_merges_client_locations(tmp_path):
    fake_results(tmp_path / "a", "master", {1: [40], 2: [80]})
    fake_results(tmp_path / "b", "remote", {1: [30], 2: [70]})
    assert report.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m")]) == 0
    text = (tmp_path / "m" / "table.md").read_text()
    assert (
        "| replicas | master: max users | master: avg response time (ms) | remote: max users | remote: avg response time (ms) |"
        in text
    )
    assert "| 1 | 40 | 1040 | 30 | 1030 |" in text and "| 2 | 80 | 1080 | 70 | 1070 |" in text
    assert all(is_png(tmp_path / "m" / f"response-time-local-{c}.png") for c in ("master", "remote"))
    assert len(report.read_csv(tmp_path / "m" / "results.csv")) == 4


def test_server_inference_is_read_from_server_timing():
    header = "queue;dur=0.4, decode;dur=2.1, preprocess;dur=1.5, inference;dur=18.25, postprocess;dur=0.3"
    assert server_inference_ms(header) == 18.25
    assert server_inference_ms(None) is None and server_inference_ms("total;dur=30") is None


def test_host_slowdown_compares_loaded_model_time_with_the_idle_probe():
    assert host_slowdown(20.0, [19.0, 21.0, 22.0, math.nan]) == pytest.approx(21.0 / 20.0)
    assert host_slowdown(20.0, [70.0, 75.0, 84.0]) == pytest.approx(3.75)
    assert math.isnan(host_slowdown(math.nan, [20.0]))
    assert math.isnan(host_slowdown(20.0, [math.nan]))


def test_report_flags_a_point_measured_on_a_slowed_host(tmp_path):
    fake_results(tmp_path, "master", {1: [40], 2: [90]})
    rows = report.read_csv(tmp_path / "results.csv")
    rows[0] |= {"idle_inference_ms": "20", "host_slowdown": "3.6"}  # 1 replica: the host slowed down
    rows[1] |= {"idle_inference_ms": "20", "host_slowdown": "1.05"}
    report.write_csv(tmp_path / "results.csv", report.RESULT_FIELDS, rows)
    report.write_report([tmp_path], tmp_path)
    text = (tmp_path / "table.md").read_text()
    assert "| 3.60× ⚠ |" in text and "| 1.05× |" in text
    warnings = [line for line in text.splitlines() if line.startswith("⚠")]
    assert len(warnings) == 1 and warnings[0].startswith("⚠ 1 replica(s), master, run 1") and "3.6×" in warnings[0]


def test_resuming_a_folder_written_by_an_older_version_keeps_columns_aligned(tmp_path):
    path, old_fields = (
        tmp_path / "results.csv",
        [f for f in report.RESULT_FIELDS if "idle" not in f and "slow" not in f],
    )
    report.write_csv(path, old_fields, [{"engine": "local", "client": "a", "replicas": 1, "repetition": 1,
                                         "max_users": 210, "replicas_serving": 1}])  # fmt: skip
    report.write_csv(path, report.RESULT_FIELDS, [{"engine": "local", "client": "a", "replicas": 2, "repetition": 1,
                     "max_users": 422, "idle_inference_ms": 18.2, "replicas_serving": 2}], append=True)  # fmt: skip
    rows = report.read_csv(path)
    assert [(r["max_users"], r["replicas_serving"], r["idle_inference_ms"]) for r in rows] == [
        ("210", "1", ""),
        ("422", "2", "18.2"),
    ]


def test_report_marks_points_where_the_client_was_the_limit(tmp_path):
    fake_results(tmp_path, "master", {1: [40], 2: [90]})
    rows = report.read_csv(tmp_path / "results.csv")
    rows[1] |= {"client_limited_steps": "2", "client_peak_cpu_pct": "97.4", "client_cpu_pct": "96"}
    rows[0] |= {"client_limited_steps": "0", "client_peak_cpu_pct": "31"}
    report.write_csv(tmp_path / "results.csv", report.RESULT_FIELDS, rows)
    steps = report.read_csv(tmp_path / "steps.csv")
    for s in steps:
        s["client_limited"] = str(s["replicas"] == "2" and int(s["users"]) >= 80)
    report.write_csv(tmp_path / "steps.csv", report.STEP_FIELDS, steps)
    report.write_report([tmp_path], tmp_path)
    text = (tmp_path / "table.md").read_text()
    assert "| 2 | 90 ⚑ |" in text and "| 1 | 40 |" in text  # the main table marks the point
    assert "| 31 % |" in text and "| 97 % ⚑ |" in text
    notes = [line for line in text.splitlines() if line.startswith("⚑")]
    assert len(notes) == 1 and notes[0].startswith("⚑ 2 replica(s), master, run 1") and "--locust-processes" in notes[0]
    assert is_png(tmp_path / "response-time-local-master.png")


def test_counts_round_trip():
    assert report.counts(report.fmt({"b=x": 2, "a;y": 1})) == {"a,y": 1, "b:x": 2}


# --- engines -------------------------------------------------------------------------------------------------


def test_nginx_config_is_the_swarm_gateways():
    conf = render_config(Path("/tmp/w"), 41234, 7)
    assert "listen 127.0.0.1:41234" in conf and "include /tmp/w/upstreams.conf;" in conf and "return 200 '7'" in conf
    assert "client_max_body_size" in conf and "/run/nginx.pid" not in conf and "/etc/nginx" not in conf
    ups = render_upstreams({"pose-json": [9001, 9002], "pose-annotate": []})
    assert "server 127.0.0.1:9001 max_fails=1" in ups and "server 127.0.0.1:9002" in ups and "least_conn;" in ups
    assert "server 127.0.0.1:1 down;" in ups and ups.count("keepalive 32;") == 2
    assert "map $function $function_known {" in ups and "    pose-annotate 1;" in ups
    gateway_sh = (ROOT / "swarm" / "nginx" / "gateway.sh").read_text()
    assert "map \\$function \\$function_known" in gateway_sh  # gateway.sh writes the same map


class _Echo(http.server.BaseHTTPRequestHandler):
    """A stand-in replica that answers with the path it was asked for."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_the_gateway_routes_what_is_deployed_and_404s_the_rest():
    """The real nginx with the Swarm gateway's config and only pose-json deployed (as `make swarm-up
    FUNCTIONS=pose-json` leaves it): its paths reach the replica as they came; the paths of functions not
    deployed answer the JSON 404 instead of failing the whole config, as a literal upstream name would."""
    from loadtest.nginx import Nginx, available
    from loadtest.process import free_port

    if reason := available():
        pytest.skip(reason)
    replica = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=replica.serve_forever, daemon=True).start()
    gateway = Nginx(free_port(), {"pose-json": [replica.server_address[1]]})
    try:
        with httpx.Client(base_url=gateway.url, timeout=10) as http_client:
            post = lambda path: http_client.post(path, content=b"{}")  # noqa: E731
            for path, reaches in (("/api/pose_estimation", "/api/pose_estimation"), ("/function/pose-json", "/function/pose-json"),
                                  ("/function/pose-json/_/ready?x=1", "/_/ready?x=1")):  # fmt: skip
                r = post(path)
                assert r.status_code == 200 and r.json() == {"path": reaches}, (path, r.text)
            for path in ("/api/pose_estimation_annotation", "/api/object_detection", "/function/detect-json",
                         "/function/detect-json/_/ready", "/nowhere"):  # fmt: skip
                r = post(path)
                assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (path, r.text)
            gateway.update({"pose-json": [replica.server_address[1]], "detect-json": [replica.server_address[1]]})
            assert post("/api/object_detection").json() == {"path": "/api/object_detection"}
    finally:
        gateway.stop()
        replica.shutdown()


def test_kubectl_commands():
    from cloudpose.deployment import FUNCTION_NAMES

    e = KubectlEngine(node="10.0.0.5")  # every function by default; the runner names the ones it loads
    assert e.scale_commands(4) == [
        ["kubectl", "-n", "cloudpose", "scale", "deployment", name, "--replicas=4"] for name in FUNCTION_NAMES
    ]
    assert e.endpoint("pose-annotate") == ("http://10.0.0.5:30081/function/pose-annotate", {})
    assert isinstance(e, Engine) and e.base_url == "http://10.0.0.5:30080"


def test_knative_commands():
    e = KnativeEngine(node="10.0.0.5", functions=("pose-json",))
    ((*cmd, patch),) = e.scale_commands(8)
    assert cmd == ["kubectl", "-n", "cloudpose", "patch", "ksvc", "pose-json", "--type", "merge", "-p"]
    annotations = json.loads(patch)["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {f"autoscaling.knative.dev/{a}": "8" for a in ("min-scale", "max-scale", "initial-scale")}
    assert e.endpoint("pose-json") == (
        "http://10.0.0.5:31080/function/pose-json",
        {"Host": "pose-json.cloudpose.cloudpose.test"},
    )


def test_openfaas_commands_and_the_ce_cap():
    e = OpenFaasEngine(node="10.0.0.5", functions=("pose-json",), gateway="http://gw:8080/")
    assert e.scale_commands(4) == [
        ["kubectl", "-n", "openfaas-fn", "label", "deployment", "pose-json", "--overwrite",
         "com.openfaas.scale.min=4", "com.openfaas.scale.max=4"],
        ["kubectl", "-n", "openfaas-fn", "scale", "deployment", "pose-json", "--replicas=4"],
    ]  # fmt: skip
    assert e.endpoint("pose-json") == ("http://gw:8080/function/pose-json", {})
    with pytest.raises(ValueError, match="at most 5 replicas.*knative"):
        e.scale_commands(8)


# --- end to end: a short real experiment on the local engine -------------------------------------------------


def run_experiment(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "CLOUDPOSE_DATA": str(DATA), "COLUMNS": "150"}
    cmd = [sys.executable, "-m", "loadtest.experiment", *args]
    return subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def local_engine_or_skip() -> None:
    if reason := cgroup.available():
        pytest.skip(f"local engine: {reason}")
    if not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists():
        pytest.skip("local engine: nginx not installed (apt-get install nginx-light)")
    if not LOAD_128.is_dir():
        pytest.skip(f"no load images in {LOAD_128}: set CLOUDPOSE_DATA")


def locust_processes_of(folder: Path) -> list:
    """Locust processes still running for a results folder (there should be none once a run is over)."""
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "locust" in cmd and str(folder) in cmd:
            found.append(p)
    return found


def test_short_experiment_on_the_local_engine(tmp_path):
    """detect-json at replicas 1 and 2 as real processes in 0.5-CPU cgroups behind nginx, driven the way a cluster
    run is: --locust-processes 2 (Locust's --processes: a master and two workers). Short steps, a 1.5 s timeout
    so failures come quickly, at most 8 users; every answer checked against detect-json's schema. The table, CSVs
    and plot agree, both replicas served, every step has the client's CPU over its three processes, no Locust
    process is left, and the same command again measures nothing new. (pose-json runs in the Swarm test.)"""
    local_engine_or_skip()
    out = tmp_path / "exp"
    args = ["--engine", "local", "--function", "detect-json", "--replicas", "1,2", "--results", str(out),
            "--client-label", "test", "--locust-processes", "2",
            "--start-users", "2", "--step-users", "2", "--spawn-rate", "4", "--hold", "3", "--max-users", "8",
            "--confirm-hold", "3", "--confirm-spawn-rate", "4", "--max-confirms", "2", "--timeout", "1.5",
            "--wait-min", "0.2", "--wait-max", "0.5", "--cooldown", "2", "--warmup", "2"]  # fmt: skip
    started = time.monotonic()
    run = run_experiment(args, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "2 worker process(es) + master" in run.stdout

    results = report.read_csv(out / "results.csv")
    steps = report.read_csv(out / "steps.csv")
    assert sorted(int(r["replicas"]) for r in results) == [1, 2]
    assert all(r["locust_processes"] == "2" for r in results)
    table = (out / "table.md").read_text()
    assert "client CPU (busiest Locust process)" in table
    for r in results:
        n = int(r["replicas"])
        mine = [s for s in steps if int(s["replicas"]) == n]
        ramp = [s for s in mine if s["phase"] == "step"]
        assert ramp and [int(s["users"]) for s in ramp] == list(range(2 * n, 2 * n * (len(ramp) + 1), 2 * n))
        if r["confirmed"] == "True":
            m = int(r["max_users"])
            confirm = [s for s in mine if s["phase"] == "confirm" and int(s["users"]) == m]
            assert confirm and int(confirm[-1]["failures"]) == 0  # the recorded count passed its confirm run
            assert all(
                int(s["failures"]) == 0 for s in ramp if int(s["users"]) < (int(r["first_failure_users"] or 10**6))
            )
            assert f"| {n} | {m} | {float(r['avg_ms']):.0f} |" in table  # the table is the CSV's
            served = report.counts(r["served_by"])
            assert len(served) == n and all(name.startswith("local-detect-json-") for name in served), served
        idle = float(r["idle_inference_ms"])  # the probe's model time: the servers' own, one request at a time
        assert 1 < idle < 2000 and float(r["host_slowdown"]) > 0, r
    two = next(r for r in results if r["replicas"] == "2")
    if two["confirmed"] == "True":
        assert int(two["replicas_serving"]) == 2
    for s in steps:
        assert int(s["client_processes"]) == 3, s  # the master and its two workers, sampled by the runner
        assert 0 < float(s["client_cpu_pct"]) < 100 and s["client_limited"] in ("True", "False"), s
        if s["replicas"] == "2" and int(s["requests"]) >= 10:
            assert len(report.counts(s["served_by"])) == 2, s
    assert sum(int(s["requests"]) for s in steps) > 40
    png = out / "response-time-local-test.png"
    assert is_png(png)
    rep = out / "raw" / "test" / "replicas-2" / "rep-1"
    assert (rep / "ramp_stats_history.csv").exists()  # Locust's own CSVs
    assert "--processes 2" in (rep / "ramp_command.txt").read_text()
    assert not locust_processes_of(out)

    # resumable: the same command again measures nothing new (and starts no replica)
    again = run_experiment(args, timeout=60)
    assert again.returncode == 0 and "2 of 2 points already done" in again.stdout, again.stdout[-2000:]
    assert report.read_csv(out / "results.csv") == results
    assert time.monotonic() - started < 200


def test_distributed_master_with_a_worker_host(tmp_path):
    """--locust-master on loopback with 2 workers that a second command, --locust-worker, runs and restarts for
    every run of the experiment (ramp, confirm). Locust's own CPU figures of the workers reach the steps."""
    local_engine_or_skip()
    from loadtest.process import free_port

    port, out = free_port(), tmp_path / "dist"
    env = {**os.environ, "CLOUDPOSE_DATA": str(DATA), "COLUMNS": "150"}
    worker_log = (tmp_path / "workers.log").open("w")
    workers = subprocess.Popen(
        [sys.executable, "-m", "loadtest.experiment", "--locust-worker", f"127.0.0.1:{port}", "--locust-processes", "2",
         "--worker-for", "200"], cwd=ROOT, env=env, stdout=worker_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        args = ["--engine", "local", "--function", "detect-json", "--replicas", "1", "--results", str(out),
                "--client-label", "test", "--locust-master", f"127.0.0.1:{port}", "--locust-workers", "2", "--locust-worker-wait", "60",
                "--start-users", "2", "--step-users", "2", "--spawn-rate", "4", "--hold", "8", "--max-users", "4",
                "--confirm-hold", "4", "--confirm-spawn-rate", "4", "--max-confirms", "1", "--timeout", "1.5",
                "--wait-min", "0.2", "--wait-max", "0.5", "--cooldown", "2", "--warmup", "2"]  # fmt: skip
        run = run_experiment(args, timeout=240)
    finally:
        workers.terminate()  # SIGTERM: it stops the Locust workers it started
        workers.wait(30)
        worker_log.close()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + (tmp_path / "workers.log").read_text()[-2000:]
    steps = report.read_csv(out / "steps.csv")
    ramp = [s for s in steps if s["phase"] == "step"]
    assert [int(s["users"]) for s in ramp] == [2, 4] and all(int(s["requests"]) > 0 for s in ramp), ramp
    assert all(int(s["client_processes"]) == 1 for s in steps)  # this machine's psutil sees the master only
    assert any(s["client_locust_cpu_pct"] for s in ramp), ramp  # the workers' own figures, sent to the master
    assert "worker run 2 ended" in (tmp_path / "workers.log").read_text()  # restarted for the confirm
    command = (out / "raw" / "test" / "replicas-1" / "rep-1" / "ramp_command.txt").read_text()
    assert "--master" in command and "--expect-workers 2" in command
    assert not locust_processes_of(out) and workers.poll() is not None
    import psutil

    assert not [
        p for p in psutil.process_iter(["cmdline"]) if f"--master-port {port}" in " ".join(p.info["cmdline"] or [])
    ]


@pytest.mark.docker
def test_short_experiment_on_swarm(tmp_path):
    """The same runner on Docker Swarm (pose-json as a service behind the nginx gateway), shorter still: 2 replicas
    (the walk over replica counts is the local-engine test's), at most 6 users, both replicas serve. Uses the
    images `make images` built; takes over the `cloudpose` stack."""
    from loadtest.engines import swarm
    from loadtest.process import free_port

    if (
        not shutil.which("docker")
        or subprocess.run(["docker", "info"], check=False, capture_output=True, timeout=30).returncode
    ):
        pytest.skip("needs a running Docker engine (apt-get install docker.io; start dockerd)")
    missing = [swarm.image(f) for f in swarm.FUNCTION_NAMES if not swarm.docker_ok("image", "inspect", swarm.image(f))]
    if missing:
        pytest.skip(f"images {', '.join(missing)} missing: run make images (tests/test_containers.py builds them too)")
    if not LOAD_128.is_dir():
        pytest.skip(f"no load images in {LOAD_128}: set CLOUDPOSE_DATA")
    out = tmp_path / "swarm"
    args = ["--engine", "swarm", "--overcommit", "--gateway-port", str(free_port()), "--replicas", "2",
            "--results", str(out), "--client-label", "test", "--start-users", "2", "--step-users", "2",
            "--spawn-rate", "4", "--hold", "3", "--max-users", "6", "--confirm-hold", "3", "--confirm-spawn-rate", "4",
            "--max-confirms", "1", "--timeout", "1.5", "--wait-min", "0.2", "--wait-max", "0.5", "--cooldown", "2"]  # fmt: skip
    try:
        run = run_experiment(args, timeout=400)
    finally:
        swarm.down()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = report.read_csv(out / "results.csv")
    assert [int(r["replicas"]) for r in results] == [2]
    for s in report.read_csv(out / "steps.csv"):
        names = report.counts(s["served_by"])
        assert all(n.startswith("cloudpose_pose-json-") for n in names), names
        if s["replicas"] == "2" and int(s["requests"]) >= 10:
            assert len(names) == 2, s
    assert is_png(out / "response-time-swarm-test.png") and (out / "table.md").exists()


def test_search_steps_down_to_what_the_throughput_can_answer_in_time():
    """A confirm far past the edge steps straight down to throughput × (timeout + think); one just past it,
    however many requests it failed (at the edge a quarter may time out), steps down 4 %."""
    confirmed: list[int] = []

    def ramp() -> list[Step]:
        return [Step(300, requests=600), Step(320, requests=300, failures=40)]

    def confirm(users: int) -> Step:  # a server of 20 requests/s, 10 s timeout, 1.5 s mean think: edge at 230
        confirmed.append(users)
        return Step(users, requests=1200, failures=0 if users <= 221 else 300, rps=20.0)

    search = find_max_users(ramp, confirm, down_step=0, max_confirms=6, cycle_s=11.5)
    assert confirmed == [319, 230, 220] and search.max_users == 220  # 20 × 11.5 = 230, then −4 %
    confirmed.clear()
    slow = find_max_users(ramp, confirm, down_step=0, max_confirms=6)  # without it: 4 % steps, six runs short
    assert confirmed == [319, 306, 293, 281, 269, 258] and slow.max_users is None
