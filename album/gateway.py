"""Calling the project's functions over HTTP, as any client does: POST {"id", "image": <base64>} → JSON.

Errors are sorted into what a retry can fix and what it cannot, so the workflow's retry policy can
name them (the sample's ErrorEquals):

- FunctionUnavailable: no connection (after CONNECT_RETRIES), no answer in time, a 5xx, or a 503/429
  still not served after honouring its Retry-After within this call's time budget. Temporal retries it.
- FunctionRejected: a 4xx, i.e. the function read the request and refuses it (not an image, too
  large). Retrying sends the same bytes and gets the same answer, so it is not retried.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import httpx

from .config import AlbumSettings

RETRY_AFTER_CAP_S = 5.0  # never sleep longer than this on one Retry-After, whatever the server says
# A refused or timed-out connection is retried inside the call (httpcore: after 0, 0.5, 1, 2 s), so a
# function being restarted costs seconds, not a Temporal attempt; a request that reached it never is.
CONNECT_RETRIES = 4


class FunctionUnavailable(Exception):
    """The function could not answer now; the same request may succeed later."""


class FunctionRejected(Exception):
    """The function answered with a 4xx: this request will never succeed as it is."""

    def __init__(self, function: str, status: int, code: str, message: str) -> None:
        super().__init__(f"{function} answered {status} {code}: {message}")
        self.function, self.status, self.code, self.message = function, status, code, message


def request_body(request_id: str, image: bytes) -> bytes:
    """The functions' request, built without re-encoding the (large) base64 string through a JSON encoder."""
    return b'{"id": ' + json.dumps(request_id).encode() + b', "image": "' + base64.b64encode(image) + b'"}'


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error") or {}
        return str(error.get("code") or "http_error"), str(error.get("message") or response.reason_phrase)
    except (ValueError, AttributeError):
        return "http_error", response.text[:200] or response.reason_phrase


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return min(max(float(value), 0.05), RETRY_AFTER_CAP_S)
    except ValueError:
        return None


class Gateway:
    """One pooled async HTTP client for every function; `settings` says where each one answers."""

    def __init__(self, settings: AlbumSettings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.timeout = settings.function_timeout_s
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout, connect=5.0),
            transport=httpx.AsyncHTTPTransport(
                retries=CONNECT_RETRIES, limits=httpx.Limits(max_connections=64, max_keepalive_connections=16)
            ),
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def call(self, function: str, request_id: str, image: bytes) -> dict[str, Any]:
        """The function's JSON answer for `image`; raises FunctionUnavailable or FunctionRejected."""
        url = self.settings.function_url(function)
        body = request_body(request_id, image)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                response = await self.client.post(url, content=body, headers={"Content-Type": "application/json"})
            except httpx.TimeoutException:
                raise FunctionUnavailable(f"{function} at {url}: no answer within {self.timeout:g} s") from None
            except httpx.TransportError as exc:
                raise FunctionUnavailable(f"{function} at {url}: {type(exc).__name__}: {exc}") from None
            if response.status_code == 200:
                try:
                    return response.json()
                except ValueError:
                    raise FunctionUnavailable(f"{function} at {url}: 200 with a body that is not JSON") from None
            code, message = _error_of(response)
            wait = _retry_after(response) if response.status_code in (429, 503) else None
            if wait is not None and time.monotonic() + wait < deadline:
                await asyncio.sleep(wait)  # loading or overloaded: the server said when to come back
                continue
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                raise FunctionRejected(function, response.status_code, code, message)
            raise FunctionUnavailable(f"{function} at {url}: {response.status_code} {code}: {message}")
