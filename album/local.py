"""The whole album system on this machine: `python -m album.local up | down | status`.

`up` starts, in order and each only if it is not running already (so `up` is idempotent):
PostgreSQL (Debian's, initdb'd in the cache folder), SeaweedFS (`weed mini`, S3 API), the Temporal
dev server, the functions (`python -m cloudpose.local`, unless one already serves them on its port),
the worker and the album service, then prints the album's URL. `down` stops them in reverse and
keeps the data. Every server listens on 127.0.0.1 only; every wait is bounded.

State lives in ALBUM_HOME (default ~/.cache/cloudpose/album): postgres/, s3/, temporal/, logs/,
run/ (pid files), system.json (the ports chosen at the first `up`) and secrets.json (generated
database and S3 credentials, mode 0600).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .config import DEFAULT_HOME, FUNCTION_NAMES, AlbumSettings
from .postgres import Cluster
from .processes import Managed, group_listening, port_free, port_open, wait_for

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
PARTS = ("postgres", "s3", "temporal", "functions", "worker", "api")
# The album's ports, 61000 upward: outside Linux's ephemeral range (32768-60999), beside the functions' 60000.
DEFAULT_PORTS = {
    "api": 61000, "postgres": 61001, "s3": 61002, "temporal": 61003, "temporal_ui": 61004, "temporal_http": 61005,
    "temporal_metrics": 61006, "weed_master": 61007, "weed_volume": 61008, "weed_filer": 61009, "weed_admin": 61010,
    "weed_master_grpc": 61011, "weed_volume_grpc": 61012, "weed_filer_grpc": 61013, "weed_s3_grpc": 61014,
    "weed_admin_grpc": 61015, "functions": 60000,
}  # fmt: skip
BUCKET = "album-photos"
TIMEOUTS = {"postgres": 90, "s3": 90, "temporal": 90, "functions": 180, "worker": 60, "api": 60}
# SQLite in write-ahead-log mode, synced at checkpoints: a workflow task no longer waits for an fsync
# of its own, and a crash of Temporal (not of the machine) still loses nothing.
SQLITE_PRAGMAS = ("--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal")
RETENTION = "720h"  # how long Temporal keeps a finished photo's history (the UI link, the duplicate-id refusal)


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_private(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    tmp.replace(path)


@dataclass
class LocalSystem:
    """The local system under `home`. `ports` (first `up` only) override the defaults; later runs reuse them."""

    home: Path = DEFAULT_HOME
    ports: dict[str, int] = field(default_factory=dict)
    model_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)  # ALBUM_* knobs passed to the worker and the service

    def __post_init__(self) -> None:
        self.home = Path(self.home).expanduser()
        saved = _load_json(self.home / "system.json")
        self.ports = {**DEFAULT_PORTS, **saved.get("ports", {}), **self.ports}
        self.run_dir, self.log_dir = self.home / "run", self.home / "logs"
        self.procs = {name: Managed(name, self.run_dir, self.log_dir) for name in ("s3", "temporal", "functions", "worker", "api")}
        self._secrets: dict | None = None
        self._cluster: Cluster | None = None

    # ---- what every part needs to know --------------------------------------------------------------

    @property
    def secrets(self) -> dict[str, str]:
        if self._secrets is None:
            path = self.home / "secrets.json"
            found = _load_json(path)
            if not {"db_password", "s3_access_key", "s3_secret_key"} <= found.keys():
                found = {"db_password": secrets.token_urlsafe(18), "s3_access_key": "album" + secrets.token_hex(6),
                         "s3_secret_key": secrets.token_urlsafe(30), **found}  # fmt: skip
                _write_private(path, found)
            self._secrets = found
        return self._secrets

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            self._cluster = Cluster(self.home, self.ports["postgres"], self.secrets["db_password"])
        return self._cluster

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['functions']}"

    def settings(self) -> AlbumSettings:
        """What the worker and the service are started with (tests read the same)."""
        return AlbumSettings.from_env(self.album_env(), port=self.ports["api"])

    def s3_credentials(self) -> dict[str, str]:
        return {"aws_access_key_id": self.secrets["s3_access_key"], "aws_secret_access_key": self.secrets["s3_secret_key"]}

    def album_env(self) -> dict[str, str]:
        """The worker's and the service's environment: the user's ALBUM_* knobs, then where our servers are."""
        p = self.ports
        knobs = {k: v for k, v in os.environ.items() if k.startswith("ALBUM_") and k != "ALBUM_HOME"}
        return {
            **knobs,
            "ALBUM_DATABASE_URL": self.cluster.url,
            "ALBUM_S3_ENDPOINT": f"http://127.0.0.1:{p['s3']}",
            "ALBUM_S3_BUCKET": BUCKET,
            "AWS_ACCESS_KEY_ID": self.secrets["s3_access_key"],
            "AWS_SECRET_ACCESS_KEY": self.secrets["s3_secret_key"],
            "ALBUM_TEMPORAL_ADDRESS": f"127.0.0.1:{p['temporal']}",
            "ALBUM_TEMPORAL_UI_URL": f"http://127.0.0.1:{p['temporal_ui']}",
            "ALBUM_GATEWAY_URL": self.gateway_url,
            "HOST": "127.0.0.1",
            "PORT": str(p["api"]),
            **self.extra_env,
        }

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ALBUM_", "PG"))}
        return {**base, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **extra}

    # ---- the parts ------------------------------------------------------------------------------------

    def _start_postgres(self) -> None:
        cluster = self.cluster
        if cluster.running():
            return
        self._claim("postgres", [self.ports["postgres"]])
        cluster.start(timeout=TIMEOUTS["postgres"])

    def _weed_argv(self) -> list[str]:
        p, sock = self.ports, self.home / "s3" / "sockets"
        return [
            # -logtostderr: its log goes to the process log in the cache folder, not to files in /tmp
            str(VENV_BIN / "weed"), "-logtostderr", "mini", f"-dir={self.home / 's3' / 'data'}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
            f"-s3.port={p['s3']}", "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.port.grpc={p['weed_s3_grpc']}",
            f"-master.port={p['weed_master']}", f"-master.port.grpc={p['weed_master_grpc']}",
            f"-volume.port={p['weed_volume']}", f"-volume.port.grpc={p['weed_volume_grpc']}",
            f"-filer.port={p['weed_filer']}", f"-filer.port.grpc={p['weed_filer_grpc']}",
            f"-admin.port={p['weed_admin']}", f"-admin.port.grpc={p['weed_admin_grpc']}",
            f"-filer.localSocket={sock / 'filer.sock'}", f"-s3.localSocket={sock / 's3.sock'}",
            f"-bucket={BUCKET}", "-master.volumeSizeLimitMB=256",
        ]  # fmt: skip

    def _start_s3(self) -> None:
        proc = self.procs["s3"]
        if proc.pid():
            return
        self._claim("s3", [v for k, v in self.ports.items() if k == "s3" or k.startswith("weed_")])
        (self.home / "s3" / "data").mkdir(parents=True, exist_ok=True)
        (self.home / "s3" / "sockets").mkdir(parents=True, exist_ok=True)
        env = self._env({"AWS_ACCESS_KEY_ID": self.secrets["s3_access_key"],
                         "AWS_SECRET_ACCESS_KEY": self.secrets["s3_secret_key"]})  # fmt: skip
        proc.start(self._weed_argv(), env, self.home / "s3")
        from .store import Store

        store = Store(f"http://127.0.0.1:{self.ports['s3']}", BUCKET, credentials=self.s3_credentials(), timeout=5)
        wait_for(lambda: store.ensure_bucket() is None, TIMEOUTS["s3"], "SeaweedFS S3", 0.5, lambda: proc.pid() is not None)

    def _start_temporal(self) -> None:
        proc = self.procs["temporal"]
        if proc.pid():
            return
        p = self.ports
        self._claim("temporal", [p["temporal"], p["temporal_ui"], p["temporal_http"], p["temporal_metrics"]])
        (self.home / "temporal").mkdir(parents=True, exist_ok=True)
        argv = [
            str(VENV_BIN / "temporal"), "server", "start-dev", "--ip", "127.0.0.1",
            "--port", str(p["temporal"]), "--ui-port", str(p["temporal_ui"]), "--http-port", str(p["temporal_http"]),
            "--metrics-port", str(p["temporal_metrics"]), "--db-filename", str(self.home / "temporal" / "temporal.db"),
            "--ui-disable-news-fetch", "--log-level", "warn", "--namespace", self.settings().temporal_namespace,
            *SQLITE_PRAGMAS,
        ]  # fmt: skip
        proc.start(argv, self._env({}), self.home / "temporal")
        wait_for(self._temporal_ready, TIMEOUTS["temporal"], "Temporal", 0.5, lambda: proc.pid() is not None)
        self._temporal_cli("operator", "namespace", "update", "--namespace", self.settings().temporal_namespace,
                           "--retention", RETENTION)  # fmt: skip

    def _temporal_cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """The `temporal` CLI against our server. The launcher asks through it rather than the Python SDK,
        whose native runtime may crash a short-lived process at exit."""
        return subprocess.run([str(VENV_BIN / "temporal"), *args, "--address", f"127.0.0.1:{self.ports['temporal']}"],
                              capture_output=True, text=True, timeout=30, check=check)  # fmt: skip

    def _temporal_ready(self) -> bool:
        return "SERVING" in self._temporal_cli("operator", "cluster", "health", check=False).stdout

    def _functions_ready(self) -> bool:
        r = httpx.get(f"{self.gateway_url}/_/ready", timeout=2)
        if r.status_code != 200:
            return False
        served = set(r.json().get("functions", {}))
        missing = set(FUNCTION_NAMES) - served
        if missing:
            raise FunctionsMissing(f"{self.gateway_url} serves {sorted(served)}, not {sorted(missing)}")
        return True

    def _start_functions(self) -> None:
        proc = self.procs["functions"]
        if proc.pid():
            return
        if port_open(self.ports["functions"]):  # someone's `make up`: use it if it serves every function
            wait_for(self._functions_ready, 30, f"the functions already on port {self.ports['functions']}",
                     fatal=(FunctionsMissing,))  # fmt: skip
            return
        settings = self.settings()
        body_mb = math.ceil(settings.max_upload_mb * 4 / 3 + 1)  # base64 of the largest upload, plus the JSON
        env = {"PORT": str(self.ports["functions"]), "HOST": "127.0.0.1", "POSE_MAX_BODY_MB": str(max(10, body_mb))}
        if self.model_dir:
            env["POSE_MODEL_DIR"] = str(self.model_dir)
        proc.start([sys.executable, "-m", "cloudpose.local"], self._env(env), ROOT)
        try:
            wait_for(self._functions_ready, TIMEOUTS["functions"], "the functions (cloudpose.local)", 0.3,
                     lambda: proc.pid() is not None, fatal=(FunctionsMissing,))  # fmt: skip
        except Exception:
            proc.stop()
            raise

    def _worker_polling(self, pid: int) -> bool:
        """The worker `pid` polls our task queue for both workflow and activity tasks."""
        s = self.settings()
        out = self._temporal_cli("task-queue", "describe", "--task-queue", s.task_queue, "--namespace",
                                 s.temporal_namespace, "-o", "json", check=False)  # fmt: skip
        pollers = json.loads(out.stdout or "{}").get("pollers") or []
        kinds = {p.get("taskQueueType") for p in pollers if str(p.get("identity", "")).startswith(f"{pid}@")}
        return {"workflow", "activity"} <= kinds

    def _start_worker(self) -> None:
        proc = self.procs["worker"]
        if proc.pid():
            return
        pid = proc.start([sys.executable, "-m", "album.worker"], self._env(self.album_env()), ROOT)
        wait_for(lambda: self._worker_polling(pid), TIMEOUTS["worker"], "the album worker", 0.5,
                 lambda: proc.pid() is not None)  # fmt: skip

    def _start_api(self) -> None:
        proc = self.procs["api"]
        if proc.pid():
            return
        self._claim("api", [self.ports["api"]])
        proc.start([sys.executable, "-m", "album.api"], self._env(self.album_env()), ROOT)
        wait_for(lambda: httpx.get(f"{self.url}/_/ready", timeout=10).status_code == 200, TIMEOUTS["api"],
                 "the album service", 0.3, lambda: proc.pid() is not None)  # fmt: skip

    def _claim(self, part: str, ports: list[int], patience: float = 5) -> None:
        """Fail clearly if another program holds one of `ports` (after `patience` s: a server we just
        stopped may take a moment to let go of its sockets)."""
        deadline = time.monotonic() + patience
        taken = [p for p in ports if not port_free(p)]
        while taken and time.monotonic() < deadline:
            time.sleep(0.2)
            taken = [p for p in ports if not port_free(p)]
        if taken:
            raise PortTaken(f"{part}: port(s) {taken} already in use on 127.0.0.1 by another program; "
                            f"free them, or start with another ALBUM_HOME and --port-base")  # fmt: skip

    # ---- the commands -----------------------------------------------------------------------------

    def start(self, part: str) -> None:
        getattr(self, f"_start_{part}")()

    def stop(self, part: str) -> bool:
        if part == "postgres":
            return self.cluster.stop() if self.cluster.initialised() else False
        stopped = self.procs[part].stop(grace=20 if part in ("temporal", "s3") else 10)
        if part == "s3":
            self._remove_weed_sockets()
        return stopped

    def _remove_weed_sockets(self) -> None:
        """weed mini leaves its gRPC Unix sockets in /tmp, named by port: remove ours."""
        for key in ("weed_master_grpc", "weed_volume_grpc", "weed_filer_grpc", "weed_s3_grpc", "weed_admin_grpc", "s3"):
            for path in Path("/tmp").glob(f"seaweedfs-*-{self.ports[key]}.sock"):
                path.unlink(missing_ok=True)

    def up(self, log=print) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        _write_private(self.home / "system.json", {"ports": self.ports})
        for part in PARTS:
            started = time.monotonic()
            was_running = self.running(part)
            self.start(part)
            log(f"  {part:<10} {'already running' if was_running else f'started in {time.monotonic() - started:.1f} s'}")

    def down(self, log=print) -> None:
        for part in reversed(PARTS):
            log(f"  {part:<10} {'stopped' if self.stop(part) else 'not running'}")

    def running(self, part: str) -> bool:
        if part == "postgres":
            try:
                return self.cluster.running()
            except FileNotFoundError:
                return False
        if part == "functions" and not self.procs["functions"].pid():
            return port_open(self.ports["functions"])
        return self.procs[part].pid() is not None

    def status(self) -> dict[str, dict]:
        p = self.ports
        where = {
            "postgres": f"127.0.0.1:{p['postgres']}", "s3": f"http://127.0.0.1:{p['s3']}",
            "temporal": f"127.0.0.1:{p['temporal']} (UI http://127.0.0.1:{p['temporal_ui']})",
            "functions": self.gateway_url, "worker": f"task queue {os.environ.get('ALBUM_TASK_QUEUE') or AlbumSettings().task_queue}",
            "api": self.url,
        }  # fmt: skip
        out = {}
        for part in PARTS:
            try:
                pid = self.cluster.pid() if part == "postgres" else self.procs[part].pid()
            except FileNotFoundError:  # PostgreSQL not installed
                pid = None
            owned = part == "postgres" or pid is not None
            running = self.running(part)
            out[part] = {"running": running, "pid": pid if owned else None, "where": where[part],
                         "external": part == "functions" and running and pid is None,
                         "listening": [f"{ip}:{port}" for _, ip, port in group_listening(pid)] if pid and running else []}  # fmt: skip
        return out


