"""Bytes → pixels: orientation as a photo viewer shows it, reduced decoding of big JPEGs, limits before decoding."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from cloudpose import errors
from cloudpose.imaging import decode, probe, reduction

from .conftest import load_images


def _asymmetric(width=320, height=200) -> np.ndarray:
    """A smooth RGB pattern with no symmetry, so every flip and turn is told apart."""
    y, x = np.mgrid[0:height, 0:width]
    return np.dstack([x * 255 // width, y * 255 // height, (x + 2 * y) * 255 // (width + 2 * height)]).astype(np.uint8)


def _jpeg(rgb: np.ndarray, orientation: int = 1, quality: int = 95) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality, exif=exif)
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(orientation):
    data = _jpeg(_asymmetric(), orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))[..., ::-1]
    got = decode(data, max_pixels=10**8, min_side=0)
    assert (got.width, got.height) == (expected.shape[1], expected.shape[0])
    assert got.pixels.shape == expected.shape
    assert np.abs(got.pixels.astype(int) - expected.astype(int)).mean() < 2


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_png_exif_orientation_is_honoured_without_decoding_in_the_probe(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(_asymmetric()).save(buf, "PNG", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))))[..., ::-1]
    got = decode(buf.getvalue(), max_pixels=10**8, min_side=0)
    assert np.array_equal(got.pixels, expected)


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_reduced_decode_keeps_orientation_and_original_frame(orientation):
    data = _jpeg(_asymmetric(2600, 1400), orientation)
    full = decode(data, max_pixels=10**8, min_side=0)
    small = decode(data, max_pixels=10**8, min_side=640)
    assert (small.width, small.height) == (full.width, full.height)
    assert small.scale == pytest.approx(4, rel=0.01)  # 2600 / 4 = 650 ≥ 640
    shrunk = cv2.resize(full.pixels, small.pixels.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(shrunk.astype(int) - small.pixels.astype(int)).mean() < 3


def test_reduction_only_for_big_jpegs():
    assert reduction(probe(_jpeg(_asymmetric(4000, 3000))), 640) == 4  # 1/8 would be 500 px: < 90% of 640
    assert reduction(probe(_jpeg(_asymmetric(4000, 3000))), 512) == 8  # 500 px: ≥ 90% of 512
    assert reduction(probe(_jpeg(_asymmetric(1000, 700))), 640) == 1
    buf = io.BytesIO()
    Image.fromarray(_asymmetric(4000, 3000)).save(buf, "PNG")
    assert reduction(probe(buf.getvalue()), 640) == 1  # libpng has no DCT scaling


def test_grayscale_and_alpha_become_three_channels():
    gray = [p for p in load_images() if Image.open(p).mode == "L"]
    assert gray, "load-128 holds one grayscale photo"
    assert decode(gray[0].read_bytes(), max_pixels=10**8, min_side=640).pixels.shape[2] == 3
    buf = io.BytesIO()
    Image.new("RGBA", (50, 40), (10, 20, 30, 0)).save(buf, "PNG")
    assert decode(buf.getvalue(), max_pixels=10**8, min_side=640).pixels.shape == (40, 50, 3)


def test_limits_and_garbage():
    with pytest.raises(errors.ImageTooLarge, match="limit is 0.0 MP"):
        decode(_jpeg(_asymmetric()), max_pixels=1000, min_side=640)
    with pytest.raises(errors.EmptyImage):
        decode(b"", max_pixels=10**8, min_side=640)
    with pytest.raises(errors.NotAnImage, match="not an image"):
        decode(b"%PDF-1.4 definitely not a photo", max_pixels=10**8, min_side=640)
