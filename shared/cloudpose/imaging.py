"""Image bytes → BGR pixels, refusing bombs before decoding and decoding big JPEGs at reduced scale.

The header is read first (Pillow reads only the header on `open`), so an image over the pixel
limit costs microseconds, not a 40 MP allocation. A JPEG much larger than the model input is
decoded at 1/2, 1/4 or 1/8 scale inside libjpeg (DCT scaling): a 12 MP phone photo then costs
about what a 1 MP one does, and still gives the letterbox at least `min_side` pixels.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import EmptyImage, ImageTooLarge, NotAnImage

_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

Image.MAX_IMAGE_PIXELS = None  # our own limit applies (below); Pillow's bomb check would only duplicate it


@dataclass(frozen=True, slots=True)
class Header:
    width: int  # as displayed, i.e. after EXIF orientation
    height: int
    format: str
    orientation: int = 1


@dataclass(frozen=True, slots=True)
class Decoded:
    pixels: np.ndarray  # HxWx3 uint8 BGR, possibly reduced (empty when a task asked for the header only)
    width: int  # original (displayed) size, the frame every coordinate is reported in
    height: int
    format: str
    data: bytes = b""  # the file as received, for tasks that read more than pixels (EXIF, the original format)

    @property
    def scale(self) -> float:
        """Original pixels per decoded pixel (1 unless decoded at reduced scale)."""
        return self.width / self.pixels.shape[1]


def probe(data: bytes) -> Header:
    """Read only the header: format, size and EXIF orientation."""
    if not data:
        raise EmptyImage("image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                fmt = im.format or "unknown"
                orientation = _orientation(im)
    # ImportError: where Ultralytics is imported too (parity tests), it patches Image.open to try an
    # optional HEIF plugin on unknown bytes, and that import fails instead.
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error, ImportError) as exc:
        if data.startswith(_PNG_SIGNATURE) and data[12:16] == b"IHDR" and len(data) >= 24:
            # A PNG whose IHDR is readable but whose rest Pillow refuses (cut short, say): its size is
            # known, so the limits answer first (a 60000×60000 header is "too large", not "unreadable");
            # within them, decoding fails and says so.
            width, height = struct.unpack(">II", data[16:24])
            if width == 0 or height == 0:
                raise EmptyImage(f"PNG header says {width}×{height} pixels") from None
            return Header(width, height, "PNG")
        raise NotAnImage(f"bytes are not an image this service can read ({len(data)} bytes; {_first_line(exc)})") from None
    if width <= 0 or height <= 0:
        raise EmptyImage(f"{fmt} image has {width}×{height} pixels")
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return Header(width, height, fmt, orientation)


def check(data: bytes, *, max_pixels: int) -> Header:
    """The header, once it is known to be an image within the pixel limit (nothing decoded)."""
    header = probe(data)
    pixels = header.width * header.height
    if pixels > max_pixels:
        raise ImageTooLarge(
            f"image is {header.width}×{header.height} = {pixels / 1e6:.1f} MP, the limit is {max_pixels / 1e6:.1f} MP"
        )
    return header


def header_only(data: bytes, *, max_pixels: int) -> Decoded:
    """For tasks that read the file themselves (photo metadata, thumbnails): checked like `decode`, not decoded."""
    header = check(data, max_pixels=max_pixels)
    return Decoded(np.zeros((0, 0, 3), np.uint8), header.width, header.height, header.format, data)


def decode(data: bytes, *, max_pixels: int, min_side: int) -> Decoded:
    """Decode to BGR, honouring EXIF orientation; JPEGs larger than needed are decoded reduced."""
    header = check(data, max_pixels=max_pixels)
    factor = reduction(header, min_side)
    buf = np.frombuffer(data, np.uint8)
    # Orientation is applied below, the same way for every scale (OpenCV skips it for reduced reads).
    img = cv2.imdecode(buf, _REDUCED[factor] | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None or img.size == 0:
        raise NotAnImage(f"could not decode this {header.format} image (corrupt or unsupported)")
    img = _orient(img, header.orientation)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return Decoded(img, header.width, header.height, header.format, data)


def reduction(header: Header, min_side: int) -> int:
    """Largest DCT scale factor whose long side is at least 90% of `min_side` (JPEG only).

    90%: a 4032-px photo decodes at 1/8 (504 px) for a 512 model, a ~2% enlargement in the letterbox,
    rather than at 1/4 (1008 px) and a 2× reduction: less work, the same picture for the model.
    """
    if header.format != "JPEG" or min_side <= 0:
        return 1
    long_side = max(header.width, header.height)
    for factor in (8, 4, 2):
        if -(-long_side // factor) >= 0.9 * min_side:
            return factor
    return 1


def _orientation(im: Image.Image) -> int:
    try:
        if im.format == "PNG":
            # Pillow's PNG getexif() decodes the whole image to look for an eXIf chunk after the pixels:
            # a decompression bomb would be inflated here, before the pixel limit. Only a chunk seen in
            # the header counts.
            exif = Image.Exif()
            if raw := im.info.get("exif"):
                exif.load(raw)
        else:
            exif = im.getexif()
        value = int(exif.get(0x0112, 1))
    except Exception:  # a broken EXIF block must not make a good image unreadable
        return 1
    return value if 1 <= value <= 8 else 1


_ORIENT = {
    2: lambda im: cv2.flip(im, 1),
    3: lambda im: cv2.rotate(im, cv2.ROTATE_180),
    4: lambda im: cv2.flip(im, 0),
    5: cv2.transpose,
    6: lambda im: cv2.rotate(im, cv2.ROTATE_90_CLOCKWISE),
    7: lambda im: cv2.rotate(cv2.transpose(im), cv2.ROTATE_180),
    8: lambda im: cv2.rotate(im, cv2.ROTATE_90_COUNTERCLOCKWISE),
}


def _orient(img: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1–8) so the pixels are as a photo viewer shows them."""
    turn = _ORIENT.get(orientation)
    return img if turn is None else turn(img)


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return re.sub(r"\s*<[^>]*>", "", text).strip()[:120]


def encode_jpeg(img: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
