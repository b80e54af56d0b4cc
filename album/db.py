"""PostgreSQL: the migrations, and every query the album service and the worker run (psycopg 3).

Every value travels as a query parameter; column names come only from the constants below, composed
with psycopg.sql. Writes are upserts by photo id, so a step Temporal retries leaves the same row.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
MIGRATION_LOCK = 0x616C62756D  # pg_advisory_xact_lock key: the service and the worker may start together
STATUSES = ("RUNNING", "SUCCEEDED", "FAILED")
FINAL = ("SUCCEEDED", "FAILED")
# What the store step writes (from metadata, thumbnail and labels); the people step writes its own two.
RESULT_COLUMNS = (
    "labels", "thumbnail_key", "thumbnail_width", "thumbnail_height", "creation_time",
    "latitude_degrees", "latitude_minutes", "latitude_seconds", "latitude_direction",
    "longitude_degrees", "longitude_minutes", "longitude_seconds", "longitude_direction",
    "make", "model", "width", "height", "file_size", "format", "timings",
)  # fmt: skip
JSON_COLUMNS = {"labels", "people", "timings"}


class MigrationChanged(RuntimeError):
    """A migration that was applied has been edited since: add a new file instead."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations(folder: Path = MIGRATIONS) -> list[Migration]:
    """The NNN_name.sql files, in order; a gap or a duplicate number is an error, not a surprise later."""
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = MIGRATION_NAME.match(path.name)
        if not match:
            raise ValueError(f"{path.name}: migrations are named NNN_lower_case.sql")
        found.append(Migration(int(match.group(1)), path.stem, path.read_text()))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise ValueError(f"migrations must be numbered 001, 002, ... without gaps: {versions}")
    return found


def migrate(conn: psycopg.Connection, folder: Path = MIGRATIONS) -> list[str]:
    """Apply the migrations not yet recorded in schema_migrations, each in its own transaction; returns their names.

    Idempotent and safe to run from several processes at once (an advisory lock serialises them)."""
    applied = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = conn.cursor(row_factory=tuple_row).execute("SELECT version, checksum FROM schema_migrations").fetchall()
        done = dict(rows)
        for m in migrations(folder):
            if m.version in done:
                if done[m.version] != m.checksum:
                    raise MigrationChanged(f"{m.name} was applied and has changed since; add a new migration instead")
                continue
            with conn.transaction():
                conn.execute(m.sql)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (m.version, m.name, m.checksum),
                )
            applied.append(m.name)
    return applied


