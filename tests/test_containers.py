"""The function images and the Swarm stack, for real: built with `make images` (from scratch on a clean
machine, cached after), run under a pod's limits (`docker run --cpus 0.5 --memory 512m`), fed real photos.

Figures (build time, image size, cold start, peak memory under load) are printed: `pytest -s` shows them.
Needs a running Docker engine; skipped with what to install otherwise. The Swarm test takes over the
`cloudpose` stack on this engine and removes it at the end.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageOps

from cloudpose import deployment as d
from loadtest.process import free_port

from cloudpose.functions import FUNCTIONS

from .conftest import ROOT, b64, load_images

pytestmark = pytest.mark.docker
# The load each container takes while its peak memory is measured (docs/containers.md's table: 64).
CLIENTS, REQUESTS = 8, int(os.environ.get("CLOUDPOSE_CONTAINER_REQUESTS", "32"))
MODEL_DIR = Path(os.environ.get("POSE_MODEL_DIR", Path.home() / ".cache" / "cloudpose" / "models"))


def docker_problem() -> str | None:
    if not shutil.which("docker"):
        return "the docker CLI is missing: apt-get install docker.io, then start the engine (dockerd)"
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode:
        return "the Docker engine is not running: start dockerd (see .ci/run), or apt-get install docker.io"
    return None


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    run = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    assert not check or run.returncode == 0, f"docker {' '.join(args)}: {run.stderr[-2000:]}"
    return run


def say(text: str) -> None:
    print(f"\n[containers] {text}", flush=True)


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    """Both images, built by the same command users run; the figures it prints go to the test output."""
    problem = docker_problem()
    if problem:
        pytest.skip(problem)
    load_images()  # skips early when the test data is absent
    started = time.monotonic()
    run = subprocess.run(
        ["make", "--no-print-directory", "images"], cwd=ROOT, capture_output=True, text=True, timeout=1500
    )
    assert run.returncode == 0, f"make images failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    say(f"make images: {time.monotonic() - started:.0f} s")
    for line in run.stdout.splitlines():
        if line.startswith("== "):
            say(line[3:])
    return {fn: f"{d.IMAGE_REPOSITORY}/{fn}:latest" for fn in d.FUNCTION_NAMES}


class Container:
    """`docker run -d` under the pod's limits on a free loopback port; cold start = run → /_/ready 200."""

    def __init__(self, image: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        started = time.perf_counter()
        self.id = docker(
            "run", "-d", "--cpus", str(d.CPU_CORES), "--memory", "512m",
            "-p", f"127.0.0.1:{self.port}:{d.PORT}", image,
        ).stdout.strip()  # fmt: skip
        deadline = started + 90
        while time.perf_counter() < deadline:
            try:
                r = httpx.get(self.url + d.READY_PATH, timeout=2)
                if r.status_code == 200:
                    self.cold_start, self.variant = time.perf_counter() - started, r.json()["model"]["variant"]
                    return
            except httpx.HTTPError:
                pass
            if docker("inspect", "-f", "{{.State.Running}}", self.id).stdout.strip() != "true":
                break
            time.sleep(0.05)
        logs = docker("logs", "--tail", "40", self.id, check=False)
        self.stop()
        raise AssertionError(f"{image} not ready:\n{logs.stdout}{logs.stderr}")

    def peak_memory(self) -> int | None:
        """The container cgroup's peak usage (v1 max_usage_in_bytes or v2 memory.peak), if readable here."""
        for path in (
            f"/sys/fs/cgroup/memory/docker/{self.id}/memory.max_usage_in_bytes",
            f"/sys/fs/cgroup/system.slice/docker-{self.id}.scope/memory.peak",
            f"/sys/fs/cgroup/docker/{self.id}/memory.peak",
        ):
            try:
                return int(Path(path).read_text())
            except (OSError, ValueError):
                continue
        return None

    def stop(self) -> None:
        docker("rm", "-f", self.id, check=False)


class StatsSampler(threading.Thread):
    """`docker stats` every second: the peak when the cgroup's own counter is not readable."""

    def __init__(self, container_id: str) -> None:
        super().__init__(daemon=True)
        self.id, self.peak, self.done = container_id, 0, threading.Event()

    def run(self) -> None:
        units = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
        while not self.done.is_set():
            out = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", self.id, check=False).stdout
            used = out.split("/")[0].strip()
            for unit, factor in sorted(units.items(), key=lambda u: -len(u[0])):
                if used.endswith(unit):
                    self.peak = max(self.peak, int(float(used[: -len(unit)]) * factor))
                    break
            self.done.wait(1)


def check_answer(fn: str, path: Path, rid: str, r: httpx.Response) -> None:
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    assert body["id"] == rid
    FUNCTIONS[fn].response.model_validate(body)  # the contract of its schema.py
    if fn == "pose-json":
        assert body["count"] == len(body["boxes"]) == len(body["keypoints"])
        assert all(len(person) == 17 and all(len(kp) == 3 for kp in person) for person in body["keypoints"])
    elif fn == "detect-json":
        assert all(o["rectangle"]["left"] + o["rectangle"]["width"] <= Image.open(path).width for o in body["objects"])
    elif fn == "photo-metadata":
        assert body["file_size"] == path.stat().st_size and body["format"] == "JPEG"
    elif fn == "photo-thumbnail":
        out = Image.open(io.BytesIO(base64.b64decode(body["image"])))
        assert out.format == "JPEG" and max(out.size) <= 250
    else:
        out = Image.open(io.BytesIO(base64.b64decode(body["image"])))
        assert out.format == "JPEG"
        assert out.size == ImageOps.exif_transpose(Image.open(path)).size


def post_all(url: str, fn: str, paths: list[Path], clients: int) -> list[httpx.Response]:
    """POST every photo once (clients at a time), checking each answer; returns the responses."""

    def one(item: tuple[int, Path]) -> httpx.Response:
        i, path = item
        rid = f"{fn}-{i}"
        with httpx.Client(timeout=120) as client:
            r = client.post(url, json={"id": rid, "image": b64(path)})
        check_answer(fn, path, rid, r)
        return r

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, enumerate(paths)))


