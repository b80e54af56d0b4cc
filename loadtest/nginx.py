"""A local nginx gateway: Debian's nginx as a plain child process, with the Swarm gateway's own config.

The config is swarm/nginx/nginx.conf (the routes, body limit, keep-alive and error shapes of the Swarm
gateway) with only its file paths and listen address rewritten, and the upstream blocks rendered as
swarm/nginx/gateway.sh renders them — so local and Swarm runs balance requests the same way. `update()`
rewrites the upstreams and reloads nginx (SIGHUP: requests in flight finish on the old workers);
`wait_generation()` returns once a new worker answers, so no request reaches a removed replica.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from .process import stop_process

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "swarm" / "nginx" / "nginx.conf"
# Files nginx.conf includes by a relative path (nginx reads them beside the main config): copied as they are.
INCLUDED = (ROOT / "swarm" / "nginx" / "function.conf",)
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def available() -> str | None:
    """None if nginx can run here, else the reason."""
    return None if Path(NGINX).exists() else "nginx not installed (apt-get install nginx-light)"


def render_upstreams(upstreams: dict[str, list[int]]) -> str:
    """Upstream blocks as gateway.sh writes them: least_conn, one server per replica port, keepalive; and the
    map of function names the generic /function/<name> routes serve."""
    out = ["map $function $function_known {", "    default 0;", *(f"    {name} 1;" for name in upstreams), "}"]
    for name, ports in upstreams.items():
        out.append(f"upstream {name} {{\n    least_conn;")
        out += [f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;" for port in ports]
        if not ports:
            out.append("    server 127.0.0.1:1 down;  # no replica is ready")
        out.append("    keepalive 32;\n}")
    return "\n".join(out) + "\n"


def render_config(workdir: Path, port: int, generation: int, template: str | None = None) -> str:
    """The Swarm gateway's nginx.conf, its paths moved into `workdir`, listening on 127.0.0.1:`port`."""
    text = TEMPLATE.read_text() if template is None else template
    temp = "\n".join(
        f"    {kind}_temp_path {workdir}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    replacements = {
        "worker_processes 1;": "worker_processes 1;\nworker_rlimit_nofile 16384;  # users × 2 connections, over 1024",
        "pid /run/nginx.pid;": f"pid {workdir}/nginx.pid;",
        "include /etc/nginx/upstreams.conf;": f"include {workdir}/upstreams.conf;\n{temp}",
        "listen 8088": f"listen 127.0.0.1:{port}",
        "alias /etc/nginx/upstreams.conf;": f"alias {workdir}/upstreams.conf;",
        "location = /_/health": f"location = /_/generation {{ return 200 '{generation}'; }}\n        location = /_/health",
    }
    for old, new in replacements.items():
        if text.count(old) != 1:
            raise ValueError(f"{TEMPLATE} changed: expected {old!r} once; update loadtest/nginx.py")
        text = text.replace(old, new)
    return text


class Nginx:
    """nginx on 127.0.0.1:`port` balancing `upstreams` (function name → replica ports)."""

    def __init__(self, port: int, upstreams: dict[str, list[int]]) -> None:
        self.port, self.generation = port, 0
        self.url = f"http://127.0.0.1:{port}"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"cloudpose-nginx-{port}-"))
        self.workdir.chmod(0o755)  # nginx's workers (nobody when started as root) use the temp paths in here
        self._write(upstreams)
        conf = str(self.workdir / "nginx.conf")
        check = subprocess.run(
            [NGINX, "-t", "-q", "-e", "stderr", "-p", str(self.workdir), "-c", conf], capture_output=True, text=True
        )
        if check.returncode:  # say what nginx refused, and leave no work folder behind
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise RuntimeError(f"nginx refused the gateway config: {check.stderr.strip()}")
        self.log = open(self.workdir / "nginx.log", "w")
        self.proc = subprocess.Popen(
            [NGINX, "-e", "stderr", "-p", str(self.workdir), "-c", conf, "-g", "daemon off;"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.wait_generation()

    def _write(self, upstreams: dict[str, list[int]]) -> None:
        self.generation += 1
        (self.workdir / "upstreams.conf").write_text(render_upstreams(upstreams))
        for path in INCLUDED:
            shutil.copyfile(path, self.workdir / path.name)
        (self.workdir / "nginx.conf").write_text(render_config(self.workdir, self.port, self.generation))

    def update(self, upstreams: dict[str, list[int]]) -> None:
        self._write(upstreams)
        self.proc.send_signal(signal.SIGHUP)
        self.wait_generation()

    def wait_generation(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"nginx exited ({self.proc.returncode}): {(self.workdir / 'nginx.log').read_text()[-2000:]}"
                )
            try:
                if httpx.get(f"{self.url}/_/generation", timeout=2).text == str(self.generation):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"nginx on {self.url} not serving config {self.generation} after {timeout:.0f} s")

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGQUIT)  # SIGQUIT: graceful, finish requests in flight
        self.log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
