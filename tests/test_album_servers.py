"""The album's servers, real and on loopback: PostgreSQL (Debian's, initdb'd by album.postgres as an
unprivileged user), SeaweedFS (`weed mini`, S3 through boto3) and the Temporal dev server, each started by
album.local exactly as `python -m album.local up` starts them, in a throw-away home on free ports.

Covers: every port each server opens is on 127.0.0.1; migrations apply once (also when two processes race);
queries are parameterised; a FAILED write cannot undo a result; S3 enforces the generated credentials;
a restarted server keeps its data; Temporal refuses a second start of the same workflow id.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import uuid
from pathlib import Path

import psycopg
import pytest

from album import keys
from album.db import Database, migrate, result_row
from album.local import DEFAULT_PORTS, LocalSystem
from album.postgres import Cluster, bin_dir
from album.processes import free_port, group_listening
from album.store import ObjectMissing, Store

pytestmark = pytest.mark.timeout(300)


def temp_home(prefix: str) -> Path:
    """A home the database's system user can enter (mode 0711), as ~/.cache/cloudpose/album is for a user."""
    home = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    home.chmod(0o711)
    return home


def free_ports() -> dict[str, int]:
    ports: dict[str, int] = {}
    while len(set(ports.values())) < len(DEFAULT_PORTS):
        ports = {name: free_port() for name in DEFAULT_PORTS}
    return ports


@pytest.fixture(scope="module")
def servers():
    if bin_dir() is None:
        pytest.skip("PostgreSQL is not installed: apt-get install -y postgresql")
    home = temp_home("album-servers-")
    system = LocalSystem(home, free_ports())
    try:
        for part in ("postgres", "s3", "temporal"):
            system.start(part)
        yield system
    finally:
        for part in ("temporal", "s3", "postgres"):
            system.stop(part)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture()
def db(servers):
    database = Database(servers.cluster.url, 4).open()
    database.migrate()
    yield database
    database.close()


def store_of(system: LocalSystem, **credentials) -> Store:
    creds = credentials or system.s3_credentials()
    return Store(f"http://127.0.0.1:{system.ports['s3']}", "album-photos", credentials=creds, timeout=10)


def test_every_server_listens_on_loopback_only(servers):
    pids = {"postgres": servers.cluster.pid(), "s3": servers.procs["s3"].pid(), "temporal": servers.procs["temporal"].pid()}
    for part, pid in pids.items():
        sockets = group_listening(pid)
        assert sockets, f"{part} listens on nothing?"
        assert all(ip == "127.0.0.1" for _, ip, _ in sockets), f"{part}: {sockets}"
    assert ("tcp", "127.0.0.1", servers.ports["postgres"]) in group_listening(pids["postgres"])
    s3_ports = {port for _, _, port in group_listening(pids["s3"])}
    assert {servers.ports[k] for k in DEFAULT_PORTS if k == "s3" or k.startswith("weed_")} == s3_ports, \
        "weed mini opened a port we did not choose"
    temporal_ports = {port for _, _, port in group_listening(pids["temporal"])}
    assert {servers.ports[k] for k in ("temporal", "temporal_ui", "temporal_http", "temporal_metrics")} <= temporal_ports


def test_postgres_runs_as_an_unprivileged_user_with_passwords(servers):
    cluster = servers.cluster
    owner = Path(f"/proc/{cluster.pid()}").stat().st_uid
    assert owner != 0, "PostgreSQL must not run as root"
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster.url.replace(servers.secrets["db_password"], "wrong"), connect_timeout=5)
    assert (cluster.socket_dir / f".s.PGSQL.{servers.ports['postgres']}").exists(), "the Unix socket is in its own folder"


def test_migrations_apply_once_even_when_two_processes_race(servers):
    """A fresh database, two connections migrating at once: one applies, the other sees it done."""
    name = f"race_{uuid.uuid4().hex[:8]}"
    admin = servers.cluster.url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = servers.cluster.url.rsplit("/", 1)[0] + f"/{name}"
    results: list[list[str]] = []

    def run() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            results.append(migrate(conn))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(map(len, results)) == [0, 1], results
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == 1
        assert migrate(conn) == []
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}"')