PROBE = """
import importlib.util as u, json, os, pathlib
out = {"uid": os.getuid(), "missing": [m for m in ("torch", "ultralytics") if u.find_spec(m) is None],
       "models": sorted(str(p.relative_to("/models")) for p in pathlib.Path("/models").rglob("*") if p.is_file())}
if u.find_spec("openvino"):
    import openvino as ov
    core = ov.Core()
    models = sorted(pathlib.Path("/models").glob("*.xml")) + sorted(pathlib.Path("/models").glob("*.onnx"))
    for p in models:
        core.compile_model(str(p), "CPU")
    out["openvino_compiled"] = len(models)
print(json.dumps(out))
"""


@pytest.mark.parametrize("fn", d.FUNCTION_NAMES)
def test_image_serves_real_photos_within_the_pod_limits(images, fn):
    image = images[fn]
    config = json.loads(docker("image", "inspect", image).stdout)[0]
    size_mb = config["Size"] / 1e6
    c = config["Config"]
    assert c["User"].split(":")[0] == str(d.RUN_AS_USER)
    assert {f"PORT={d.PORT}", "POSE_THREADS=1", "POSE_MODEL_DIR=/models"} <= set(c["Env"])
    assert f"{d.PORT}/tcp" in c["ExposedPorts"] and c["Cmd"] == ["python", "handler.py"]
    assert d.HEALTH_PATH in " ".join(c["Healthcheck"]["Test"])

    # No torch or Ultralytics; its own task's serving files and nothing else (another task's model, the weights,
    # the darknet sources stay out); the slimmed OpenVINO still compiles them.
    probe = json.loads(docker("run", "--rm", "--cpus", "1", image, "python", "-c", PROBE, timeout=300).stdout)
    assert probe["uid"] == d.RUN_AS_USER
    assert probe["missing"] == ["torch", "ultralytics"]
    task = FUNCTIONS[fn].task
    serving = sorted(
        p.name for p in MODEL_DIR.glob(f"{task.model.stem}.*") if p.suffix not in (".pt", ".weights", ".cfg")
    ) if task.model else []  # fmt: skip
    assert probe["models"] == serving

    photos = load_images()
    container = Container(image)
    sampler = StatsSampler(container.id)
    try:
        health = docker("exec", container.id, *c["Healthcheck"]["Test"][1:], check=False)
        assert health.returncode == 0, f"the HEALTHCHECK command fails: {health.stderr}"
        url = f"{container.url}/function/{fn}"
        first = photos[0]
        check_answer(fn, first, "first", httpx.post(url, json={"id": "first", "image": b64(first)}, timeout=120))
        sampler.start()
        started = time.perf_counter()
        try:
            responses = post_all(url, fn, [photos[i % len(photos)] for i in range(REQUESTS)], CLIENTS)
        except Exception as exc:  # say why: most often the container was OOM-killed
            state = docker("inspect", "-f", "{{.State.Status}} OOMKilled={{.State.OOMKilled}}", container.id).stdout
            raise AssertionError(
                f"{fn} ({container.variant}) failed under {CLIENTS} clients: {exc!r}; container {state.strip()}, "
                f"peak memory {(container.peak_memory() or sampler.peak) / 2**20:.0f} MiB of 512"
            ) from exc
        took = time.perf_counter() - started
        sampler.done.set()
        sampler.join(10)
        peak = container.peak_memory() or sampler.peak
        oom = docker("inspect", "-f", "{{.State.OOMKilled}}", container.id).stdout.strip()
        served = {r.headers["x-served-by"] for r in responses}
    finally:
        sampler.done.set()
        container.stop()
    say(
        f"{fn}: image {size_mb:.0f} MB, variant {container.variant}, cold start {container.cold_start:.2f} s, "
        f"{REQUESTS} requests from {CLIENTS} clients in {took:.1f} s ({REQUESTS / took:.1f}/s), "
        f"peak memory {peak / 2**20:.0f} MiB of 512"
    )
    assert len(served) == 1 and oom == "false"
    assert 0 < peak < d.MEMORY_BYTES, f"peak memory {peak / 2**20:.0f} MiB"


