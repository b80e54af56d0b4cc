"""The API contract in one place: request and response models (also the OpenAPI docs at /docs).

Requests are validated with these models; responses are built as plain dicts by
`result.py` for speed and checked against these models in the tests.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PoseRequest(BaseModel):
    """One image. `id` is echoed back; numbers are accepted and turned into strings."""

    model_config = ConfigDict(coerce_numbers_to_str=True, extra="ignore")

    id: str = Field(min_length=1, max_length=256, examples=["6f1c1f3e-1a6b-4f7e-9b2c-0d3c2c1b9a10"])
    image: str = Field(min_length=1, description="base64 of a JPEG/PNG/WebP/BMP/TIFF file (a data: URL prefix is accepted)")


class BatchRequest(BaseModel):
    """Several images in one request; answered as {"results": [...]} in the same order."""

    model_config = ConfigDict(extra="ignore")

    images: list[PoseRequest | str] = Field(
        description="objects like a single request, or bare base64 strings (their ids are their positions: '0', '1', ...)"
    )


class Box(BaseModel):
    x: float = Field(description="left edge, original-image pixels")
    y: float = Field(description="top edge, original-image pixels")
    width: float
    height: float
    probability: float = Field(ge=0, le=1)


class PoseJSONResponse(BaseModel):
    """People sorted by probability, highest first; keypoints in COCO order, [x, y, p] each."""

    id: str
    count: int
    boxes: list[Box]
    keypoints: list[list[list[float]]] = Field(description="per person: 17 × [x, y, probability]")
    speed_preprocess: float = Field(description="ms: base64 + image decode + letterbox")
    speed_inference: float = Field(description="ms: the model call")
    speed_postprocess: float = Field(description="ms: decode boxes, NMS, scale to original pixels")


class AnnotateResponse(BaseModel):
    id: str
    image: str = Field(description="base64 JPEG of the input with boxes, keypoints and the COCO skeleton drawn")


class ErrorDetail(BaseModel):
    code: str = Field(examples=["not_an_image"])
    message: str


class ErrorResponse(BaseModel):
    id: str | None = None
    error: ErrorDetail


def batch_of(model: type[BaseModel]) -> type[BaseModel]:
    """The batch response for a function: {"results": [<its single response>, ...]}."""
    return type(
        f"Batch{model.__name__}",
        (BaseModel,),
        {"__annotations__": {"results": list[model]}, "__doc__": "answers in request order"},
    )
