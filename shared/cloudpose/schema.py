"""The request side of the API contract, the same for every function (also the OpenAPI docs at /docs).

Requests are validated with these models. Each task's response models live with the task
(`tasks/<task>/schema.py`); responses are built as plain dicts for speed and checked against the
models in the tests.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ImageRequest(BaseModel):
    """One image. `id` is echoed back; numbers are accepted and turned into strings."""

    model_config = ConfigDict(coerce_numbers_to_str=True, extra="ignore")

    id: str = Field(min_length=1, max_length=256, examples=["6f1c1f3e-1a6b-4f7e-9b2c-0d3c2c1b9a10"])
    image: str = Field(min_length=1, description="base64 of a JPEG/PNG/WebP/BMP/TIFF file (a data: URL prefix is accepted)")


class BatchRequest(BaseModel):
    """Several images in one request; answered as {"results": [...]} in the same order."""

    model_config = ConfigDict(extra="ignore")

    images: list[ImageRequest | str] = Field(
        description="objects like a single request, or bare base64 strings (their ids are their positions: '0', '1', ...)"
    )


class AnnotateResponse(BaseModel):
    """What every *-annotate function answers."""

    id: str
    image: str = Field(description="base64 JPEG of the input with the task's answer drawn on it")


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
