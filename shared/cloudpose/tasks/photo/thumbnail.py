"""A photo's thumbnail from its bytes: fits max_side × max_side, same aspect and format, upright.

Pure: bytes in, encoded thumbnail out. The album pipeline's thumbnail step (the AWS sample's
ImageMagick resize, here with Pillow only), served as the function `photo-thumbnail`.

Memory stays bounded for big photos: a JPEG is decoded reduced inside libjpeg (draft: 1/2 to 1/8
scale, never below twice the target), so a 12 MP photo costs about what a 1 MP one does; other
formats decode whole and are shrunk with reduce() before the final resample. The thumbnail carries no
EXIF (the orientation is applied to the pixels; the GPS position does not leak into it), only the
colour profile, so it looks like the original.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps

from .metadata import UnreadableImage, image_format, open_image

KEPT_FORMATS = {"JPEG", "PNG", "GIF", "WEBP"}  # anything else becomes a PNG (lossless, shown everywhere)
JPEG_QUALITY = 85
SAVE_OPTIONS = {
    "JPEG": {"quality": JPEG_QUALITY, "optimize": True},
    "PNG": {"optimize": True},
    "GIF": {},
    "WEBP": {"quality": JPEG_QUALITY},
}


def make_thumbnail(data: bytes, max_side: int = 250) -> tuple[bytes, str, int, int]:
    """(encoded thumbnail, its format, width, height): the upright image scaled to fit max_side × max_side.

    Keeps the aspect ratio and the format (JPEG stays JPEG, PNG stays PNG; GIF and WebP too; others
    become PNG), never upscales, keeps only the first frame of an animation. Raises UnreadableImage
    for bytes that are not a readable image, ValueError for max_side < 1.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, not {max_side}")
    img = open_image(data)
    source_format = image_format(img)
    out_format = source_format if source_format in KEPT_FORMATS else "PNG"
    icc = img.info.get("icc_profile")
    try:
        if source_format == "JPEG":
            img.draft(None, (2 * max_side, 2 * max_side))  # reduced decode, still ≥ 2× the target
        img = ImageOps.exif_transpose(img)  # decodes; orientation 6 and 8 swap width and height
        img = _resizable(img, out_format)
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
        img = _savable(img, out_format)
        buffer = io.BytesIO()
        options = dict(SAVE_OPTIONS[out_format])
        if icc and out_format in {"JPEG", "PNG", "WEBP"}:
            options["icc_profile"] = icc
        img.save(buffer, out_format, **options)
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        raise UnreadableImage(f"{source_format} data does not decode ({len(data)} bytes): {exc}") from None
    return buffer.getvalue(), out_format, img.width, img.height


def _resizable(img: Image.Image, out_format: str) -> Image.Image:
    """A mode that resamples smoothly: palette and 1-bit images would only get nearest-neighbour."""
    if img.mode == "P":
        return img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode == "1":
        return img.convert("L")
    if img.mode == "CMYK" or img.mode.startswith(("YCbCr", "LAB", "HSV", "F")):
        return img.convert("RGB")
    if img.mode in {"PA", "La"}:
        return img.convert("RGBA")
    return img


def _savable(img: Image.Image, out_format: str) -> Image.Image:
    """A mode the output format can store."""
    if out_format == "JPEG" and img.mode not in {"L", "RGB"}:
        return img.convert("RGB")
    if out_format in {"GIF", "WEBP"} and img.mode not in {"L", "RGB", "RGBA"}:
        return img.convert("RGBA" if "A" in img.mode else "RGB")
    if out_format == "PNG" and img.mode not in {"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"}:
        return img.convert("RGBA" if "A" in img.mode else "RGB")
    return img
