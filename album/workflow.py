"""The per-photo workflow: the AWS sample's state machine, one to one, on Temporal.

    ExtractImageMetadata → ImageTypeCheck (JPEG or PNG, else UnsupportedImageType)
      → Parallel(thumbnail, labels, people) → StoreImageMetadata
      any failure → the row is written FAILED with its reason (the sample never does)

Workflow id = photo id, so a second start of the same photo is refused by the server. Only keys and
small JSON travel through Temporal: every activity reads the photo from S3 itself. This module
imports nothing but the SDK and the standard library, because Temporal replays it in a sandbox;
activities are named by string, their code lives in activities.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError

WORKFLOW_NAME = "PhotoPipeline"
SUPPORTED_FORMATS = ("JPEG", "PNG")  # the sample's ImageTypeCheck
UNSUPPORTED = "UnsupportedImageType"
# What a retry cannot fix (gateway.FunctionRejected, store.ObjectMissing): fail the step at once.
NON_RETRYABLE = [UNSUPPORTED, "FunctionRejected", "ObjectMissing"]

# The sample's policy for every step: 2 retries, 1 s apart, backoff 1.5.
STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=1.5, maximum_attempts=3,
    non_retryable_error_types=NON_RETRYABLE,
)  # fmt: skip
# Writing the outcome is retried for longer (up to RECORD_TIMEOUT): giving up there is what leaves a
# photo "processing" forever, and a database restart takes longer than the sample's 2.5 s window.
RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=1.5, maximum_interval=timedelta(seconds=20),
    non_retryable_error_types=["ValueError"],
)  # fmt: skip
STEP_TIMEOUT = timedelta(seconds=30)  # one attempt: S3 read, base64, the function call, S3/DB write
HEARTBEAT_TIMEOUT = timedelta(seconds=5)  # a killed worker's step is retried elsewhere after this, not after 30 s
RECORD_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class PhotoInput:
    """What the workflow knows of its photo: ids and keys, never bytes."""

    photo_id: str
    album_id: str
    original_key: str
    content_type: str

    def row(self) -> dict[str, str]:
        return {"id": self.photo_id, "album_id": self.album_id, "content_type": self.content_type,
                "original_key": self.original_key}  # fmt: skip


@dataclass(frozen=True)
class StepResult:
    """A step's small JSON result and the milliseconds it spent reading S3, calling, writing."""

    value: Any
    ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StoreInput:
    photo: PhotoInput
    metadata: dict[str, Any]
    thumbnail: dict[str, Any]
    labels: list[dict[str, Any]]
    run_id: str
    timings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FailureInput:
    photo: PhotoInput
    error: str
    run_id: str
    timings: dict[str, Any] = field(default_factory=dict)


def failure_reason(exc: BaseException) -> tuple[str, str]:
    """(error type, "Type: message (step)") of a failed step, for the row and the workflow's own failure."""
    step = ""
    if isinstance(exc, ActivityError):
        step = exc.activity_type
        exc = exc.cause or exc
    if isinstance(exc, ApplicationError):
        kind, message = exc.type or "ApplicationError", exc.message
    elif isinstance(exc, TimeoutError):
        kind, message = "Timeout", f"{exc.type.name.lower().replace('_', '-') if exc.type else 'activity'} timeout"
    elif isinstance(exc, (CancelledError, asyncio.CancelledError)):
        kind, message = "Cancelled", "the workflow was cancelled"
    else:
        kind, message = type(exc).__name__, str(exc)
    return kind, f"{kind}: {message}" + (f" ({step})" if step else "")


@workflow.defn(name=WORKFLOW_NAME)
class PhotoPipeline:
    """One photo, upload to row. Returns the stored outcome; fails (after writing FAILED) on any error."""

    def __init__(self) -> None:
        # Per step: its own read / call / write ms (measured in the activity); "workflow": the phases as
        # the workflow saw them (they include Temporal's scheduling; resolution: one workflow task).
        self.timings: dict[str, Any] = {"workflow": {}}

    def _phase(self, name: str, since: Any) -> None:
        self.timings["workflow"][name] = round((workflow.now() - since).total_seconds() * 1000, 1)

    async def _step(self, name: str, arg: Any) -> Any:
        result: StepResult = await workflow.execute_activity(
            name, arg, start_to_close_timeout=STEP_TIMEOUT, heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=STEP_RETRY, result_type=StepResult,
        )  # fmt: skip
        self.timings[name] = result.ms
        return result.value

    async def _record(self, name: str, arg: Any) -> None:
        await workflow.execute_activity(
            name, arg, start_to_close_timeout=STEP_TIMEOUT, schedule_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=RECORD_RETRY,
        )  # fmt: skip

    @workflow.run
    async def run(self, photo: PhotoInput) -> dict[str, Any]:
        run_id = workflow.info().run_id
        started = workflow.now()
        try:
            metadata = await self._step("extract-metadata", photo)
            self._phase("metadata", started)
            if metadata.get("format") not in SUPPORTED_FORMATS:
                raise ApplicationError(
                    f"{metadata.get('format')} is not supported: only {' and '.join(SUPPORTED_FORMATS)} go on",
                    type=UNSUPPORTED, non_retryable=True,
                )  # fmt: skip
            parallel = workflow.now()
            # All three branches run to their end (each bounded by its retries), so nothing writes after FAILED.
            results = await asyncio.gather(
                self._step("make-thumbnail", photo), self._step("detect-labels", photo),
                self._step("detect-people", photo), return_exceptions=True,
            )  # fmt: skip
            self._phase("parallel", parallel)
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                raise failed[0]
            thumbnail, labels, people = results
            self._phase("before_store", started)
            await self._record("store-photo", StoreInput(photo, metadata, thumbnail, labels, run_id, self.timings))
        except (ActivityError, ApplicationError, asyncio.CancelledError) as exc:
            kind, reason = failure_reason(exc)
            await self._record("record-failure", FailureInput(photo, reason, run_id, self.timings))
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise ApplicationError(reason, type=kind, non_retryable=True) from None
        return {"status": "SUCCEEDED", "labels": labels, "people": people.get("count"), "thumbnail": thumbnail["key"]}
