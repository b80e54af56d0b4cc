"""Emulate a remote link for real: a network namespace joined to this host by a link with delay and a rate limit.

    sudo python -m loadtest.netem up [--delay 40] [--rate 20]     # until Ctrl-C; prints how to serve inside

Both ends are real kernel TCP stacks; only the wire between them is emulated, per packet and per direction
(so the round trip is 2 × delay), like `tc netem delay D rate R` on both ends of a veth pair. Two ways:

- `netem`: a veth pair with `tc qdisc netem` on each end, where the kernel has sch_netem;
- `tun`: where it does not (e.g. kernels built without CONFIG_NET_SCH_NETEM, as on this project's VMs), a
  point-to-point pair of TUN devices, one per namespace, and a small forwarder process that holds each packet
  for its serialisation time at the rate (FIFO, 1000-packet queue, tail drop) plus the delay — netem's model,
  in user space (as mahimahi's link shells do).

Needs root and iproute2. Namespaces are named `<prefix><pid>`; ones left by dead processes are deleted first.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import os
import queue
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PREFIX = "cp-off-"
QUEUE_LIMIT = 1000  # packets, as netem's default limit
CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


@dataclass(frozen=True)
class Link:
    ns: str  # namespace name: serve inside with `ip netns exec <ns> ...`
    host_ip: str  # this side's address
    ns_ip: str  # the namespace's address: what clients connect to
    delay_ms: float  # one way; the round trip adds 2 × delay_ms
    rate_mbit: float  # each direction
    backend: str  # "netem" or "tun"

    @property
    def prefix(self) -> list[str]:
        """Command prefix that runs a program inside the namespace (e.g. ServerProcess(prefix=...))."""
        return ["ip", "netns", "exec", self.ns]


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


def unsupported_reason() -> str | None:
    """Why links cannot be emulated here (None if they can): root and working `ip netns` are required."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and tc)"
    probe = f"{PREFIX}probe-{os.getpid()}"
    try:
        made = ip("netns", "add", probe, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"iproute2 not usable ({exc}); install iproute2"
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    if not netem_available() and not Path("/dev/net/tun").exists():
        return "neither tc netem (CONFIG_NET_SCH_NETEM) nor /dev/net/tun (CONFIG_TUN) is available"
    return None


def netem_available() -> bool:
    """Probe sch_netem on a throwaway veth pair (the kernel may simply not have it)."""
    a, b = f"cpn{os.getpid() % 100000}a", f"cpn{os.getpid() % 100000}b"
    if ip("link", "add", a, "type", "veth", "peer", "name", b, check=False).returncode != 0:
        return False
    try:
        tc = subprocess.run(["tc", "qdisc", "add", "dev", a, "root", "netem", "delay", "1ms"], capture_output=True)
        return tc.returncode == 0
    except OSError:
        return False
    finally:
        ip("link", "del", a, check=False)


def remove_stale(prefix: str = PREFIX) -> list[str]:
    """Delete namespaces `<prefix><pid>` whose process is gone (left by a killed run); returns their names."""
    out = ip("netns", "list", check=False).stdout
    stale = []
    for name in re.findall(rf"^({re.escape(prefix)}\S+)", out, re.M):
        pid = re.fullmatch(rf"{re.escape(prefix)}(\d+)", name)
        if pid and _alive(int(pid[1])):
            continue  # a live run's namespace
        ip("netns", "del", name, check=False)
        stale.append(name)
    return stale


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is gone
    except (OSError, IndexError):
        return False


def addresses(pid: int) -> tuple[str, str]:
    """A private /30 in 10.213.0.0/16 picked by pid: (host side, namespace side)."""
    base = (pid % 16384) * 4
    return f"10.213.{base // 256}.{base % 256 + 1}", f"10.213.{base // 256}.{base % 256 + 2}"


@contextmanager
def emulated_link(delay_ms: float = 40, rate_mbit: float = 20, backend: str = "auto") -> Iterator[Link]:
    """Create the namespace and the link; always remove both on exit (also on errors)."""
    pid = os.getpid()
    remove_stale()
    if backend == "auto":
        backend = "netem" if netem_available() else "tun"
    host_ip, ns_ip = addresses(pid)
    link = Link(f"{PREFIX}{pid}", host_ip, ns_ip, delay_ms, rate_mbit, backend)
    hdev, ndev = f"cpo{pid}h", f"cpo{pid}n"
    forwarder: subprocess.Popen | None = None
    ip("netns", "add", link.ns)
    try:
        ip("-n", link.ns, "link", "set", "lo", "up")
        if backend == "netem":
            ip("link", "add", hdev, "type", "veth", "peer", "name", ndev, "netns", link.ns)
            ip("addr", "add", f"{host_ip}/30", "dev", hdev)
            ip("-n", link.ns, "addr", "add", f"{ns_ip}/30", "dev", ndev)
            shape = ["netem", "delay", f"{delay_ms}ms", "rate", f"{rate_mbit}mbit", "limit", str(QUEUE_LIMIT)]
            for tc, dev in ((["tc"], hdev), (["tc", "-n", link.ns], ndev)):  # egress of each end: both directions
                subprocess.run([*tc, "qdisc", "add", "dev", dev, "root", *shape], check=True, capture_output=True)
        else:
            args = ["_forward", link.ns, hdev, ndev, str(delay_ms), str(rate_mbit)]
            forwarder = subprocess.Popen(
                [sys.executable, "-m", "loadtest.netem", *args],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parents[1], text=True,
            )  # fmt: skip
            if forwarder.stdout.readline().strip() != "ready":  # type: ignore[union-attr]
                raise RuntimeError("link forwarder failed to start (see its stderr)")
            ip("addr", "add", host_ip, "peer", ns_ip, "dev", hdev)
            ip("-n", link.ns, "addr", "add", ns_ip, "peer", host_ip, "dev", ndev)
        ip("link", "set", hdev, "up")
        ip("-n", link.ns, "link", "set", ndev, "up")
        yield link
    finally:
        if forwarder is not None:
            forwarder.terminate()
            try:
                forwarder.wait(5)
            except subprocess.TimeoutExpired:
                forwarder.kill()
                forwarder.wait(5)
        ip("netns", "del", link.ns, check=False)  # takes its end of the veth pair (and so the pair) with it
        ip("link", "del", hdev, check=False)


# --- the user-space link (tun backend) -------------------------------------------------------------------------


def _open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def _open_tun_in(ns: str, name: str) -> int:
    """A TUN device is created in the namespace of the thread that opens it: step in, open, step back."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/self/ns/net") as home, open(f"/var/run/netns/{ns}") as target:
        if libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {ns}")
        try:
            return _open_tun(name)
        finally:
            if libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back home")


def departure(now: float, busy_until: float, size: int, rate_bps: float) -> float:
    """When a packet of `size` bytes has left a `rate_bps` wire that is busy until `busy_until` (FIFO)."""
    return max(now, busy_until) + size * 8 / rate_bps


def _direction(src: int, dst: int, delay_s: float, rate_bps: float) -> None:
    """Read packets from `src`, deliver each to `dst` after its serialisation at the rate plus the delay."""
    held: queue.Queue[tuple[float, bytes]] = queue.Queue()

    def deliver() -> None:
        while True:
            due, packet = held.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                os.write(dst, packet)
            except OSError:
                pass  # device down or namespace going away: the packet is lost, as on a wire

    threading.Thread(target=deliver, daemon=True).start()
    busy_until = 0.0
    while True:
        packet = os.read(src, 65536)
        if held.qsize() >= QUEUE_LIMIT:
            continue  # tail drop
        busy_until = departure(time.monotonic(), busy_until, len(packet), rate_bps)
        held.put((busy_until + delay_s, packet))


def _forward(ns: str, hdev: str, ndev: str, delay_ms: float, rate_mbit: float) -> None:
    try:  # a wire is not slowed by busy CPUs: keep other work on a shared machine from delaying packets
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    except OSError:
        pass
    host, inside = _open_tun(hdev), _open_tun_in(ns, ndev)
    for src, dst in ((host, inside), (inside, host)):
        args = (src, dst, delay_ms / 1e3, rate_mbit * 1e6)
        threading.Thread(target=_direction, args=args, daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()  # returns when the parent closes the pipe or dies: then the devices go with our fds


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_forward"]:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        _forward(argv[1], argv[2], argv[3], float(argv[4]), float(argv[5]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up"])
    parser.add_argument("--delay", type=float, default=40, help="one-way delay in ms (round trip = 2 ×)")
    parser.add_argument("--rate", type=float, default=20, help="Mbit/s in each direction")
    parser.add_argument("--backend", choices=["auto", "netem", "tun"], default="auto")
    args = parser.parse_args(argv)
    if reason := unsupported_reason():
        raise SystemExit(f"cannot emulate a link here: {reason}")
    with emulated_link(args.delay, args.rate, args.backend) as link:
        print(f"namespace {link.ns} at {link.ns_ip} ({link.backend}: {link.delay_ms:g} ms each way, "
              f"{link.rate_mbit:g} Mbit/s); serve inside it with:\n"
              f"  ip netns exec {link.ns} env HOST={link.ns_ip} PORT=60000 .venv/bin/cloudpose-local\n"
              f"then: cloudpose-offload --endpoint link=http://{link.ns_ip}:60000/api/pose_estimation\n"
              "Ctrl-C removes the namespace.", flush=True)  # fmt: skip
        for sig in (signal.SIGINT, signal.SIGTERM):  # also when started in the background (SIGINT ignored)
            signal.signal(sig, signal.default_int_handler)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
