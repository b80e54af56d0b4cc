"""What an upload really is, from its first bytes: never from its file name or the client's Content-Type.

The sniffed type is what the original is served back as; anything not recognised is served as an
opaque download, so an uploaded HTML or SVG file can never run in the album's origin.
"""

from __future__ import annotations

OCTET_STREAM = "application/octet-stream"
# (offset, magic bytes, content type); checked in order
SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"BM", "image/bmp"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
)
HEIF_BRANDS = {b"heic": "image/heic", b"heix": "image/heic", b"mif1": "image/heif", b"avif": "image/avif"}
IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff",
               "image/heic", "image/heif", "image/avif"}  # fmt: skip


def sniff(head: bytes) -> str:
    """The content type that `head` (the first bytes of a file, 16 or more) starts like."""
    for offset, magic, kind in SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
        return HEIF_BRANDS[head[8:12]]
    return OCTET_STREAM


def is_image_type(content_type: str) -> bool:
    return content_type in IMAGE_TYPES
