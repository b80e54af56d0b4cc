"""The two functions, as data: a name, the paths it answers, its renderer and its response model.

Both run the same pipeline (body → images → people); they differ only in how people are
rendered. Each function image serves one of them; the local default serves both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pybase64
from pydantic import BaseModel

from .config import Settings
from .draw import draw
from .imaging import Decoded, encode_jpeg
from .result import PoseResult
from .schema import AnnotateResponse, PoseJSONResponse

Renderer = Callable[[str, Decoded, PoseResult, Settings], dict]


def render_json(request_id: str, image: Decoded, result: PoseResult, settings: Settings) -> dict:
    return {"id": request_id, **result.to_json()}


def render_annotated(request_id: str, image: Decoded, result: PoseResult, settings: Settings) -> dict:
    jpeg = encode_jpeg(draw(image.pixels, result), settings.jpeg_quality)
    return {"id": request_id, "image": pybase64.b64encode(jpeg).decode("ascii")}


@dataclass(frozen=True)
class Function:
    name: str
    summary: str
    render: Renderer
    response: type[BaseModel]
    course_path: str  # the path the course's clients post to

    @property
    def gateway_path(self) -> str:
        """The path an OpenFaaS gateway exposes the function on."""
        return f"/function/{self.name}"


POSE_JSON = Function(
    "pose-json",
    "People, boxes and 17 keypoints each, as JSON",
    render_json,
    PoseJSONResponse,
    "/api/pose_estimation",
)
POSE_ANNOTATE = Function(
    "pose-annotate",
    "The image with boxes, keypoints and skeletons drawn, as base64 JPEG",
    render_annotated,
    AnnotateResponse,
    "/api/pose_estimation_annotation",
)
FUNCTIONS = {f.name: f for f in (POSE_JSON, POSE_ANNOTATE)}
