"""photo-metadata's and photo-thumbnail's answers: the contract in one place (also the OpenAPI docs at /docs)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Coordinate(BaseModel):
    degrees: int = Field(ge=0)
    minutes: int = Field(ge=0, lt=60)
    seconds: float = Field(ge=0, lt=60)
    direction: str = Field(pattern="^[NSEW]$")


class MetadataResponse(BaseModel):
    """The photo's EXIF fields and size; each EXIF field is null when the photo does not carry it."""

    id: str
    creation_time: str | None = Field(description="EXIF DateTimeOriginal, ISO 8601")
    latitude: Coordinate | None
    longitude: Coordinate | None
    make: str | None
    model: str | None
    width: int = Field(description="as displayed, after the EXIF orientation")
    height: int
    orientation: int = Field(ge=1, le=8)
    file_size: int = Field(description="bytes")
    format: str = Field(examples=["JPEG", "PNG", "GIF"])
    speed_preprocess: float
    speed_inference: float
    speed_postprocess: float


class ThumbnailResponse(BaseModel):
    """The upright photo scaled to fit 250 × 250, in its own format (JPEG stays JPEG, PNG stays PNG)."""

    id: str
    image: str = Field(description="base64 of the thumbnail file")
    format: str
    width: int
    height: int
    speed_preprocess: float
    speed_inference: float
    speed_postprocess: float
