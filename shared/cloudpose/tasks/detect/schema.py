"""detect-json's answer: the CloudDetect assignment's contract in one place (also the OpenAPI docs at /docs)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Rectangle(BaseModel):
    """Integer pixels of the original image, inside it."""

    height: int = Field(ge=0)
    left: int = Field(ge=0)
    top: int = Field(ge=0)
    width: int = Field(ge=0)


class DetectedObject(BaseModel):
    label: str = Field(examples=["person"], description="a COCO class name")
    accuracy: float = Field(ge=0, le=1, description="objectness × class probability")
    rectangle: Rectangle


class DetectJSONResponse(BaseModel):
    """Objects sorted by accuracy, highest first."""

    id: str
    objects: list[DetectedObject]
    speed_preprocess: float = Field(description="ms: base64 + image decode + letterbox")
    speed_inference: float = Field(description="ms: the model call")
    speed_postprocess: float = Field(description="ms: decode boxes, per-class NMS, scale to original pixels")
