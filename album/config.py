"""The album system's settings, read once from the environment (nothing is read at import time).

One dataclass for the service and the worker, so both agree on where the database, the object store,
Temporal and the functions are. Each field's metadata names its variable and says what it is for;
docs/album.md's configuration table mirrors these. Credentials for S3 come from boto3's own chain
(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or a pod's role), never from a field here.
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_HOME = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cloudpose" / "album"
FUNCTION_NAMES = ("photo-metadata", "photo-thumbnail", "detect-json", "pose-json")


def _env(name: str, help: str) -> dict[str, str]:
    return {"env": name, "help": help}


@dataclass(frozen=True)
class AlbumSettings:
    """Everything the album service and the worker read from the environment."""

    gateway_url: str = field(
        default="http://127.0.0.1:60000",
        metadata=_env("ALBUM_GATEWAY_URL", "base URL of the functions: each is POST {gateway}/function/<name>"),
    )
    function_urls: str = field(
        default="",
        metadata=_env(
            "ALBUM_FUNCTION_URLS",
            "per-function overrides, name=url,... (a Knative route per function); others go through the gateway",
        ),
    )
    label_min_accuracy: float = field(
        default=0.5, metadata=_env("ALBUM_LABEL_MIN_ACCURACY", "labels below this detect-json accuracy are dropped")
    )
    max_labels: int = field(default=10, metadata=_env("ALBUM_MAX_LABELS", "labels kept per photo, best first"))
    function_timeout_s: float = field(
        default=20.0, metadata=_env("ALBUM_FUNCTION_TIMEOUT_S", "one HTTP call to a function, connect to last byte")
    )
    database_url: str = field(
        default="postgresql://album@127.0.0.1:61001/album",
        metadata=_env("ALBUM_DATABASE_URL", "PostgreSQL, as a libpq URL (password in it or in PGPASSWORD)"),
    )
    db_pool_size: int = field(default=8, metadata=_env("ALBUM_DB_POOL_SIZE", "connections each process keeps"))
    s3_endpoint: str = field(
        default="http://127.0.0.1:61002", metadata=_env("ALBUM_S3_ENDPOINT", "any S3 API; empty = AWS itself")
    )
    s3_bucket: str = field(default="album-photos", metadata=_env("ALBUM_S3_BUCKET", "bucket for originals and thumbnails"))
    s3_region: str = field(default="us-east-1", metadata=_env("ALBUM_S3_REGION", "region to sign requests for"))
    temporal_address: str = field(default="127.0.0.1:61003", metadata=_env("ALBUM_TEMPORAL_ADDRESS", "Temporal frontend (gRPC)"))
    temporal_namespace: str = field(default="default", metadata=_env("ALBUM_TEMPORAL_NAMESPACE", "Temporal namespace"))
    task_queue: str = field(default="album-photos", metadata=_env("ALBUM_TASK_QUEUE", "the worker's task queue"))
    temporal_ui_url: str = field(
        default="http://127.0.0.1:61004", metadata=_env("ALBUM_TEMPORAL_UI_URL", "Temporal UI, for each photo's link")
    )
    worker_concurrency: int = field(
        default=8, metadata=_env("ALBUM_WORKER_CONCURRENCY", "activities one worker runs at once")
    )
    max_upload_mb: float = field(
        default=7.0,
        metadata=_env("ALBUM_MAX_UPLOAD_MB", "largest photo accepted; its base64 must fit the functions' body limit"),
    )
    max_files: int = field(default=100, metadata=_env("ALBUM_MAX_FILES", "files in one upload request"))
    page_size: int = field(default=60, metadata=_env("ALBUM_PAGE_SIZE", "photos per page by default (at most 500)"))
    host: str = field(default="127.0.0.1", metadata=_env("HOST", "where the album service listens"))
    port: int = field(default=61000, metadata=_env("PORT", "the album service's port"))

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> "AlbumSettings":
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f.metadata["env"])
            kind = type(f.default) if f.default is not MISSING else str
            if raw is None or (raw == "" and kind is not str):  # an empty string is a value only for text
                continue
            try:
                values[f.name] = kind(raw)
            except ValueError:
                raise ValueError(f"{f.metadata['env']}={raw!r}: expected {kind.__name__}") from None
        settings = replace(cls(), **{**values, **overrides})
        settings.check()
        return settings

    def check(self) -> None:
        if not 0.0 <= self.label_min_accuracy <= 1.0:
            raise ValueError(f"ALBUM_LABEL_MIN_ACCURACY must be within 0..1, not {self.label_min_accuracy}")
        if self.max_labels < 1 or self.max_files < 1 or self.worker_concurrency < 1 or self.db_pool_size < 1:
            raise ValueError("ALBUM_MAX_LABELS, ALBUM_MAX_FILES, ALBUM_WORKER_CONCURRENCY, ALBUM_DB_POOL_SIZE must be ≥ 1")
        if self.max_upload_mb <= 0:
            raise ValueError("ALBUM_MAX_UPLOAD_MB must be positive")
        if not self.gateway_url.startswith(("http://", "https://")):
            raise ValueError(f"ALBUM_GATEWAY_URL must be an http(s) URL, not {self.gateway_url!r}")
        if not self.database_url or not self.temporal_address or not self.s3_bucket:
            raise ValueError("ALBUM_DATABASE_URL, ALBUM_TEMPORAL_ADDRESS and ALBUM_S3_BUCKET must not be empty")
        self.function_url_map()  # raises on a malformed ALBUM_FUNCTION_URLS

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def function_url_map(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in self.function_urls.split(","))):
            name, sep, url = item.partition("=")
            if not sep or name.strip() not in FUNCTION_NAMES or not url.strip().startswith(("http://", "https://")):
                raise ValueError(f"ALBUM_FUNCTION_URLS: {item!r} is not <function>=<http(s) url> ({', '.join(FUNCTION_NAMES)})")
            out[name.strip()] = url.strip().rstrip("/")
        return out

    def function_url(self, name: str) -> str:
        """Where `name` answers: its override, else the gateway's /function/<name> (OpenFaaS, the local default)."""
        return self.function_url_map().get(name) or f"{self.gateway_url.rstrip('/')}/function/{name}"

    def workflow_url(self, workflow_id: str, run_id: str | None) -> str:
        base = f"{self.temporal_ui_url.rstrip('/')}/namespaces/{self.temporal_namespace}/workflows/{workflow_id}"
        return f"{base}/{run_id}/history" if run_id else base


def documented() -> list[tuple[str, str, str]]:
    """(variable, default, help) for every setting: the docs' configuration table."""
    return [(f.metadata["env"], str(f.default), f.metadata["help"]) for f in fields(AlbumSettings)]
