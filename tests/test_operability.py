"""What a cluster operator relies on, on real processes and real HTTP: Prometheus metrics, a graceful
drain on SIGTERM, and a soak of mixed good and bad requests in a pod-sized cgroup."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from loadtest import soak as soaking
from loadtest.cgroup import available

from .conftest import Server, b64, load_images


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) → value, from one GET /metrics."""
    r = httpx.get(f"{url}/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_answers_stages_rejections_and_the_models(server, client):
    before = scrape(server.url)
    photo = b64(load_images()[5])
    assert client.post("/api/pose_estimation", json={"id": "m1", "image": photo}).status_code == 200
    assert client.post("/api/object_detection", json={"id": "m2", "image": photo}).status_code == 200
    assert client.post("/api/object_detection", content=b"not json").status_code == 400
    assert client.post("/api/pose_estimation", json={"images": ["eA=="] * 17}).status_code == 413
    assert client.post("/no/such/path", json={}).status_code == 404
    after = scrape(server.url)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("cloudpose_requests_total", function="pose-json", path="/api/pose_estimation", code="200") == 1
    assert delta("cloudpose_requests_total", function="detect-json", path="/api/object_detection", code="200") == 1
    assert delta("cloudpose_requests_total", function="detect-json", path="/api/object_detection", code="400") == 1
    assert delta("cloudpose_requests_total", function="", path="other", code="404") == 1, "unknown paths share one series"
    assert delta("cloudpose_rejected_requests_total", function="pose-json", reason="batch_too_large") == 1
    for stage in ("queue", "decode", "preprocess", "inference", "postprocess", "render"):
        assert delta("cloudpose_stage_duration_seconds_count", function="detect-json", stage=stage) == 1
    inference = delta("cloudpose_stage_duration_seconds_sum", function="detect-json", stage="inference")
    total = delta("cloudpose_request_duration_seconds_sum", function="detect-json")
    assert 0 < inference < total < 60
    models = {dict(labels)["task"]: dict(labels) for (name, labels), v in after.items() if name == "cloudpose_model_info" and v == 1}
    ready = client.get("/_/ready").json()
    assert models["pose"]["variant"] == ready["models"]["pose"]["variant"] and models["detect"]["input_size"] == "416"
    assert value(after, "process_resident_memory_bytes") > 50 * 2**20 and value(after, "process_cpu_seconds_total") > 0
    assert value(after, "cloudpose_requests_queued") == 0 and value(after, "cloudpose_draining") == 0


def test_a_scrape_under_load_answers_and_shows_the_queue(server):
    """Eight clients keep the server busy; scrapes meanwhile answer and see requests waiting (what a scrape
    costs a busy pod is measured by `python -m bench.scrape`, not asserted here)."""
    body = {"id": "busy", "image": b64(load_images()[7])}
    stop = time.monotonic() + 8

    def load() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            while time.monotonic() < stop:
                c.post("/api/pose_estimation", json=body)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(2)
    queued, running = [], []
    for _ in range(10):
        samples = scrape(server.url)
        queued.append(value(samples, "cloudpose_requests_queued"))
        running.append(value(samples, "cloudpose_inferences_running"))
        time.sleep(0.3)
    for t in threads:
        t.join(70)
    assert max(queued) >= 1, "with 8 clients on few inference slots, some must wait"
    assert max(running) >= 1


def test_every_function_process_serves_metrics():
    srv = Server(["-m", "cloudpose.serve", "photo-thumbnail"])
    try:
        samples = scrape(srv.url)
        assert value(samples, "cloudpose_model_info", task="thumbnail", variant="python:thumbnail", backend="python",
                     input_size="0", runs_as="") == 1  # fmt: skip
    finally:
        srv.stop()


def test_sigterm_drains_without_losing_an_accepted_request():
    """Under load, SIGTERM turns /_/ready to 503 at once, every request sent keeps its 200 (running, queued
    and those arriving while the load balancer has not reacted yet), and the process exits 0 in time."""
    drain = 3.0
    env = {"POSE_DRAIN_SECONDS": str(drain), "POSE_SHUTDOWN_TIMEOUT": "30", "POSE_VARIANT": "ort-fp32-640"}  # one quick load
    srv = Server(["-m", "cloudpose.serve", "pose-json"], env=env)
    body = {"id": "drain", "image": b64(load_images()[9])}
    results: list[int | str] = []
    not_ready_at: list[float] = []
    balancer_left = threading.Event()  # set once the "load balancer" (the clients) has seen not-ready

    def client() -> None:
        with httpx.Client(base_url=srv.url, timeout=60, limits=httpx.Limits(max_keepalive_connections=0)) as c:
            for _ in range(200):
                if balancer_left.is_set():
                    return
                try:
                    results.append(c.post("/", json=body).status_code)
                except httpx.HTTPError as exc:
                    results.append(type(exc).__name__)

    def watch_readiness() -> None:
        for _ in range(400):
            try:
                if httpx.get(f"{srv.url}/_/ready", timeout=2).status_code == 503:
                    not_ready_at.append(time.monotonic())
                    time.sleep(1.0)  # a balancer's reaction time, well inside the drain window
                    balancer_left.set()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)

    clients = [threading.Thread(target=client) for _ in range(6)]
    for t in clients:
        t.start()
    time.sleep(3)
    watcher = threading.Thread(target=watch_readiness)
    watcher.start()
    sent_at = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    code = srv.proc.wait(drain + 30 + 10)
    stopped = time.monotonic() - sent_at
    balancer_left.set()
    for t in [watcher, *clients]:
        t.join(30)
    srv.stop()
    assert not_ready_at and not_ready_at[0] - sent_at < 1.0, "/_/ready must answer 503 right after SIGTERM"
    assert code == 0, srv.output()[-2000:]
    assert stopped < drain + 30, f"took {stopped:.1f} s to stop"
    assert len(results) > 10 and set(results) == {200}, f"lost or failed requests: {[r for r in results if r != 200]}"


def test_soak_of_mixed_requests_in_a_pod_sized_cgroup():
    """The CI-sized soak: 2,000 mixed requests at 0.5 CPU / 512 MiB, pose-json and detect-json at once, split so both
    end together (detect-json answers a photo about twice as fast at 0.5 CPU)."""
    if reason := available():
        pytest.skip(f"cgroups: {reason}")
    share = {"pose-json": 700, "detect-json": 1300}
    reports = soaking.soak_all(share, time_limit=600)
    assert [r["function"] for r in reports] == list(share)
    for report in reports:
        assert report["sent"] == share[report["function"]], report
        assert report["wrong"] == 0 and report["server_errors"] == 0, report["wrong_examples"]
        assert report["oom_kills"] == 0 and report["rss_growth"] < soaking.RSS_GROWTH_LIMIT, report
        assert report["passed"], report
