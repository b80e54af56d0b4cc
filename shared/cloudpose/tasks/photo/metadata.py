"""A photo's metadata from its bytes: EXIF capture time, GPS position, camera, displayed size, format.

Pure: bytes in, plain JSON-ready data out; no pixels are kept. The album pipeline's first step (the
AWS sample's ExtractImageMetadata), served as the function `photo-metadata`. Only the header and EXIF
are parsed; a JPEG is also decoded at 1/8 scale inside libjpeg, so a truncated file is caught here,
cheaply, instead of in the steps after it.
"""

from __future__ import annotations

import io
import warnings
from datetime import datetime
from fractions import Fraction
from typing import Any

from PIL import ExifTags, Image, UnidentifiedImageError

# Pillow reports a multi-picture JPEG (most phone cameras) as MPO: for a reader it is a JPEG.
FORMAT_ALIASES = {"MPO": "JPEG"}
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485  # Pillow's own bomb threshold (~89 MP), checked from the header
ROTATED = {5, 6, 7, 8}  # EXIF orientations that swap width and height on display
EXIF_DATE = "%Y:%m:%d %H:%M:%S"


class UnreadableImage(ValueError):
    """The bytes are not an image Pillow can read (unknown format, truncated, corrupt); the message says why."""


class ImageTooLarge(UnreadableImage):
    """More pixels than Pillow will decode (a decompression bomb); a subclass, so a caller may answer 413."""


def open_image(data: bytes) -> Image.Image:
    """Open (not decode) `data`, turning every reason it cannot be read into UnreadableImage."""
    if not data:
        raise UnreadableImage("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"too many pixels to decode safely ({exc})") from None
    except UnidentifiedImageError:
        raise UnreadableImage(f"not an image: no known image format in these {len(data)} bytes") from None
    except (OSError, SyntaxError, ValueError) as exc:  # a recognised header that is broken
        raise UnreadableImage(f"corrupt image header ({len(data)} bytes): {exc}") from None
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise ImageTooLarge(f"{width} × {height} pixels is over the {MAX_PIXELS} this function decodes")
    if width < 1 or height < 1:
        raise UnreadableImage(f"the image has no pixels ({width} × {height})")
    return img


def image_format(img: Image.Image) -> str:
    return FORMAT_ALIASES.get(img.format or "", img.format or "UNKNOWN")


def extract_metadata(data: bytes) -> dict[str, Any]:
    """creation_time, latitude, longitude, make, model, width, height, orientation, file_size, format.

    creation_time is EXIF DateTimeOriginal as ISO 8601 (with sub-seconds and UTC offset when the camera
    wrote them), latitude / longitude are {"degrees", "minutes", "seconds", "direction"}; each is None
    when absent or malformed. width and height are as displayed, after the EXIF orientation.
    Raises UnreadableImage for bytes that are not a readable image.
    """
    img = open_image(data)
    fmt = image_format(img)
    _check_decodes(open_image(data), fmt, len(data))  # on its own handle: verify() must come first
    try:
        exif = img.getexif()
        exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except Exception:  # a broken EXIF block must not hide an otherwise good photo
        exif, exif_ifd, gps = Image.Exif(), {}, {}
    orientation = _int(exif.get(ExifTags.Base.Orientation)) or 1
    if orientation not in range(1, 9):
        orientation = 1
    width, height = img.size
    if orientation in ROTATED:
        width, height = height, width
    return {
        "creation_time": _creation_time(exif_ifd),
        "latitude": _coordinate(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef), "NS", 90),
        "longitude": _coordinate(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef), "EW", 180),
        "make": _text(exif.get(ExifTags.Base.Make)),
        "model": _text(exif.get(ExifTags.Base.Model)),
        "width": width,
        "height": height,
        "orientation": orientation,
        "file_size": len(data),
        "format": fmt,
    }


def _check_decodes(img: Image.Image, fmt: str, size: int) -> None:
    """A JPEG is decoded at 1/8 scale (cheap: libjpeg skips most of the work); other formats are
    checked structurally (PNG chunk CRCs), since decoding them means decoding every pixel."""
    try:
        if fmt == "JPEG":
            img.draft(None, (1, 1))
            img.load()
        else:
            img.verify()
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, EOFError, IndexError...
        raise UnreadableImage(f"{fmt} data does not decode ({size} bytes): {exc or type(exc).__name__}") from None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value or None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _creation_time(exif_ifd: Any) -> str | None:
    raw = _text(exif_ifd.get(ExifTags.Base.DateTimeOriginal))
    if not raw:
        return None
    try:
        stamp = datetime.strptime(raw[:19], EXIF_DATE)
    except ValueError:  # "0000:00:00 00:00:00", blanks, or a camera's own format
        return None
    iso = stamp.isoformat()
    subsec = _text(exif_ifd.get(ExifTags.Base.SubsecTimeOriginal))
    if subsec and subsec.isdigit():
        iso += f".{subsec}"
    offset = _text(exif_ifd.get(ExifTags.Base.OffsetTimeOriginal))
    if offset and len(offset) == 6 and offset[0] in "+-" and offset[3] == ":":
        iso += offset
    return iso


def _fraction(value: Any) -> Fraction | None:
    """An EXIF rational (Pillow's IFDRational, a tuple, or a number) as an exact Fraction."""
    try:
        if hasattr(value, "numerator") and hasattr(value, "denominator"):
            if not value.denominator:
                return None
            return Fraction(int(value.numerator), int(value.denominator))
        if isinstance(value, tuple) and len(value) == 2:
            return Fraction(int(value[0]), int(value[1])) if value[1] else None
        return Fraction(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None


def _coordinate(dms: Any, ref: Any, directions: str, limit: int) -> dict[str, Any] | None:
    """EXIF's three rationals (degrees, minutes, seconds) and a reference letter → D/M/S/direction.

    Exact arithmetic, then normalised (37.5° 0′ 0″ becomes 37° 30′ 0″), so the same position always
    reads the same; seconds keep 4 decimals (about 3 mm)."""
    direction = _text(ref)
    if not direction or direction.upper()[:1] not in directions:
        return None
    if not isinstance(dms, (tuple, list)) or not 1 <= len(dms) <= 3:
        return None
    parts = [_fraction(v) for v in dms]
    if any(p is None or p < 0 for p in parts):
        return None
    total = sum((p * unit for p, unit in zip(parts, (3600, 60, 1))), Fraction(0))
    if total > limit * 3600:
        return None
    degrees = int(total // 3600)
    minutes = int((total - degrees * 3600) // 60)
    seconds = round(float(total - degrees * 3600 - minutes * 60), 4)
    if seconds >= 60:  # rounding reached the next minute
        seconds, minutes = 0.0, minutes + 1
        if minutes == 60:
            minutes, degrees = 0, degrees + 1
    return {"degrees": degrees, "minutes": minutes, "seconds": seconds, "direction": direction.upper()[:1]}
