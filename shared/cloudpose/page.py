"""Serving a plain HTML/CSS/JS page under one strict policy: the functions' try-it page and the album's.

Imports nothing but Starlette/FastAPI, so the album image can carry this module without the rest of the
library (no models, no OpenCV).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

# The pages' only scripts are their own files: no inline script, no third-party origin. connect-src
# allows any http(s) origin because a page can target a cluster gateway (the API base URL field).
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self' http: https:; media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'none'"
)
PAGE_HEADERS = {"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def mount_page(app: FastAPI, folder: Path) -> None:
    """GET / (folder/index.html) and /static/* (the folder's files), every answer with PAGE_HEADERS."""

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return Response((folder / "index.html").read_bytes(), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    class PageFiles(StaticFiles):
        async def get_response(self, path: str, scope):
            response = await super().get_response(path, scope)
            response.headers.update(PAGE_HEADERS)
            return response

    app.mount("/static", PageFiles(directory=folder), name="static")