def test_swarm_balances_every_request_across_the_replicas(images):
    from loadtest.engines import Engine, swarm

    deployed = ["pose-json", "detect-annotate"]  # a second function that starts fast (ONNX Runtime)
    small = (os.cpu_count() or 1) < 2 * len(deployed) * d.CPU_CORES  # 2 replicas each do not fit: overcommit
    engine = swarm.SwarmEngine(port=free_port(), overcommit=small, functions=deployed)
    assert isinstance(engine, Engine)
    photos = load_images()
    started = time.monotonic()
    try:
        engine.up(2, timeout=300)
        ready_in = time.monotonic() - started
        names = set(engine.replica_names())
        assert len(names) == 4, names
        base = engine.base_url

        responses = post_all(f"{base}/function/pose-json", "pose-json", photos[:64], 4)
        counts = Counter(r.headers["x-served-by"] for r in responses)
        assert sum(counts.values()) == 64 and len(counts) == 2 and set(counts) <= names, counts
        annotated = post_all(f"{base}/api/object_detection_annotation", "detect-annotate", photos[64:80], 2)
        annotate_counts = Counter(r.headers["x-served-by"] for r in annotated)
        assert len(annotate_counts) == 2, annotate_counts

        # Bodies over the function's limit get its JSON 413; over the gateway's, the gateway's in the same shape.
        for size, served_by in ((11 << 20, True), (17 << 20, False)):
            r = httpx.post(f"{base}/function/pose-json", content=b"x" * size, timeout=60)
            assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
            assert ("x-served-by" in r.headers) == served_by

        # Scaling down: the gateway follows, so every request lands on the one replica left.
        swarm.scale("pose-json", 1, overcommit=engine.overcommit, timeout=120)
        responses = post_all(f"{base}/function/pose-json", "pose-json", photos[:8], 4)
        single = Counter(r.headers["x-served-by"] for r in responses)
        assert len(single) == 1, single
        say(f"swarm: ready in {ready_in:.1f} s; pose-json {dict(counts)}; detect-annotate {dict(annotate_counts)}")
    except Exception as exc:  # with what Swarm saw: a replica that exited 137 was OOM-killed
        tasks = docker("service", "ps", "--no-trunc", "--format", "{{.Name}} {{.CurrentState}} {{.Error}}",
                       *(swarm.service(f) for f in d.FUNCTION_NAMES), check=False).stdout  # fmt: skip
        raise AssertionError(f"{exc!r}\nswarm tasks:\n{tasks}") from exc
    finally:
        swarm.down()
    assert not docker("ps", "-aq", "--filter", f"label=com.docker.stack.namespace={swarm.STACK}").stdout.strip()
