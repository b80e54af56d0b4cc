"""The album service: albums, uploads (one workflow per photo), photos, thumbnails, and the page.

`python -m album.api` serves it (HOST, PORT). An upload is checked (size, content sniffed from the
bytes), stored in S3 under a generated key, recorded RUNNING in PostgreSQL, and handed to Temporal
with the photo id as workflow id; the answer (202) lists each file's id and status at once. Every
error has the functions' shape: {"error": {"code", "message"}}.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import unicodedata
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from cloudpose.page import mount_page  # the functions' page policy, one copy

from . import keys
from .config import AlbumSettings
from .db import Database
from .sniff import OCTET_STREAM, is_image_type, sniff
from .store import ObjectMissing, Store
from .workflow import WORKFLOW_NAME, PhotoInput

log = logging.getLogger("album.api")
STATIC = Path(__file__).with_name("static")
MULTIPART_OVERHEAD = 64 * 1024  # per file: headers and boundaries around its bytes
MAX_PAGE = 500
# Stored bytes are served back inert: no sniffing, no scripts, and non-images only as downloads.
FILE_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox",
                "Cache-Control": "private, max-age=3600"}  # fmt: skip


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class NewAlbum(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="shown as text; any characters")


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def display_name(name: str | None) -> str | None:
    """A file name fit to show: its last path part, no control characters, at most 255 characters."""
    if not name:
        return None
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:255] or None


def safe_download_name(name: str | None) -> str:
    """An ASCII file name for Content-Disposition (letters, digits, dot, dash, underscore)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name or "").strip("._")
    return cleaned[:100] or "file"


class Services:
    """The service's clients: opened in the lifespan; Temporal connects on first use (it may start later)."""

    def __init__(self, settings: AlbumSettings, db: Database | None = None, store: Store | None = None) -> None:
        self.settings = settings
        self.db = db or Database(settings.database_url, settings.db_pool_size)
        self.store = store or Store(settings.s3_endpoint, settings.s3_bucket, settings.s3_region)
        self._temporal: Client | None = None
        self._lock = asyncio.Lock()

    async def temporal(self) -> Client:
        async with self._lock:
            if self._temporal is None:
                s = self.settings
                self._temporal = await Client.connect(s.temporal_address, namespace=s.temporal_namespace)
            return self._temporal


def photo_json(row: dict[str, Any], settings: AlbumSettings, *, detail: bool = False) -> dict[str, Any]:
    """A row as the API shows it: metadata grouped, URLs instead of keys, the workflow's UI link."""

    def coordinate(prefix: str) -> dict[str, Any] | None:
        if row.get(f"{prefix}_direction") is None:
            return None
        return {part: row[f"{prefix}_{part}"] for part in ("degrees", "minutes", "seconds", "direction")}

    out = {
        "id": row["id"],
        "album_id": row["album_id"],
        "file_name": row.get("file_name"),
        "status": row["status"],
        "error": row.get("error"),
        "upload_time": row["upload_time"].isoformat() if row.get("upload_time") else None,
        "finished_at": row["finished_at"].isoformat() if row.get("finished_at") else None,
        "labels": row.get("labels") or [],
        "people_count": row.get("people_count"),
        "metadata": {
            "creation_time": row.get("creation_time"),
            "latitude": coordinate("latitude"),
            "longitude": coordinate("longitude"),
            "make": row.get("make"),
            "model": row.get("model"),
            "width": row.get("width"),
            "height": row.get("height"),
            "file_size": row.get("file_size"),
            "format": row.get("format"),
        },
        "content_type": row.get("content_type"),
        "thumbnail": (
            {"url": f"/api/photos/{row['id']}/thumbnail", "width": row.get("thumbnail_width"),
             "height": row.get("thumbnail_height")} if row.get("thumbnail_key") else None
        ),  # fmt: skip
        "original_url": f"/api/photos/{row['id']}/original",
        "workflow": {"id": row["id"], "run_id": row.get("run_id"), "url": settings.workflow_url(row["id"], row.get("run_id"))},
        "timings": row.get("timings"),
    }
    if detail:
        out["people"] = row.get("people")
    return out


