"""photo-metadata and photo-thumbnail's pure functions, on real photos (load-128) and on Pillow-made files:
a JPEG carrying EXIF (capture time, GPS, camera, orientation), a PNG with the same EXIF, a GIF, garbage,
a truncated JPEG, and a 24 MP JPEG whose thumbnail must not cost a full decode."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import ExifTags, Image, ImageDraw
from PIL.TiffImagePlugin import IFDRational

from cloudpose.tasks.photo.metadata import ImageTooLarge, UnreadableImage, extract_metadata
from cloudpose.tasks.photo.thumbnail import make_thumbnail

from .conftest import LOAD_128

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[1]


def load_photos() -> list[Path]:
    photos = sorted(LOAD_128.glob("*.jpg"))
    if not photos:
        pytest.skip(f"test photos not found in {LOAD_128}: set CLOUDPOSE_DATA to the shared data folder")
    return photos


def camera_exif(orientation: int = 1) -> Image.Exif:
    """What a phone writes: capture time with sub-seconds and offset, GPS as D/M/S rationals, make and model."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Canon"
    exif[ExifTags.Base.Model] = "EOS <img src=x onerror=alert(1)>"
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.IFD.Exif] = {
        ExifTags.Base.DateTimeOriginal: "2024:05:17 14:03:22",
        ExifTags.Base.SubsecTimeOriginal: "25",
        ExifTags.Base.OffsetTimeOriginal: "+02:00",
    }
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (IFDRational(37), IFDRational(46), IFDRational(297, 10)),
        ExifTags.GPS.GPSLongitudeRef: "W",
        ExifTags.GPS.GPSLongitude: (IFDRational(122), IFDRational(25), IFDRational(99, 10)),
    }
    return exif


EXPECTED_EXIF = {
    "creation_time": "2024-05-17T14:03:22.25+02:00",
    "latitude": {"degrees": 37, "minutes": 46, "seconds": 29.7, "direction": "N"},
    "longitude": {"degrees": 122, "minutes": 25, "seconds": 9.9, "direction": "W"},
    "make": "Canon",
    "model": "EOS <img src=x onerror=alert(1)>",
}


def encoded(img: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **options)
    return buffer.getvalue()


def test_real_photos_metadata_and_thumbnails():
    for path in load_photos()[:32]:
        data = path.read_bytes()
        with Image.open(path) as img:
            width, height = img.size
        meta = extract_metadata(data)
        assert meta == {"creation_time": None, "latitude": None, "longitude": None, "make": None, "model": None,
                        "width": width, "height": height, "orientation": 1, "file_size": len(data),
                        "format": "JPEG"}, path.name  # fmt: skip
        thumb, fmt, w, h = make_thumbnail(data)
        assert fmt == "JPEG" and max(w, h) == 250 and min(w, h) <= 250
        assert abs(w / h - width / height) < 0.02, "the aspect ratio is kept"
        with Image.open(io.BytesIO(thumb)) as out:
            assert out.format == "JPEG" and out.size == (w, h)
        json.dumps(meta)  # plain data, as the function answers it


def test_jpeg_with_exif_gps_gives_the_exact_fields_and_an_upright_thumbnail():
    photo = Image.open(load_photos()[0]).convert("RGB")  # 640×426
    data = encoded(photo, "JPEG", exif=camera_exif(orientation=6), quality=90)
    meta = extract_metadata(data)
    assert {k: meta[k] for k in EXPECTED_EXIF} == EXPECTED_EXIF
    assert (meta["width"], meta["height"], meta["orientation"]) == (426, 640, 6), "as displayed: rotated 90°"
    assert meta["format"] == "JPEG" and meta["file_size"] == len(data)
    thumb, fmt, w, h = make_thumbnail(data)
    assert (fmt, w, h) == ("JPEG", 166, 250)
    with Image.open(io.BytesIO(thumb)) as out:
        assert out.size == (166, 250)
        assert not out.getexif().get_ifd(ExifTags.IFD.GPSInfo), "the GPS position must not leak into the thumbnail"
        assert out.getexif().get(ExifTags.Base.Orientation) in (None, 1)


def test_orientation_is_applied_to_the_pixels():
    """A red left half, stored with orientation 6 (rotate 90° clockwise to display): red ends up on top."""
    img = Image.new("RGB", (400, 200), "blue")
    ImageDraw.Draw(img).rectangle((0, 0, 199, 199), fill="red")
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    thumb, _, w, h = make_thumbnail(encoded(img, "JPEG", exif=exif, quality=95), max_side=100)
    assert (w, h) == (50, 100)
    with Image.open(io.BytesIO(thumb)) as out:
        top, bottom = out.convert("RGB").getpixel((25, 10)), out.convert("RGB").getpixel((25, 90))
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60


def test_png_keeps_exif_fields_format_and_transparency():
    photo = Image.open(load_photos()[1]).convert("RGBA")
    data = encoded(photo, "PNG", exif=camera_exif())
    meta = extract_metadata(data)
    assert {k: meta[k] for k in EXPECTED_EXIF} == EXPECTED_EXIF
    assert meta["format"] == "PNG" and (meta["width"], meta["height"]) == photo.size
    thumb, fmt, w, h = make_thumbnail(data)
    assert fmt == "PNG" and max(w, h) == 250
    with Image.open(io.BytesIO(thumb)) as out:
        assert out.format == "PNG" and out.mode == "RGBA"


