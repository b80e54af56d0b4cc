"""Identifiers and storage keys: generated here, never derived from anything a client sent.

A key names its album and photo by their generated ids only, so a file called `../../x` or `a?b#c`
is just a display name in the database.
"""

from __future__ import annotations

import re
import uuid

from .sniff import OCTET_STREAM

ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
# A thumbnail's format → (its key's extension, its content type); photo-thumbnail answers one of these.
THUMBNAIL_FORMATS = {"JPEG": ("jpg", "image/jpeg"), "PNG": ("png", "image/png"), "GIF": ("gif", "image/gif"),
                     "WEBP": ("webp", "image/webp")}  # fmt: skip


def new_id() -> str:
    """A random 128-bit id as 32 hex digits: a photo's id is also its workflow id."""
    return uuid.uuid4().hex


def is_id(value: str) -> bool:
    return bool(ID_PATTERN.match(value))


def original_key(album_id: str, photo_id: str) -> str:
    return f"albums/{album_id}/originals/{photo_id}"


def thumbnail_key(album_id: str, photo_id: str, image_format: str) -> str:
    """One key per photo and format, so a retried thumbnail step overwrites its own earlier result."""
    extension = THUMBNAIL_FORMATS.get(image_format, ("bin", OCTET_STREAM))[0]
    return f"albums/{album_id}/thumbnails/{photo_id}.{extension}"


def thumbnail_type(key_or_format: str) -> str:
    """The content type of a thumbnail, from its format ("PNG") or its key (".../<id>.png")."""
    for image_format, (extension, content_type) in THUMBNAIL_FORMATS.items():
        if key_or_format.upper() == image_format or key_or_format.endswith(f".{extension}"):
            return content_type
    return OCTET_STREAM