def encode_cursor(upload_time: datetime, photo_id: str) -> str:
    return base64.urlsafe_b64encode(f"{upload_time.isoformat()}|{photo_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (upload_time, id) a page ends at; ValueError for anything this module did not write."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, photo_id = raw.split("|")
        parsed = datetime.fromisoformat(stamp)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("not a cursor this service gave out") from exc
    if parsed.tzinfo is None or not re.fullmatch(r"[0-9a-f]{32}", photo_id):
        raise ValueError("not a cursor this service gave out")
    return parsed, photo_id


def _coordinate_columns(prefix: str, value: dict[str, Any] | None) -> dict[str, Any]:
    value = value or {}
    return {f"{prefix}_{part}": value.get(part) for part in ("degrees", "minutes", "seconds", "direction")}


def result_row(metadata: dict[str, Any], labels: list[dict], thumbnail: dict[str, Any], timings: dict) -> dict[str, Any]:
    """The store step's columns from the steps' outputs (the sample's TransformMetadata + StoreImageMetadata)."""
    return {
        "labels": labels,
        "thumbnail_key": thumbnail.get("key"),
        "thumbnail_width": thumbnail.get("width"),
        "thumbnail_height": thumbnail.get("height"),
        "creation_time": metadata.get("creation_time"),
        **_coordinate_columns("latitude", metadata.get("latitude")),
        **_coordinate_columns("longitude", metadata.get("longitude")),
        "make": metadata.get("make"),
        "model": metadata.get("model"),
        "width": metadata.get("width"),
        "height": metadata.get("height"),
        "file_size": metadata.get("file_size"),
        "format": metadata.get("format"),
        "timings": timings,
    }


def _param(column: str, value: Any) -> Any:
    return Jsonb(value) if column in JSON_COLUMNS and value is not None else value


class Database:
    """A connection pool and the album's queries. Open it once per process."""

    def __init__(self, url: str, pool_size: int = 8) -> None:
        # check: a connection is tested as it leaves the pool, so a restarted server costs no failed query
        self.pool = ConnectionPool(
            url, min_size=1, max_size=pool_size, open=False, kwargs={"autocommit": True, "row_factory": dict_row},
            name="album", check=ConnectionPool.check_connection,
        )  # fmt: skip

    def open(self, timeout: float = 30) -> "Database":
        self.pool.open(wait=True, timeout=timeout)
        return self

    def close(self) -> None:
        self.pool.close()

    def migrate(self) -> list[str]:
        with self.pool.connection() as conn:
            return migrate(conn)

    def ping(self) -> None:
        with self.pool.connection(timeout=5) as conn:
            conn.execute("SELECT 1")

    # ---- albums ----------------------------------------------------------------------------------

    def create_album(self, album_id: str, name: str) -> dict[str, Any]:
        with self.pool.connection() as conn:
            return conn.execute(
                "INSERT INTO albums (id, name) VALUES (%s, %s) RETURNING id, name, created_at", (album_id, name)
            ).fetchone()

    def list_albums(self) -> list[dict[str, Any]]:
        with self.pool.connection() as conn:
            return conn.execute(
                "SELECT a.id, a.name, a.created_at, count(p.id) AS photos,"
                " count(p.id) FILTER (WHERE p.status = 'RUNNING') AS running,"
                " count(p.id) FILTER (WHERE p.status = 'SUCCEEDED') AS succeeded,"
                " count(p.id) FILTER (WHERE p.status = 'FAILED') AS failed"
                " FROM albums a LEFT JOIN photos p ON p.album_id = a.id"
                " GROUP BY a.id ORDER BY a.created_at DESC, a.id"
            ).fetchall()

    def get_album(self, album_id: str) -> dict[str, Any] | None:
        with self.pool.connection() as conn:
            return conn.execute("SELECT id, name, created_at FROM albums WHERE id = %s", (album_id,)).fetchone()

    # ---- photos: the service's writes --------------------------------------------------------------

    def insert_photo(self, photo_id: str, album_id: str, file_name: str | None, content_type: str, original_key: str,
                     file_size: int) -> dict[str, Any]:  # fmt: skip
        """The upload's row, RUNNING, before its workflow starts (so no photo is ever invisible)."""
        with self.pool.connection() as conn:
            return conn.execute(
                "INSERT INTO photos (id, album_id, file_name, content_type, original_key, file_size)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET updated_at = now()"
                " RETURNING id, status, upload_time",
                (photo_id, album_id, file_name, content_type, original_key, file_size),
            ).fetchone()

    def set_run_id(self, photo_id: str, run_id: str) -> None:
        with self.pool.connection() as conn:
            conn.execute(
                "UPDATE photos SET run_id = COALESCE(run_id, %s), updated_at = now() WHERE id = %s", (run_id, photo_id)
            )

    # ---- photos: the workflow's writes (idempotent: Temporal may run each more than once) ---------------

    def _upsert(self, photo: dict[str, Any], values: dict[str, Any], *, finish: bool = False) -> None:
        """INSERT the photo's row with `values`, or UPDATE those columns if the row exists (it normally does).

        finish: also stamp finished_at, in the same statement, so no reader sees a final status without it."""
        base = {k: photo[k] for k in ("id", "album_id", "content_type", "original_key")}
        columns = [*base, *values]
        params = [*base.values(), *(_param(c, v) for c, v in values.items())]
        sets = [sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in values]
        inserted = [sql.Placeholder()] * len(columns)
        if finish:
            columns.append("finished_at")
            inserted.append(sql.SQL("now()"))
            sets.append(sql.SQL("finished_at = COALESCE(photos.finished_at, now())"))
        query = sql.SQL(
            "INSERT INTO photos ({cols}) VALUES ({vals}) ON CONFLICT (id) DO UPDATE SET {sets}, updated_at = now()"
        ).format(
            cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
            vals=sql.SQL(", ").join(inserted),
            sets=sql.SQL(", ").join(sets),
        )
        with self.pool.connection() as conn:
            conn.execute(query, params)

    def store_people(self, photo: dict[str, Any], count: int, people: dict[str, Any]) -> None:
        self._upsert(photo, {"people_count": count, "people": people})

    def store_result(self, photo: dict[str, Any], row: dict[str, Any], run_id: str) -> None:
        unknown = set(row) - set(RESULT_COLUMNS)
        if unknown:
            raise ValueError(f"not result columns: {sorted(unknown)}")
        self._upsert(photo, {**row, "run_id": run_id, "status": "SUCCEEDED", "error": None}, finish=True)

    def record_failure(self, photo: dict[str, Any], error: str, run_id: str | None, timings: dict | None = None) -> None:
        """FAILED with its reason. A SUCCEEDED row is never turned back (a late duplicate cannot undo a result)."""
        with self.pool.connection() as conn:
            conn.execute(
                "INSERT INTO photos (id, album_id, content_type, original_key, status, error, run_id, timings, finished_at)"
                " VALUES (%s, %s, %s, %s, 'FAILED', %s, %s, %s, now())"
                " ON CONFLICT (id) DO UPDATE SET status = 'FAILED', error = EXCLUDED.error,"
                " run_id = COALESCE(EXCLUDED.run_id, photos.run_id), timings = COALESCE(EXCLUDED.timings, photos.timings),"
                " finished_at = COALESCE(photos.finished_at, now()), updated_at = now()"
                " WHERE photos.status <> 'SUCCEEDED'",
                (photo["id"], photo["album_id"], photo["content_type"], photo["original_key"], error, run_id,
                 Jsonb(timings) if timings is not None else None),
            )  # fmt: skip

    # ---- photos: reads --------------------------------------------------------------------------------

    def get_photo(self, photo_id: str) -> dict[str, Any] | None:
        with self.pool.connection() as conn:
            return conn.execute("SELECT * FROM photos WHERE id = %s", (photo_id,)).fetchone()

    def list_photos(self, album_id: str, limit: int, cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """A page of the album, newest first, and the cursor of the next page (None at the end)."""
        where, params = "album_id = %s", [album_id]
        if cursor:
            upload_time, photo_id = decode_cursor(cursor)
            where += " AND (upload_time, id) < (%s, %s)"
            params += [upload_time, photo_id]
        with self.pool.connection() as conn:
            rows = conn.execute(
                sql.SQL("SELECT * FROM photos WHERE {} ORDER BY upload_time DESC, id DESC LIMIT %s").format(sql.SQL(where)),
                [*params, limit + 1],
            ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (encode_cursor(rows[-1]["upload_time"], rows[-1]["id"]) if more else None)

    def status_counts(self, album_id: str) -> dict[str, int]:
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT status, count(*) AS n FROM photos WHERE album_id = %s GROUP BY status", (album_id,)
            ).fetchall()
        found = {r["status"]: r["n"] for r in rows}
        return {s: found.get(s, 0) for s in STATUSES}