def make_app(settings: AlbumSettings | None = None, services: Services | None = None) -> FastAPI:
    settings = settings or AlbumSettings.from_env()
    services = services or Services(settings)
    db, store = services.db, services.store

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await anyio.to_thread.run_sync(db.open)
        applied = await anyio.to_thread.run_sync(db.migrate)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        await anyio.to_thread.run_sync(store.ensure_bucket)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(db.close)

    app = FastAPI(
        title="CloudPose albums",
        version="1.0",
        description=__doc__.split("\n\n")[0],
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.services = services
    _add_errors(app)
    _add_health(app, services)
    mount_page(app, STATIC)
    _add_albums(app, services)
    _add_photos(app, services)
    return app


def _add_errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error_response(400, "invalid_request", f"{where}: {first.get('msg', 'invalid request')}".strip(": "))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return error_response(404, "not_found", f"no route {request.method} {request.url.path}; see /docs")
        if exc.status_code == 405:
            return error_response(405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}")
        return error_response(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", f"internal error: {type(exc).__name__}")


def _add_health(app: FastAPI, services: Services) -> None:
    @app.get("/_/health", tags=["health"], summary="Alive")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/_/ready", tags=["health"], summary="Ready: PostgreSQL, the object store and Temporal answer")
    async def ready() -> Response:
        checks: dict[str, str] = {}
        for name, probe in (("database", services.db.ping), ("store", services.store.ping)):
            try:
                await anyio.to_thread.run_sync(probe)
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"{type(exc).__name__}: {exc}"[:300]
        try:
            client = await asyncio.wait_for(services.temporal(), timeout=5)
            await asyncio.wait_for(client.service_client.check_health(), timeout=5)
            checks["temporal"] = "ok"
        except Exception as exc:
            checks["temporal"] = f"{type(exc).__name__}: {exc}"[:300]
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ok else "not_ready", "checks": checks}, status_code=200 if ok else 503)

    @app.get("/api/limits", tags=["albums"], summary="What an upload may be")
    async def limits() -> dict:
        s = services.settings
        return {"max_upload_bytes": s.max_upload_bytes, "max_files": s.max_files, "processed_formats": ["JPEG", "PNG"],
                "page_size": s.page_size, "max_page_size": MAX_PAGE}  # fmt: skip


def _album_or_404(services: Services, album_id: str) -> dict[str, Any]:
    album = services.db.get_album(album_id) if keys.is_id(album_id) else None
    if album is None:
        raise ApiError(404, "album_not_found", f"no album {album_id!r}")
    return album


def _photo_or_404(services: Services, photo_id: str) -> dict[str, Any]:
    photo = services.db.get_photo(photo_id) if keys.is_id(photo_id) else None
    if photo is None:
        raise ApiError(404, "photo_not_found", f"no photo {photo_id!r}")
    return photo


def _add_albums(app: FastAPI, services: Services) -> None:
    db = services.db

    @app.post("/api/albums", status_code=201, tags=["albums"], summary="Create an album")
    def create_album(body: NewAlbum) -> dict:
        name = body.name.strip()
        if not name:
            raise ApiError(400, "invalid_request", "name: must not be blank")
        album = db.create_album(keys.new_id(), name)
        return {**album, "created_at": album["created_at"].isoformat()}

    @app.get("/api/albums", tags=["albums"], summary="Every album, newest first, with its photo counts by status")
    def list_albums() -> dict:
        return {"albums": [{**a, "created_at": a["created_at"].isoformat()} for a in db.list_albums()]}

    @app.get("/api/albums/{album_id}", tags=["albums"], summary="One album and its photo counts")
    def get_album(album_id: str) -> dict:
        album = _album_or_404(services, album_id)
        return {**album, "created_at": album["created_at"].isoformat(), "counts": db.status_counts(album_id)}

    @app.get("/api/albums/{album_id}/photos", tags=["photos"], summary="An album's photos, newest first, paged")
    def list_photos(
        album_id: str,
        limit: int = Query(None, ge=1, le=MAX_PAGE, description="photos per page (default ALBUM_PAGE_SIZE)"),
        cursor: str | None = Query(None, max_length=200, description="next_cursor of the previous page"),
    ) -> dict:
        _album_or_404(services, album_id)
        try:
            rows, next_cursor = db.list_photos(album_id, limit or services.settings.page_size, cursor)
        except ValueError as exc:
            raise ApiError(400, "invalid_cursor", str(exc)) from None
        return {"photos": [photo_json(r, services.settings) for r in rows], "next_cursor": next_cursor,
                "counts": db.status_counts(album_id)}  # fmt: skip


UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                    "required": ["files"],
                }
            }
        },
    }
}


