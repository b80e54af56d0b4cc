"""A private PostgreSQL cluster in a cache folder, from Debian's binaries, as an unprivileged user.

PostgreSQL refuses to run as root, so as root the cluster belongs to a system user (`cloudpose-db`,
created once with useradd); as anyone else, to that user. It listens on 127.0.0.1 only, on the port
it is given, with its Unix socket inside its own folder, and uses password (SCRAM) authentication.

As root the cache folder is usually under /root, which other users cannot enter: then the cluster
lives in /var/cache/cloudpose/ and `<home>/postgres` is a symbolic link to it.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

SYSTEM_USER = "cloudpose-db"
SUPERUSER = "album"
DATABASE = "album"
SHARED_ROOT = Path("/var/cache/cloudpose")
INSTALL_HINT = "apt-get install -y postgresql"


def bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with initdb, or wherever initdb is on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def reachable_by_others(path: Path) -> bool:
    """Every folder above `path` can be entered by another user (world or group execute bit)."""
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.stat().st_mode & (stat.S_IXOTH):
            return False
    return True


def ensure_system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        return pwd.getpwnam(SYSTEM_USER)


@dataclass
class Cluster:
    home: Path  # the album's cache folder
    port: int
    password: str

    def __post_init__(self) -> None:
        found = bin_dir()
        if found is None:
            raise FileNotFoundError(f"PostgreSQL's initdb not found: {INSTALL_HINT}")
        self.bin = found
        self.as_root = os.geteuid() == 0
        self.user = ensure_system_user() if self.as_root else pwd.getpwuid(os.geteuid())
        self.dir = self._folder()
        self.data = self.dir / "data"
        self.socket_dir = self.dir / "socket"
        self.log = self.dir / "postgres.log"

    def _folder(self) -> Path:
        link = self.home / "postgres"
        if not self.as_root or reachable_by_others(self.home):
            if link.is_symlink():
                return link.resolve()
            return link
        target = SHARED_ROOT / f"album-postgres-{hashlib.sha256(str(self.home.resolve()).encode()).hexdigest()[:12]}"
        if not link.is_symlink() and not link.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target)
        return target

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, args: list[str], timeout: float = 90, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            command = ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}", "--clear-groups", *command]
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(self.dir)}
        result = subprocess.run(command, env=env, cwd=self.dir, capture_output=True, text=True, timeout=timeout,
                                start_new_session=True)  # fmt: skip
        if check and result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
        return result

    def _own(self, path: Path, mode: int) -> None:
        os.chmod(path, mode)
        if self.as_root:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def init(self) -> None:
        """initdb once (SCRAM passwords, UTF-8), then point postgresql.conf at our own settings file."""
        for folder in (self.dir, self.socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
            self._own(folder, 0o700)
        if self.initialised():
            return
        pwfile = self.dir / "initdb.pw"
        pwfile.write_text(self.password + "\n")
        self._own(pwfile, 0o600)
        try:
            self._run(["initdb", "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}", "--auth=scram-sha-256",
                       "-E", "UTF8", "--locale=C.UTF-8"])  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\ninclude_if_exists = 'album.conf'  # written by album.postgres at each start\n")

    def _write_settings(self) -> None:
        conf = self.data / "album.conf"
        conf.write_text(
            "# Written by album.postgres before each start: loopback only, our port, our socket folder.\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{self.socket_dir}'\n"
            "max_connections = 100\n"
        )
        self._own(conf, 0o600)

    def running(self) -> bool:
        return self.initialised() and self._run(["pg_ctl", "-D", str(self.data), "status"], check=False).returncode == 0

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def start(self, timeout: int = 60) -> None:
        self.init()
        if self.running():
            return
        self._write_settings()
        self._run(["pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(timeout), "start"], timeout=timeout + 10)
        self.ensure_database()

    def ensure_database(self) -> None:
        admin = f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))

    def stop(self, timeout: int = 60) -> bool:
        if not self.running():
            return False
        self._run(["pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", str(timeout), "stop"], timeout=timeout + 10)
        return True