def test_palette_png_and_gif_are_read_and_kept():
    img = Image.new("P", (300, 120), 3)
    for fmt in ("PNG", "GIF"):
        data = encoded(img, fmt)
        meta = extract_metadata(data)
        assert meta["format"] == fmt and (meta["width"], meta["height"]) == (300, 120)
        assert meta["creation_time"] is None and meta["latitude"] is None and meta["make"] is None
        thumb, out_fmt, w, h = make_thumbnail(data)
        assert (out_fmt, w, h) == (fmt, 250, 100)
        assert Image.open(io.BytesIO(thumb)).format == fmt


def test_small_images_are_never_upscaled():
    data = encoded(Image.new("RGB", (120, 80), "green"), "JPEG")
    _, fmt, w, h = make_thumbnail(data)
    assert (fmt, w, h) == ("JPEG", 120, 80)


def test_other_formats_become_png_thumbnails():
    data = encoded(Image.new("RGB", (500, 500), "white"), "BMP")
    assert extract_metadata(data)["format"] == "BMP"
    _, fmt, w, h = make_thumbnail(data)
    assert (fmt, w, h) == ("PNG", 250, 250)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"this is a text file, not a photo\n" * 3, "not an image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 40, ""),  # a JPEG signature and nothing valid after it
    ],
)
def test_garbage_raises_unreadable_image_with_a_reason(data, reason):
    for fn in (extract_metadata, make_thumbnail):
        with pytest.raises(UnreadableImage) as err:
            fn(data)
        assert isinstance(err.value, ValueError) and str(err.value)
        assert reason in str(err.value)


def test_truncated_jpeg_is_unreadable_in_both():
    data = load_photos()[2].read_bytes()
    cut = data[: len(data) // 3]
    with pytest.raises(UnreadableImage, match="does not decode"):
        extract_metadata(cut)
    with pytest.raises(UnreadableImage, match="does not decode"):
        make_thumbnail(cut)


def test_malformed_exif_values_become_none_not_errors():
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "   "
    exif[ExifTags.IFD.Exif] = {ExifTags.Base.DateTimeOriginal: "0000:00:00 00:00:00"}
    exif[ExifTags.IFD.GPSInfo] = {ExifTags.GPS.GPSLatitudeRef: "Q", ExifTags.GPS.GPSLatitude: (1, 2, 3),
                                  ExifTags.GPS.GPSLongitudeRef: "E",
                                  ExifTags.GPS.GPSLongitude: (IFDRational(1, 0), IFDRational(0), IFDRational(0))}  # fmt: skip
    meta = extract_metadata(encoded(Image.new("RGB", (64, 48)), "JPEG", exif=exif))
    assert meta["make"] is None and meta["creation_time"] is None
    assert meta["latitude"] is None and meta["longitude"] is None
    assert (meta["width"], meta["height"]) == (64, 48)


def test_fractional_degrees_are_normalised_to_dms():
    exif = Image.Exif()
    exif[ExifTags.IFD.GPSInfo] = {ExifTags.GPS.GPSLatitudeRef: "S", ExifTags.GPS.GPSLatitude: (IFDRational(3375, 100), IFDRational(0), IFDRational(0)),
                                  ExifTags.GPS.GPSLongitudeRef: "E", ExifTags.GPS.GPSLongitude: (IFDRational(151), IFDRational(125, 10), IFDRational(0))}  # fmt: skip
    meta = extract_metadata(encoded(Image.new("RGB", (8, 8)), "JPEG", exif=exif))
    assert meta["latitude"] == {"degrees": 33, "minutes": 45, "seconds": 0.0, "direction": "S"}
    assert meta["longitude"] == {"degrees": 151, "minutes": 12, "seconds": 30.0, "direction": "E"}


def test_decompression_bomb_is_refused_before_decoding():
    # A PNG header claiming 30000 × 30000 pixels (900 MP), beyond Pillow's safety limit.
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")
    with pytest.raises(ImageTooLarge):
        extract_metadata(data)
    with pytest.raises(UnreadableImage):
        make_thumbnail(data)


PEAK_SCRIPT = """
import resource, sys
from cloudpose.tasks.photo.thumbnail import make_thumbnail
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
_, fmt, w, h = make_thumbnail(data)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(fmt, w, h, (after - before) // 1024)
"""


def test_big_jpeg_thumbnail_is_decoded_reduced(tmp_path):
    """24 MP: a full RGB decode needs 72 MiB; the reduced decode (1/8) needs about 1 MiB."""
    import numpy as np

    rng = np.random.default_rng(0)
    big = Image.fromarray(rng.integers(0, 256, (4000, 6000, 3), dtype=np.uint8)).resize((6000, 4000))
    path = tmp_path / "big.jpg"
    big.save(path, "JPEG", quality=80)
    del big
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(path)], capture_output=True, text=True, timeout=60,
                         cwd=ROOT)  # fmt: skip
    assert out.returncode == 0, out.stderr
    fmt, w, h, grown_mib = out.stdout.split()
    assert (fmt, int(w), int(h)) == ("JPEG", 250, 167)
    assert int(grown_mib) < 30, f"peak memory grew {grown_mib} MiB: the JPEG was not decoded reduced"


def test_max_side_must_be_positive():
    with pytest.raises(ValueError):
        make_thumbnail(encoded(Image.new("RGB", (10, 10)), "PNG"), max_side=0)
