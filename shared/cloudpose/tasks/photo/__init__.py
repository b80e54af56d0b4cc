"""Photo steps of the album pipeline, as tasks without a model: the file in, its metadata or its thumbnail out.

`metadata.py` and `thumbnail.py` are pure functions over the file's bytes; here they become tasks the
shared service runs like any other (same request forms, limits and error shape), after it has checked
the header against the pixel limit. A file Pillow cannot read answers 400 `not_an_image` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pybase64

from ... import errors
from ...config import ModelSettings
from ...imaging import Decoded
from ..base import Task
from .metadata import ImageTooLarge, UnreadableImage, extract_metadata
from .thumbnail import make_thumbnail

THUMBNAIL_SIDE = 250  # the AWS sample's thumbnail box


@dataclass(slots=True)
class PhotoResult:
    """A photo step's answer fields; `count` is 1 (one photo described)."""

    fields: dict
    speed: dict[str, float] = field(default_factory=dict)
    count: int = 1

    def to_json(self) -> dict:
        speed = {f"speed_{k}": round(self.speed.get(k, 0.0), 3) for k in ("preprocess", "inference", "postprocess")}
        return {**self.fields, **speed}


def _readable(step):
    """Pillow's reasons for refusing a file, as the service's typed errors."""

    def run(image: Decoded, settings: ModelSettings) -> PhotoResult:
        try:
            return PhotoResult(step(image))
        except ImageTooLarge as exc:
            raise errors.ImageTooLarge(str(exc)) from None
        except UnreadableImage as exc:
            raise errors.NotAnImage(str(exc)) from None

    return run


def _thumbnail(image: Decoded) -> dict:
    data, fmt, width, height = make_thumbnail(image.data, THUMBNAIL_SIDE)
    return {"image": pybase64.b64encode(data).decode("ascii"), "format": fmt, "width": width, "height": height}


METADATA = Task(name="metadata", prefix="PHOTO_METADATA", run=_readable(lambda image: extract_metadata(image.data)), pixels=False)
THUMBNAIL = Task(name="thumbnail", prefix="PHOTO_THUMBNAIL", run=_readable(_thumbnail), pixels=False)
