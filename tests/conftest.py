"""Shared fixtures: the real data, the real model, and a real server process on a free port."""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from loadtest.process import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CLOUDPOSE_DATA", ROOT.parent / "shared" / "data")).resolve()
LOAD_128 = DATA / "load-128"
DEV = DATA / "coco-pose-dev"


def require_data() -> None:
    if not (LOAD_128.is_dir() and (DEV / "person_keypoints.json").is_file()):
        pytest.skip(f"test data not found under {DATA}: set CLOUDPOSE_DATA to the shared data folder")


def load_images() -> list[Path]:
    require_data()
    return sorted(LOAD_128.glob("*.jpg"))


def dev_images() -> list[Path]:
    require_data()
    return sorted((DEV / "images").glob("*.jpg"))


def b64(path_or_bytes: Path | bytes) -> str:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    return base64.b64encode(data).decode("ascii")


def Server(args: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> ServerProcess:
    """A real server process; the start may take minutes on a CI host busy with other tests (OpenVINO compiles)."""
    return ServerProcess(args, env={"LOG_LEVEL": "INFO", **(env or {})}, cwd=cwd, timeout=240)


def settings_with(**env: str):
    """Settings as the service reads them, with these environment variables set (POSE_VARIANT=...)."""
    from cloudpose.config import Settings

    return Settings.from_env({**os.environ, **env})


def load_pose(**env: str):
    """The pose task's runner, loaded as the service loads it, with these environment variables."""
    from cloudpose.backends import load
    from cloudpose.tasks import TASKS

    return load(TASKS["pose"], settings_with(**env))


@pytest.fixture(scope="session")
def settings():
    return settings_with()


@pytest.fixture(scope="session")
def model(settings):
    """The model the service serves by default on this CPU (POSE_VARIANT=auto)."""
    loaded = load_pose()
    loaded.wait_steady()
    return loaded


@pytest.fixture(scope="session")
def fp32_model(settings):
    """ONNX Runtime fp32: the fallback that runs everywhere, and the exact-parity reference."""
    return load_pose(POSE_VARIANT="ort-fp32-640")


@pytest.fixture(scope="session")
def reference_model(settings):
    """The Ultralytics + torch backend: the parity reference."""
    return load_pose(POSE_BACKEND="ultralytics")


@pytest.fixture(scope="session")
def server():
    """The local default (both functions, course paths) as a real process."""
    srv = Server(["-m", "cloudpose.local"])
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")  # Debian's chromium, chromium-driver
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    # Without these Chromium phones Google (updates, sync, field trials) and can hang offline.
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-quic",
]  # fmt: skip


@contextmanager
def chromium(width: int, height: int, extra_flags: tuple[str, ...] = ()):
    """A real headless Chromium (Selenium), with a fresh profile and the browser's logs kept; skips without it."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Chromium and its driver: apt-get install chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="cloudpose-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, *extra_flags, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    drv = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        drv.set_page_load_timeout(60)
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def pytest_terminal_summary(terminalreporter) -> None:
    """At the very end: every skipped test grouped by its reason, so a run says what it did not check."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        terminalreporter.write_sep("=", "no test was skipped", green=True)
        return
    reasons: dict[str, list[str]] = {}
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reasons.setdefault(reason.removeprefix("Skipped: "), []).append(report.nodeid.split("::")[0])
    terminalreporter.write_sep("=", f"{len(skipped)} tests skipped, and why", yellow=True)
    for reason, where in sorted(reasons.items(), key=lambda kv: -len(kv[1])):
        files = ", ".join(sorted(set(where)))
        terminalreporter.write_line(f"{len(where):4d} × {reason}  [{files}]")
