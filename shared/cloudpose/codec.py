"""Request body → list of (id, image bytes).

Accepted forms (all answered the same way):
- a JSON object ``{"id": ..., "image": "<base64>"}``;
- the same object double-encoded as a JSON string (the course client posts ``json=json.dumps(data)``);
- a batch ``{"images": [{"id", "image"} | "<base64>", ...]}`` or a bare JSON list of those.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

import orjson
import pybase64
from pydantic import ValidationError

from .errors import BatchEmpty, BatchTooLarge, InvalidBase64, InvalidJSON, InvalidRequest
from .schema import ImageRequest


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Parsed:
    items: list[Item]
    batch: bool


def parse_body(body: bytes, *, max_batch: int) -> Parsed:
    """Parse and validate a whole request; any bad part rejects the request (batches are atomic)."""
    doc = _load_json(body)
    if isinstance(doc, dict) and "images" in doc:
        entries, batch = doc["images"], True
        if not isinstance(entries, list):
            raise InvalidRequest("images: must be a list of {id, image} objects or base64 strings")
    elif isinstance(doc, list):
        entries, batch = doc, True
    elif isinstance(doc, dict):
        entries, batch = [doc], False
    else:
        raise InvalidRequest(f'expected a JSON object {{"id": ..., "image": ...}}, got {type(doc).__name__}')
    if batch and not entries:
        raise BatchEmpty("images: the batch is empty")
    if batch and len(entries) > max_batch:
        raise BatchTooLarge(f"images: {len(entries)} images in one batch, the limit is {max_batch}")
    return Parsed([_item(entry, i if batch else None) for i, entry in enumerate(entries)], batch)


def _load_json(body: bytes):
    if not body.strip():
        raise InvalidJSON('empty body: send {"id": "...", "image": "<base64>"}')
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"body is not valid JSON: {exc}") from None
    if isinstance(doc, str):  # double-encoded: a JSON string holding the JSON object
        try:
            doc = orjson.loads(doc)
        except orjson.JSONDecodeError as exc:
            raise InvalidJSON(f"body is a JSON string whose content is not JSON: {exc}") from None
    return doc


def _item(entry, position: int | None) -> Item:
    where = "" if position is None else f"images[{position}]."
    if isinstance(entry, str):
        if position is None:
            raise InvalidRequest("expected an object with id and image")
        entry = {"id": str(position), "image": entry}
    if not isinstance(entry, dict):
        raise InvalidRequest(f"{where or 'body'}: expected an object with id and image, got {type(entry).__name__}")
    try:
        req = ImageRequest.model_validate(entry)
    except ValidationError as exc:
        raw_id = entry.get("id")
        known = str(raw_id) if isinstance(raw_id, (str, int)) and str(raw_id) else None
        raise InvalidRequest(_describe(exc, where), request_id=known) from None
    try:
        data = decode_base64(req.image)
    except InvalidBase64 as exc:
        raise InvalidBase64(f"{where}image: {exc.message}", request_id=req.id) from None
    return Item(req.id, data)


def _describe(exc: ValidationError, where: str) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}{field}: {err['msg'].lower()}")
    return "; ".join(parts)


def decode_base64(text: str) -> bytes:
    """Strict base64 (standard or URL-safe alphabet); tolerates a data: URL prefix, line breaks, missing padding."""
    if text.startswith("data:"):
        _, sep, text = text.partition(",")
        if not sep:
            raise InvalidBase64("data: URL without a comma")
    try:  # pybase64: SIMD, 25× the standard library on a 4 MB photo (9 ms → 0.4 ms)
        return pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass  # the fast path failed: normalise and try once more
    cleaned = "".join(text.split()).replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return pybase64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidBase64(f"not valid base64 ({exc})") from None
