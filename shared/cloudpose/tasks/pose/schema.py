"""pose-json's answer: the contract in one place (also the OpenAPI docs at /docs)."""

from __future__ import annotations

from pydantic import BaseModel, Field


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
