"""Docker Swarm engine: the functions as Swarm services, behind an nginx gateway on 127.0.0.1.

    python -m loadtest.engines.swarm up --replicas 2 [--function pose-json ...]   # make swarm-up REPLICAS=2 [FN=...]
    python -m loadtest.engines.swarm scale --replicas 1     # make swarm-scale REPLICAS=1 [FN=pose-json]
    python -m loadtest.engines.swarm status
    python -m loadtest.engines.swarm down                   # make swarm-down

Why this shape (docs/containers.md): the services use `endpoint_mode: dnsrr` because Swarm's routing
mesh and virtual IPs need IPVS, which this kernel lacks; the gateway is a plain container on the
stack's attachable overlay network, not a service, because Swarm cannot publish a port on 127.0.0.1
only (moby/moby#26696); and it rebuilds its nginx upstreams from Docker's DNS every second
(swarm/nginx/gateway.sh), so every request is balanced across exactly the replicas that are ready.
Replicas reserve their 0.5 CPU like pods request it; `overcommit` reserves nothing, to run more
replicas than the cores (each is still limited to 0.5 CPU). swarm/stack.yml holds every function;
`up` deploys the ones asked for (all by default), since six functions at two replicas each reserve
six CPUs, more than a small VM has.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from cloudpose.deployment import CPU_CORES, FUNCTION_NAMES, IMAGE_REPOSITORY, PORT, SWARM_PORT

ROOT = Path(__file__).resolve().parents[2]
STACK = "cloudpose"
STACK_FILE = ROOT / "swarm" / "stack.yml"
NETWORK = "cloudpose-swarm"  # swarm/stack.yml: networks.functions.name
GATEWAY = "cloudpose-gateway"
GATEWAY_IMAGE = f"{IMAGE_REPOSITORY}/gateway:latest"
NGINX_BASE = f"{IMAGE_REPOSITORY}/nginx-base:bookworm"
CACHE = Path(os.environ.get("CACHE", Path.home() / ".cache" / "cloudpose"))
INIT_MARKER = CACHE / "swarm-initialised"  # we ran `docker swarm init`, so `down` leaves the swarm again


def docker(*args: str, env: dict[str, str] | None = None, timeout: float = 180, check: bool = True) -> str:
    proc = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    if check and proc.returncode:
        raise RuntimeError(f"docker {' '.join(args[:3])}…: {(proc.stderr or proc.stdout).strip()[-2000:]}")
    return proc.stdout


def docker_ok(*args: str) -> bool:
    return subprocess.run(["docker", *args], capture_output=True, timeout=60).returncode == 0


def service(function: str) -> str:
    return f"{STACK}_{function}"


def image(function: str) -> str:
    return f"{IMAGE_REPOSITORY}/{function}:{os.environ.get('IMAGE_TAG', 'latest')}"


def url() -> str:
    """The gateway's base URL: the port it was started on, else the default."""
    out = docker("port", GATEWAY, "8088/tcp", check=False).split()
    return f"http://{out[0]}" if out else f"http://127.0.0.1:{SWARM_PORT}"


def ensure_swarm() -> None:
    """Make this engine a Swarm manager if it is not in a swarm yet (and remember that we did)."""
    state, manager = docker("info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}").split()
    if state == "active":
        if manager != "true":
            raise RuntimeError("this Docker engine is a Swarm worker: run this on a manager")
        return
    if state != "inactive":
        raise RuntimeError(f"Swarm state is {state!r}: fix it (docker swarm leave --force) and retry")
    docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    INIT_MARKER.parent.mkdir(parents=True, exist_ok=True)
    INIT_MARKER.write_text(docker("info", "--format", "{{.Swarm.NodeID}}").strip() + "\n")


def swarm_cpus() -> float:
    """CPUs of the swarm's ready nodes: what replica reservations must fit in."""
    nodes = docker("node", "ls", "-q").split()
    info = json.loads(docker("node", "inspect", *nodes))
    return sum(n["Description"]["Resources"]["NanoCPUs"] for n in info if n["Status"]["State"] == "ready") / 1e9