def test_queries_are_parameterised_and_results_are_not_undone(db):
    hostile = "x'); DROP TABLE photos; --"
    album = db.create_album(keys.new_id(), hostile)
    assert db.get_album(album["id"])["name"] == hostile
    ids = []
    for i in range(5):
        pid = keys.new_id()
        db.insert_photo(pid, album["id"], f"{hostile}{i}.jpg", "image/jpeg", keys.original_key(album["id"], pid), 10)
        ids.append(pid)
    first, cursor = db.list_photos(album["id"], 2)
    second, cursor2 = db.list_photos(album["id"], 2, cursor)
    third, end = db.list_photos(album["id"], 2, cursor2)
    assert [r["id"] for r in first + second + third] == ids[::-1] and end is None
    photo = {"id": ids[0], "album_id": album["id"], "content_type": "image/jpeg", "original_key": "k"}
    db.store_result(photo, result_row({"format": "JPEG"}, [{"label": "cat", "accuracy": 0.9}], {"key": "t"}, {}), "run-1")
    db.record_failure(photo, "a late duplicate failure", "run-2")
    row = db.get_photo(ids[0])
    assert row["status"] == "SUCCEEDED" and row["error"] is None and row["labels"] == [{"label": "cat", "accuracy": 0.9}]
    assert db.status_counts(album["id"]) == {"RUNNING": 4, "SUCCEEDED": 1, "FAILED": 0}


def test_store_round_trip_and_credentials_enforced(servers):
    store = store_of(servers)
    store.ensure_bucket()
    store.ensure_bucket()  # idempotent
    data = bytes(range(256)) * 4000
    store.put("albums/x/originals/y", data, "image/jpeg")
    assert store.get("albums/x/originals/y") == data and store.exists("albums/x/originals/y")
    chunks, info = store.open("albums/x/originals/y")
    assert b"".join(chunks) == data and info["length"] == len(data) and info["content_type"] == "image/jpeg"
    with pytest.raises(ObjectMissing):
        store.get("albums/x/originals/missing")
    intruder = store_of(servers, aws_access_key_id="nobody", aws_secret_access_key="wrong-secret")
    with pytest.raises(Exception, match="InvalidAccessKeyId|AccessDenied|SignatureDoesNotMatch|403"):
        intruder.get("albums/x/originals/y")


def test_restarted_servers_keep_their_data(servers, db):
    """A pool opened before the restart goes on working too (connections are checked on checkout)."""
    album = db.create_album(keys.new_id(), "kept")
    store_of(servers).put("albums/kept/originals/1", b"still here", "application/octet-stream")
    for part in ("postgres", "s3"):
        assert servers.stop(part)
        assert not servers.running(part)
        servers.start(part)
    assert db.get_album(album["id"])["name"] == "kept"
    assert store_of(servers).get("albums/kept/originals/1") == b"still here"


def test_temporal_refuses_a_second_start_of_the_same_workflow_id(servers):
    from temporalio.client import Client
    from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
    from temporalio.exceptions import WorkflowAlreadyStartedError

    async def run() -> None:
        client = await Client.connect(f"127.0.0.1:{servers.ports['temporal']}")
        photo_id = keys.new_id()
        options = dict(id=photo_id, task_queue=f"nobody-polls-{photo_id}", id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                       id_conflict_policy=WorkflowIDConflictPolicy.FAIL)  # fmt: skip
        first = await client.start_workflow("PhotoPipeline", {"photo_id": photo_id}, **options)
        with pytest.raises(WorkflowAlreadyStartedError):
            await client.start_workflow("PhotoPipeline", {"photo_id": photo_id}, **options)
        await first.terminate("test over")
        with pytest.raises(WorkflowAlreadyStartedError):  # closed, and still refused: never run twice
            await client.start_workflow("PhotoPipeline", {"photo_id": photo_id}, **options)

    asyncio.run(asyncio.wait_for(run(), 60))


def test_cluster_outside_a_closed_home_goes_to_var_cache():
    """As root, a home under a folder others cannot enter (like /root) gets its cluster in /var/cache, linked."""
    import os

    if os.geteuid() != 0:
        pytest.skip("only root needs the system user and the shared folder")
    outer = Path(tempfile.mkdtemp(prefix="album-closed-", dir="/tmp"))  # mode 0700, like /root
    try:
        cluster = Cluster(outer / "album", 1, "pw")
        assert str(cluster.dir).startswith("/var/cache/cloudpose/album-postgres-")
        assert (outer / "album" / "postgres").is_symlink() and (outer / "album" / "postgres").resolve() == cluster.dir
    finally:
        shutil.rmtree(outer, ignore_errors=True)
