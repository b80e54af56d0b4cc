"""Background processes with pid files: start in their own process group, find again, stop cleanly.

A pid file records the pid and the process's start time (from /proc), so a recycled pid is never
mistaken for ours and never signalled. Stopping signals the whole group (a server's children go
with it), waits a bounded time, then kills.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields after "pid (comm)": state is [0], starttime [19]


def start_ticks(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def alive(pid: int, ticks: int | None = None) -> bool:
    """The process exists, is not a zombie, and (if given) started at `ticks`."""
    fields = _stat(pid)
    if not fields or fields[0] in ("Z", "X"):
        _reap(pid)
        return False
    return ticks is None or int(fields[19]) == ticks


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child: init reaps it
        pass


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout: float, what: str, interval: float = 0.2, proc_alive=None,
             fatal: tuple[type[Exception], ...] = ()) -> None:  # fmt: skip
    """Poll `check()` until true, at most `timeout` seconds; fail early if `proc_alive()` turns false or
    `check` raises one of `fatal` (a definite answer, not "not up yet")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except fatal:
            raise
        except Exception:  # not up yet: connection refused, 503, a half-written file
            pass
        if proc_alive is not None and not proc_alive():
            raise RuntimeError(f"{what}: the process exited while starting")
        time.sleep(interval)
    raise TimeoutError(f"{what}: not ready after {timeout:.0f} s")


@dataclass
class Managed:
    """One background process known by its pid file under `run_dir`."""

    name: str
    run_dir: Path
    log_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def recorded(self) -> dict | None:
        try:
            return json.loads(self.pid_file.read_text())
        except (OSError, ValueError):
            return None

    def pid(self) -> int | None:
        """The pid if our process is running; a stale pid file is removed."""
        info = self.recorded()
        if not info:
            return None
        if alive(info["pid"], info.get("ticks")):
            return info["pid"]
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(self, argv: list[str], env: dict[str, str], cwd: Path) -> int:
        """Start `argv` in a new session (its own process group), output appended to the log file."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        ticks = start_ticks(proc.pid)
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": proc.pid, "ticks": ticks, "argv": argv}))
        tmp.replace(self.pid_file)
        return proc.pid

    def stop(self, grace: float = 15, sig: int = signal.SIGTERM) -> bool:
        """Signal the process group, wait up to `grace` s, then SIGKILL it; True if something was running."""
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.1)
        if alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and alive(pid):
                time.sleep(0.1)
        self._kill_stragglers(pid)
        self.pid_file.unlink(missing_ok=True)
        return True

    def _kill_stragglers(self, pgid: int) -> None:
        """Members of the group that outlived its leader (a server's helper processes)."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            fields = _stat(int(entry.name))
            if fields and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass


def group_pids(pgid: int) -> list[int]:
    """Every live process in process group `pgid`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def _address(hex_address: str) -> tuple[str, int]:
    ip_hex, port_hex = hex_address.split(":")
    raw = bytes.fromhex(ip_hex)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:  # /proc prints IPv6 as four little-endian 32-bit words
        ip = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))
    return ip, int(port_hex, 16)


def listening(pids: list[int]) -> list[tuple[str, str, int]]:
    """(protocol, address, port) of every TCP socket listening and every UDP socket bound by `pids`, from /proc."""
    inodes = set().union(*(_socket_inodes(pid) for pid in pids)) if pids else set()
    found = set()
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/net/{proto}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state, inode = parts[1], parts[3], parts[9]
            if inode in inodes and (state == "0A" or proto.startswith("udp")):
                ip, port = _address(local)
                found.add((proto.rstrip("6"), ip, port))
    return sorted(found, key=lambda item: (item[0], item[2]))


def group_listening(pid: int) -> list[tuple[str, str, int]]:
    """What `pid`'s whole process group listens on (a server's helpers included)."""
    fields = _stat(pid)
    return listening(group_pids(int(fields[2]))) if fields else []
