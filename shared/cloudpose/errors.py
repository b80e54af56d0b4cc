"""Typed errors: raised where input is checked, turned into HTTP once (in `service.py`).

Every error answers with the same JSON shape::

    {"id": "<request id, when known>", "error": {"code": "not_an_image", "message": "..."}}

so clients can branch on `code` and show `message` to a person.
"""

from __future__ import annotations


class ApiError(Exception):
    """Base class: an HTTP status, a stable machine code and a human message (the same for every function)."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id

    def body(self) -> dict:
        out: dict = {}
        if self.request_id is not None:
            out["id"] = self.request_id
        out["error"] = {"code": self.code, "message": self.message}
        return out


class InvalidJSON(ApiError):
    code = "invalid_json"


class InvalidRequest(ApiError):
    """The JSON parsed but does not have the request's shape (missing id, wrong type...)."""

    code = "invalid_request"


class InvalidBase64(ApiError):
    code = "invalid_base64"


class NotAnImage(ApiError):
    code = "not_an_image"


class EmptyImage(ApiError):
    code = "empty_image"


class BodyTooLarge(ApiError):
    status = 413
    code = "body_too_large"


class ImageTooLarge(ApiError):
    status = 413
    code = "image_too_large"


class BatchEmpty(ApiError):
    code = "batch_empty"


class BatchTooLarge(ApiError):
    status = 413
    code = "batch_too_large"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class MethodNotAllowed(ApiError):
    status = 405
    code = "method_not_allowed"


class ModelNotReady(ApiError):
    status = 503
    code = "model_not_ready"


class Overloaded(ApiError):
    """Queue full: the client should back off and retry (sent with Retry-After)."""

    status = 503
    code = "overloaded"


class InferenceFailed(ApiError):
    """A fault on our side, never the client's: logged with a traceback, answered as 500."""

    status = 500
    code = "inference_failed"
