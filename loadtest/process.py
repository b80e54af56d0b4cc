"""Start a CloudPose server as a real process on a free loopback port, wait until ready, stop it cleanly.

Used by the benchmarks, the offload client and the tests, so all of them measure the real thing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen | None = None, timeout: float = 60) -> dict:
    """Poll `url`/_/ready until 200 and every input shape is compiled (returns its JSON); fail early if `proc` exits.

    OpenVINO variants are ready on their largest shape and compile the smaller ones right after:
    measurements and comparisons want the steady state.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            r = httpx.get(f"{url}/_/ready", timeout=2)
            if r.status_code == 200:
                model = r.json().get("model") or {}
                if model and len(model.get("serving_shapes") or ()) == len(model.get("shapes") or ()):
                    return r.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout:.0f} s")


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 10) -> None:
    """Ask `proc` to stop with `sig`; kill it if it is still there after `grace` seconds."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class ServerProcess:
    """`python <args>` with PORT set to a free port; `prefix` wraps the command (e.g. a cgroup launcher)."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
        prefix: list[str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        timeout: float = 60,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}"
        full_env = {**os.environ, "PORT": str(self.port), "HOST": host, "LOG_LEVEL": "WARNING", **(env or {})}
        self.log = tempfile.NamedTemporaryFile("w+", prefix=f"cloudpose-{self.port}-", suffix=".log", delete=False)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [*(prefix or []), sys.executable, *args], env=full_env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT
        )
        try:
            self.ready = wait_ready(self.url, self.proc, timeout)
        except Exception:
            self.stop()
            raise RuntimeError(f"server {' '.join(args)} failed to start:\n{self.output()[-4000:]}") from None
        self.cold_start = time.perf_counter() - self.started

    @property
    def pid(self) -> int:
        return self.proc.pid

    def peak_rss_mib(self) -> float:
        """The server's peak resident memory so far (VmHWM; shared-library pages included)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def output(self) -> str:
        """Everything the server printed (kept in memory once it is stopped: the log file is gone then)."""
        if self.log.closed:
            return self._output
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        """Stop the server and remove its log file (its text stays readable through output())."""
        stop_process(self.proc)
        if not self.log.closed:
            self.log.flush()
            self._output = Path(self.log.name).read_text(errors="replace")
            self.log.close()
            Path(self.log.name).unlink(missing_ok=True)

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