def check_capacity(replicas: dict[str, int], reserve: dict[str, float]) -> None:
    """Fail fast, and say why, instead of leaving replicas pending on 'insufficient resources'."""
    need, have = sum(replicas[f] * reserve[f] for f in replicas), swarm_cpus()
    if need > have + 1e-9:
        counts = ", ".join(f"{f} {n}" for f, n in replicas.items())
        raise RuntimeError(
            f"{counts} replicas reserve {need:g} CPUs; this swarm has {have:g}. Use fewer replicas, or overcommit "
            f"(--overcommit, make ... OVERCOMMIT=1): reserve nothing, each replica still limited to {CPU_CORES} CPU"
        )


def build_gateway() -> None:
    """The nginx image: Debian's nginx-light on a local debootstrap base, plus swarm/nginx/ (cached: ~1 s)."""
    run = subprocess.run(
        [str(ROOT / "scripts" / "rootfs-image.sh"), NGINX_BASE, "nginx-light"], capture_output=True, text=True
    )
    if run.returncode:
        raise RuntimeError(f"making {NGINX_BASE} failed:\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
    docker("build", "-q", "-t", GATEWAY_IMAGE, str(ROOT / "swarm" / "nginx"), timeout=300)


def deployed() -> tuple[str, ...]:
    """The functions whose services this stack runs now, in deployment order."""
    names = set(docker("service", "ls", "--format", "{{.Name}}", "--filter", f"label=com.docker.stack.namespace={STACK}",
                       check=False).split())  # fmt: skip
    return tuple(f for f in FUNCTION_NAMES if service(f) in names)


def stack_file(functions: tuple[str, ...], folder: Path) -> Path:
    """swarm/stack.yml with only `functions` among its services (anchors resolved; ${VARS} left to docker)."""
    stack = yaml.safe_load(STACK_FILE.read_text())
    stack["services"] = {name: svc for name, svc in stack["services"].items() if name in functions}
    stack.pop("x-function", None)
    path = folder / "stack.yml"
    path.write_text(yaml.safe_dump(stack, sort_keys=False))
    return path


def start_gateway(port: int = SWARM_PORT, timeout: float = 30, functions: tuple[str, ...] | None = None) -> str:
    """(Re)start the gateway container on 127.0.0.1:`port`; returns its URL once nginx answers."""
    docker("rm", "-f", GATEWAY, check=False)
    upstreams = " ".join(f"{f}=tasks.{service(f)}" for f in functions or deployed())
    docker(
        "run", "-d", "--name", GATEWAY, "--restart", "unless-stopped", "--network", NETWORK,
        "-p", f"127.0.0.1:{port}:8088", "-e", f"UPSTREAMS={upstreams}", "-e", f"TARGET_PORT={PORT}",
        "--label", f"com.docker.stack.namespace={STACK}", GATEWAY_IMAGE,
    )  # fmt: skip
    base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/_/health", timeout=2).status_code == 200:
                return base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"gateway not answering on {base}:\n{docker('logs', '--tail', '30', GATEWAY, check=False)}")


def up(replicas: int = 2, *, functions=None, port: int = SWARM_PORT, overcommit: bool = False, timeout: float = 300) -> str:
    """Deploy `functions` (default: all) of swarm/stack.yml with `replicas` each, and the gateway; return its URL
    once all are ready. Services of other functions left from an earlier `up` are removed."""
    import tempfile

    functions = tuple(f for f in FUNCTION_NAMES if f in (functions or FUNCTION_NAMES))
    missing = [image(f) for f in functions if not docker_ok("image", "inspect", image(f))]
    if missing:
        raise RuntimeError(f"images missing: {', '.join(missing)}; run make images")
    ensure_swarm()
    reserve = 0.0 if overcommit else CPU_CORES
    check_capacity({f: replicas for f in functions}, {f: reserve for f in functions})
    build_gateway()
    env = {
        "REPLICAS": str(replicas),
        "RESERVE_CPUS": f"{reserve:g}",
        "IMAGE_TAG": os.environ.get("IMAGE_TAG", "latest"),
    }
    with tempfile.TemporaryDirectory() as folder:
        docker("stack", "deploy", "--prune", "--resolve-image", "never", "-c", str(stack_file(functions, Path(folder))),
               STACK, env=env)  # fmt: skip
    start_gateway(port, functions=functions)
    wait_ready(timeout)
    return url()


