"""The function table: each function is a task, a renderer, its response model and the paths it answers.

Functions of one task share its model (in the local default, one model serves both pose functions);
they differ only in how the task's result is rendered. Each function image serves one function; the
local default serves them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pybase64
from pydantic import BaseModel

from .config import Settings
from .imaging import Decoded, encode_jpeg
from .schema import AnnotateResponse
from .tasks import TASKS, Result, Task
from .tasks.detect import draw as detect_draw
from .tasks.detect.schema import DetectJSONResponse
from .tasks.photo.schema import MetadataResponse, ThumbnailResponse
from .tasks.pose import draw as pose_draw
from .tasks.pose.schema import PoseJSONResponse

Renderer = Callable[[str, Decoded, Result, Settings], dict]


def render_json(request_id: str, image: Decoded, result: Result, settings: Settings) -> dict:
    return {"id": request_id, **result.to_json()}


def annotated(draw: Callable) -> Renderer:
    """A renderer that draws the result with `draw(pixels, result)` and answers the base64 JPEG."""

    def render(request_id: str, image: Decoded, result: Result, settings: Settings) -> dict:
        jpeg = encode_jpeg(draw(image.pixels, result), settings.jpeg_quality)
        return {"id": request_id, "image": pybase64.b64encode(jpeg).decode("ascii")}

    return render


@dataclass(frozen=True)
class Function:
    name: str
    task: Task
    summary: str
    render: Renderer
    response: type[BaseModel]
    course_path: str  # the path the course's clients post to on the local default

    @property
    def gateway_path(self) -> str:
        """The path an OpenFaaS gateway exposes the function on."""
        return f"/function/{self.name}"


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in (
        Function("pose-json", TASKS["pose"], "People, boxes and 17 keypoints each, as JSON", render_json,
                 PoseJSONResponse, "/api/pose_estimation"),
        Function("pose-annotate", TASKS["pose"], "The image with boxes, keypoints and skeletons drawn, as base64 JPEG",
                 annotated(pose_draw.draw), AnnotateResponse, "/api/pose_estimation_annotation"),
        Function("detect-json", TASKS["detect"], "Objects: COCO label, accuracy and rectangle each, as JSON",
                 render_json, DetectJSONResponse, "/api/object_detection"),
        Function("detect-annotate", TASKS["detect"], "The image with labelled object boxes drawn, as base64 JPEG",
                 annotated(detect_draw.draw), AnnotateResponse, "/api/object_detection_annotation"),
        Function("photo-metadata", TASKS["metadata"], "A photo's EXIF capture time, GPS position, camera, size and format",
                 render_json, MetadataResponse, "/api/photo_metadata"),
        Function("photo-thumbnail", TASKS["thumbnail"], "A photo's thumbnail (fits 250×250, same format), as base64",
                 render_json, ThumbnailResponse, "/api/photo_thumbnail"),
    )
}  # fmt: skip