class PortTaken(RuntimeError):
    pass


class FunctionsMissing(RuntimeError):
    """The functions' server answers but lacks a function the pipeline calls."""


def ports_from_base(base: int) -> dict[str, int]:
    """Every album port moved to start at `base` (same order as the defaults); the functions' port stays."""
    return {k: base + (v - DEFAULT_PORTS["api"]) if k != "functions" else v for k, v in DEFAULT_PORTS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("ALBUM_HOME", DEFAULT_HOME)))
    parser.add_argument("--port-base", type=int, help="first up only: the album's ports from here (default 61000)")
    parser.add_argument("--functions-port", type=int, help="first up only: the functions' port (default 60000)")
    args = parser.parse_args(argv)
    ports = ports_from_base(args.port_base) if args.port_base else {}
    if args.functions_port:
        ports["functions"] = args.functions_port
    system = LocalSystem(args.home, ports)
    if args.command == "status":
        for part, info in system.status().items():
            state = "running" if info["running"] else "stopped"
            extra = f" pid {info['pid']}" if info["pid"] else (" (not ours)" if info["external"] else "")
            print(f"  {part:<10} {state:<8} {info['where']}{extra}")
            if info["listening"]:
                print(f"  {'':<10} listening on {', '.join(info['listening'])}")
        return 0 if all(i["running"] for i in system.status().values()) else 3
    if args.command == "down":
        system.down()
        print(f"Stopped. Data kept in {system.home}")
        return 0
    print(f"Starting the album system (data in {system.home}):", flush=True)
    try:
        system.up(log=lambda line: print(line, flush=True))
    except Exception as exc:
        print(f"\nFailed: {exc}\nLogs: {system.log_dir}", file=sys.stderr)
        return 1
    p = system.ports
    print(f"\nAlbums on {system.url}/  (API docs {system.url}/docs)")
    print(f"Temporal UI http://127.0.0.1:{p['temporal_ui']}/  ·  functions {system.gateway_url}  ·  logs {system.log_dir}")
    print("Stop with: python -m album.local down (the data stays)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