def _add_photos(app: FastAPI, services: Services) -> None:
    settings, db, store = services.settings, services.db, services.store

    async def start(photo: PhotoInput) -> str:
        client = await services.temporal()
        handle = await client.start_workflow(
            WORKFLOW_NAME,
            photo,
            id=photo.photo_id,
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
        return handle.first_execution_run_id or handle.result_run_id or ""

    async def accept(album_id: str, upload: UploadFile) -> dict[str, Any]:
        name = display_name(upload.filename)
        data = await upload.read(settings.max_upload_bytes + 1)
        if not data:
            return {"file_name": name, "status": "REJECTED", "error": {"code": "empty_file", "message": "the file is empty"}}
        if len(data) > settings.max_upload_bytes:
            return {"file_name": name, "status": "REJECTED", "error": {"code": "file_too_large",
                    "message": f"over the limit of {settings.max_upload_bytes} bytes"}}  # fmt: skip
        photo_id, size = keys.new_id(), len(data)
        content_type = sniff(data[:64])
        photo = PhotoInput(photo_id, album_id, keys.original_key(album_id, photo_id), content_type)
        await anyio.to_thread.run_sync(store.put, photo.original_key, data, content_type)
        del data
        await anyio.to_thread.run_sync(db.insert_photo, photo_id, album_id, name, content_type, photo.original_key, size)
        try:
            run_id = await start(photo)
        except WorkflowAlreadyStartedError:  # cannot happen with fresh ids; kept explicit: never run twice
            raise ApiError(409, "duplicate_photo", f"photo {photo_id} already has a workflow") from None
        except Exception as exc:  # Temporal unreachable: the photo must not stay RUNNING
            reason = f"WorkflowNotStarted: {type(exc).__name__}: {exc}"[:500]
            await anyio.to_thread.run_sync(db.record_failure, photo.row(), reason, None)
            log.warning("photo %s: %s", photo_id, reason)
            return {"id": photo_id, "file_name": name, "status": "FAILED", "error": {"code": "not_started",
                    "message": reason}}  # fmt: skip
        await anyio.to_thread.run_sync(db.set_run_id, photo_id, run_id)
        return {"id": photo_id, "file_name": name, "status": "RUNNING", "content_type": content_type,
                "size": size, "image": is_image_type(content_type),
                "workflow_url": settings.workflow_url(photo_id, run_id)}  # fmt: skip

    @app.post("/api/albums/{album_id}/photos", status_code=202, tags=["photos"], openapi_extra=UPLOAD_DOC,
              summary="Upload photos (multipart, field `files`, several at once); 202 with each one's id and status")  # fmt: skip
    async def upload(album_id: str, request: Request) -> Response:
        await anyio.to_thread.run_sync(_album_or_404, services, album_id)
        declared = request.headers.get("content-length", "")
        if not declared.isdigit():
            raise ApiError(411, "length_required", "send Content-Length (a multipart body with a known size)")
        limit = settings.max_files * (settings.max_upload_bytes + MULTIPART_OVERHEAD)
        if int(declared) > limit:
            raise ApiError(413, "request_too_large", f"the request is {declared} bytes; at most {settings.max_files}"
                           f" files of {settings.max_upload_bytes} bytes fit ({limit} bytes)")  # fmt: skip
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise ApiError(415, "unsupported_media_type", "send multipart/form-data with the photos in `files`")
        try:
            form = await request.form(max_files=settings.max_files, max_fields=10)
        except Exception as exc:  # starlette's MultiPartException, or a broken body
            raise ApiError(400, "invalid_multipart", f"{exc}") from None
        try:
            files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
            if not files:
                raise ApiError(400, "no_files", "no files in the `files` field")
            results = [await accept(album_id, f) for f in files]
        finally:
            await form.close()
        return JSONResponse({"album_id": album_id, "photos": results}, status_code=202)

    @app.get("/api/photos/{photo_id}", tags=["photos"], summary="One photo: status, metadata, labels, people")
    def get_photo(photo_id: str) -> dict:
        return photo_json(_photo_or_404(services, photo_id), settings, detail=True)

    def stream(key: str, content_type: str, download_name: str | None) -> StreamingResponse:
        try:
            chunks, info = store.open(key)
        except ObjectMissing:
            raise ApiError(404, "file_not_found", "the stored file is missing") from None
        headers = dict(FILE_HEADERS)
        if info.get("length") is not None:
            headers["Content-Length"] = str(info["length"])
        if not is_image_type(content_type):
            content_type = OCTET_STREAM
            headers["Content-Disposition"] = f'attachment; filename="{safe_download_name(download_name)}"'
        return StreamingResponse(chunks, media_type=content_type, headers=headers)

    @app.get("/api/photos/{photo_id}/thumbnail", tags=["photos"], summary="The thumbnail, streamed from S3",
             response_class=StreamingResponse)  # fmt: skip
    def thumbnail(photo_id: str) -> Response:
        photo = _photo_or_404(services, photo_id)
        if not photo.get("thumbnail_key"):
            raise ApiError(404, "no_thumbnail", f"photo {photo_id} has no thumbnail ({photo['status']})")
        return stream(photo["thumbnail_key"], keys.thumbnail_type(photo["thumbnail_key"]), None)

    @app.get("/api/photos/{photo_id}/original", tags=["photos"], summary="The uploaded file, streamed from S3",
             response_class=StreamingResponse)  # fmt: skip
    def original(photo_id: str) -> Response:
        photo = _photo_or_404(services, photo_id)
        return stream(photo["original_key"], photo["content_type"], photo.get("file_name"))


def main() -> int:
    import uvicorn

    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    logging.getLogger("botocore.credentials").setLevel(logging.WARNING)
    settings = AlbumSettings.from_env()
    shown = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    print(f"Albums on http://{shown}:{settings.port}/ (page), http://{shown}:{settings.port}/docs (API)", flush=True)
    uvicorn.run(make_app(settings), host=settings.host, port=settings.port, log_level="warning", timeout_keep_alive=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
