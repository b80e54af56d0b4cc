"""The workflow's steps: each reads the photo from S3, calls one function over HTTP, writes its result.

Every step is idempotent, because Temporal runs a step again after a timeout or a lost worker: reads
are reads, the thumbnail goes to a key fixed by the photo id and format, and rows are upserts by id.
Long calls heartbeat, so a killed worker's step is retried on another after HEARTBEAT_TIMEOUT.
Errors are raised as the exception types the retry policy names (workflow.NON_RETRYABLE).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from temporalio import activity

from . import keys
from .config import AlbumSettings
from .db import Database, result_row
from .gateway import FunctionRejected, Gateway
from .labels import distinct_labels
from .store import ObjectMissing, Store
from .workflow import FailureInput, PhotoInput, StepResult, StoreInput

T = TypeVar("T")
HEARTBEAT_EVERY_S = 1.0
METADATA_FIELDS = ("creation_time", "latitude", "longitude", "make", "model", "width", "height", "orientation",
                   "file_size", "format")  # fmt: skip
UNREADABLE_CODES = {"not_an_image", "empty_image", "image_too_large", "body_too_large"}


class UnsupportedImageType(Exception):
    """The photo is not a JPEG or PNG this pipeline can read; the message says why. Never retried."""


async def heartbeating(work: Awaitable[T]) -> T:
    """Await `work`, heartbeating meanwhile: Temporal then notices a dead worker in seconds."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_EVERY_S)
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        if not task.done():
            task.cancel()


class Activities:
    """The steps, bound to one worker's clients (database pool, S3 client, HTTP client)."""

    def __init__(self, settings: AlbumSettings, db: Database, store: Store, gateway: Gateway) -> None:
        self.settings, self.db, self.store, self.gateway = settings, db, store, gateway

    def all(self) -> list:
        return [self.extract_metadata, self.make_thumbnail, self.detect_labels, self.detect_people,
                self.store_photo, self.record_failure]  # fmt: skip

    async def _call(self, function: str, photo: PhotoInput, ms: dict[str, float]) -> dict[str, Any]:
        """Read the original from S3 and send it to `function`; `ms` gets each part's milliseconds."""

        async def work() -> dict[str, Any]:
            started = time.perf_counter()
            data = await asyncio.to_thread(self.store.get, photo.original_key)
            read = time.perf_counter()
            answer = await self.gateway.call(function, photo.photo_id, data)
            ms["read"] = round((read - started) * 1000, 1)
            ms["call"] = round((time.perf_counter() - read) * 1000, 1)
            return answer

        return await heartbeating(work())

    @staticmethod
    async def _timed_write(ms: dict[str, float], fn, *args) -> None:
        started = time.perf_counter()
        await asyncio.to_thread(fn, *args)
        ms["write"] = round((time.perf_counter() - started) * 1000, 1)

    @activity.defn(name="extract-metadata")
    async def extract_metadata(self, photo: PhotoInput) -> StepResult:
        """photo-metadata's fields; a 4xx saying the bytes are no image is UnsupportedImageType."""
        ms: dict[str, float] = {}
        try:
            answer = await self._call("photo-metadata", photo, ms)
        except FunctionRejected as exc:
            if exc.code in UNREADABLE_CODES:
                raise UnsupportedImageType(f"not a readable image: {exc.message}") from None
            raise
        return StepResult({name: answer.get(name) for name in METADATA_FIELDS}, ms)

    @activity.defn(name="make-thumbnail")
    async def make_thumbnail(self, photo: PhotoInput) -> StepResult:
        """photo-thumbnail's image, stored under the photo's own thumbnail key; returns the key and size."""
        ms: dict[str, float] = {}
        answer = await self._call("photo-thumbnail", photo, ms)
        image_format = str(answer.get("format", "")).upper()
        try:
            data = base64.b64decode(answer["image"], validate=True)
        except (KeyError, TypeError, binascii.Error):
            raise FunctionRejected("photo-thumbnail", 200, "bad_answer", "no base64 image in the answer") from None
        key = keys.thumbnail_key(photo.album_id, photo.photo_id, image_format)
        await self._timed_write(ms, self.store.put, key, data, keys.thumbnail_type(image_format))
        return StepResult({"key": key, "format": image_format, "width": answer.get("width"),
                           "height": answer.get("height"), "size": len(data)}, ms)  # fmt: skip

    @activity.defn(name="detect-labels")
    async def detect_labels(self, photo: PhotoInput) -> StepResult:
        """detect-json's objects as distinct labels with their best accuracy (threshold, at most N)."""
        ms: dict[str, float] = {}
        answer = await self._call("detect-json", photo, ms)
        objects = answer.get("objects") or []
        return StepResult(distinct_labels(objects, self.settings.label_min_accuracy, self.settings.max_labels), ms)

    @activity.defn(name="detect-people")
    async def detect_people(self, photo: PhotoInput) -> StepResult:
        """pose-json's people: the boxes and keypoints go to the row here (they can be large), the count back."""
        ms: dict[str, float] = {}
        answer = await self._call("pose-json", photo, ms)
        people = {"boxes": answer.get("boxes") or [], "keypoints": answer.get("keypoints") or []}
        count = int(answer.get("count", len(people["boxes"])))
        await self._timed_write(ms, self.db.store_people, photo.row(), count, people)
        return StepResult({"count": count}, ms)

    @activity.defn(name="store-photo")
    async def store_photo(self, result: StoreInput) -> None:
        """The row, SUCCEEDED: metadata, labels and thumbnail (the sample's StoreImageMetadata)."""
        row = result_row(result.metadata, result.labels, result.thumbnail, result.timings)
        await asyncio.to_thread(self.db.store_result, result.photo.row(), row, result.run_id)

    @activity.defn(name="record-failure")
    async def record_failure(self, failure: FailureInput) -> None:
        await asyncio.to_thread(self.db.record_failure, failure.photo.row(), failure.error, failure.run_id,
                                failure.timings)  # fmt: skip


__all__ = ["Activities", "ObjectMissing", "UnsupportedImageType"]