@dataclass
class Task:
    """One running replica: its slot, hostname (X-Served-By), address on the stack network and container."""

    slot: int
    name: str
    address: str
    container: str


@dataclass
class Replicas:
    desired: int
    names: list[str] = field(default_factory=list)  # the running replicas' hostnames (X-Served-By)
    addresses: list[str] = field(default_factory=list)  # their addresses on the stack network
    waiting: list[str] = field(default_factory=list)  # tasks not running yet: "slot 3: pending (no suitable node …)"
    tasks: list[Task] = field(default_factory=list)  # the running ones, whole (loadtest.failover kills one)


def status() -> dict[str, Replicas]:
    """Per function: desired replicas, and the tasks Swarm reports running (running = healthy = ready)."""
    out: dict[str, Replicas] = {}
    for fn in deployed():
        spec = json.loads(docker("service", "inspect", service(fn)))[0]["Spec"]
        rep = Replicas(spec["Mode"]["Replicated"]["Replicas"])
        ids = docker("service", "ps", "-q", "--no-trunc", "--filter", "desired-state=running", service(fn)).split()
        for task in json.loads(docker("inspect", *ids)) if ids else []:
            state, slot = task["Status"]["State"], task.get("Slot")
            if state != "running":
                rep.waiting.append(f"slot {slot}: {state} {task['Status'].get('Err', '')}".strip())
                continue
            rep.names.append(f"{service(fn)}-{slot}")
            for net in task.get("NetworksAttachments", []):
                if net["Network"]["Spec"]["Name"] == NETWORK:
                    rep.addresses.append(net["Addresses"][0].split("/")[0])
                    container = task["Status"].get("ContainerStatus", {}).get("ContainerID", "")
                    rep.tasks.append(Task(slot, rep.names[-1], rep.addresses[-1], container))
        out[fn] = rep
    return out


def parse_upstreams(text: str) -> dict[str, set[str]]:
    """Per function, the replica addresses of an upstreams.conf (as gateway.sh writes it)."""
    blocks = re.findall(r"upstream (\S+) \{(.*?)\}", text, re.S)
    return {name: set(re.findall(r"server ([\d.]+):\d+ max_fails", body)) for name, body in blocks}


def gateway_upstreams(base: str) -> dict[str, set[str]]:
    """The replica addresses nginx balances over right now, per function (its live upstreams.conf)."""
    return parse_upstreams(httpx.get(f"{base}/_/upstreams", timeout=5).text)


def wait_ready(timeout: float = 300) -> dict[str, Replicas]:
    """Until every desired replica runs (Swarm marks a task running once its /_/ready check passes) and the
    gateway balances over exactly those replicas. Fails fast when replicas cannot be placed."""
    deadline, base, stuck_since = time.monotonic() + timeout, url(), None
    while True:
        state, seen = status(), {}
        placed = all(len(r.addresses) == r.desired and not r.waiting for r in state.values())
        if placed:
            try:
                seen = gateway_upstreams(base)
            except httpx.HTTPError:
                seen = {}
            if all(seen.get(f) == set(r.addresses) for f, r in state.items()):
                return state
        unplaceable = [w for r in state.values() for w in r.waiting if "insufficient resources" in w]
        stuck_since = (stuck_since or time.monotonic()) if unplaceable else None
        if stuck_since and time.monotonic() - stuck_since > 10:
            raise RuntimeError(f"replicas cannot be placed: {unplaceable[0]} (lower REPLICAS or use overcommit)")
        if time.monotonic() > deadline:
            summary = {f: f"{len(r.addresses)}/{r.desired} running, waiting {r.waiting}" for f, r in state.items()}
            raise TimeoutError(f"swarm not ready after {timeout:.0f} s: {summary}; gateway sees {seen}")
        time.sleep(0.5)


def scale(
    function: str | None, replicas: int, *, overcommit: bool = False, timeout: float = 300
) -> dict[str, Replicas]:
    """`replicas` of `function` (None or "all": every function), then wait until ready."""
    running = deployed()
    targets = running if function in (None, "all") else (function,)
    if any(t not in running for t in targets):
        raise ValueError(f"function {function!r} is not deployed; one of {', '.join(running)} or all")
    current = status()
    wanted = {f: replicas if f in targets else current[f].desired for f in running}
    reserve = {
        f: json.loads(docker("service", "inspect", service(f)))[0]["Spec"]["TaskTemplate"]
        .get("Resources", {}).get("Reservations", {}).get("NanoCPUs", 0) / 1e9
        for f in running
    }  # fmt: skip
    if overcommit:
        reserve = {f: 0.0 for f in running}
    check_capacity(wanted, reserve)
    for fn in running:
        if fn in targets or overcommit:
            extra = ["--reserve-cpu", "0"] if overcommit else []
            docker("service", "update", "--detach", "--replicas", str(wanted[fn]), *extra, service(fn))
    return wait_ready(timeout)


def down(timeout: float = 120) -> None:
    """Remove the gateway and the stack, wait until they are gone; leave the swarm if `up` created it."""
    docker("rm", "-f", GATEWAY, check=False)
    docker("stack", "rm", STACK, check=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = docker("ps", "-aq", "--filter", f"label=com.docker.stack.namespace={STACK}", check=False).split()
        if not left and not docker("network", "ls", "-q", "--filter", f"name=^{NETWORK}$", check=False).strip():
            break
        if not left:
            docker("network", "rm", NETWORK, check=False)
        time.sleep(0.5)
    else:
        raise TimeoutError(f"stack {STACK} still being removed after {timeout:.0f} s")
    if INIT_MARKER.exists() and not docker("service", "ls", "-q", check=False).strip():
        docker("swarm", "leave", "--force", check=False)
        INIT_MARKER.unlink()


class SwarmEngine:
    """The Engine protocol (loadtest.engines) over this module's functions."""

    def __init__(self, port: int = SWARM_PORT, overcommit: bool = False, functions=None) -> None:
        self.port, self.overcommit, self.functions = port, overcommit, functions

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self, replicas: int, timeout: float = 300) -> None:
        up(replicas, functions=self.functions, port=self.port, overcommit=self.overcommit, timeout=timeout)

    def scale(self, replicas: int) -> None:
        scale(None, replicas, overcommit=self.overcommit)

    def wait_ready(self, timeout: float = 300) -> None:
        wait_ready(timeout)

    def replica_names(self) -> list[str]:
        return [name for r in status().values() for name in r.names]

    def endpoint(self, function: str) -> tuple[str, dict[str, str]]:
        """URL and extra headers for `function`: the gateway's OpenFaaS-style route."""
        return f"{self.base_url}/function/{function}", {}

    def down(self) -> None:
        down()

    stop = down  # the runner stops an engine when it is done


def _print(state: dict[str, Replicas], took: float | None = None) -> None:
    print(f"gateway {url()}" + (f" (ready in {took:.1f} s)" if took is not None else ""))
    for fn, r in state.items():
        waiting = f" waiting {r.waiting}" if r.waiting else ""
        print(f"  {fn}: {len(r.names)}/{r.desired} ready {' '.join(sorted(r.names))}{waiting}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The functions on Docker Swarm behind an nginx gateway.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "scale"):
        p = sub.add_parser(name)
        p.add_argument("--replicas", type=int, default=2)
        p.add_argument("--overcommit", action="store_true", help="reserve no CPU (more replicas than cores)")
        p.add_argument("--timeout", type=float, default=300)
    sub.choices["up"].add_argument("--port", type=int, default=SWARM_PORT)
    sub.choices["up"].add_argument("--function", action="append", choices=FUNCTION_NAMES, help="repeatable; default: all")
    sub.choices["scale"].add_argument("--function", default="all", help="a deployed function, or all")
    sub.add_parser("status")
    sub.add_parser("down")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        if args.command == "up":
            up(args.replicas, functions=args.function, port=args.port, overcommit=args.overcommit, timeout=args.timeout)
            _print(status(), time.monotonic() - started)
        elif args.command == "scale":
            state = scale(args.function, args.replicas, overcommit=args.overcommit, timeout=args.timeout)
            _print(state, time.monotonic() - started)
        elif args.command == "status":
            _print(status())
        else:
            down()
            print(f"stack {STACK} and gateway removed")
    except (RuntimeError, TimeoutError, ValueError) as exc:
        print(f"swarm {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
