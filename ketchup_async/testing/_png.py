"""A tiny pure-Python PNG encoder (zlib + struct) for the fake image CDN."""

from __future__ import annotations

import base64
import functools
import hashlib
import struct
import zlib

__all__ = ["PNG_SIGNATURE", "make_png", "png_data_uri", "prompt_png", "prompt_rgb"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_IMAGE_SIZE = 64


def _chunk(kind: bytes, data: bytes) -> bytes:
    """Encode one PNG chunk: length, type, data and the CRC of type + data."""
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def make_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """Encode a solid-colour 8-bit RGB PNG.

    Args:
        width: Image width in pixels (>= 1).
        height: Image height in pixels (>= 1).
        rgb: The colour as three ints in 0..255.

    Returns:
        The complete PNG file (signature, IHDR, IDAT, IEND).

    Raises:
        ValueError: If a dimension is not positive or a channel is out of range.
    """
    if width < 1 or height < 1:
        raise ValueError(f"PNG dimensions must be positive, got {width}x{height}")
    if len(rgb) != 3 or any(not 0 <= c <= 255 for c in rgb):
        raise ValueError(f"rgb must be three ints in 0..255, got {rgb!r}")
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\x00" + bytes(rgb) * width  # filter type 0 (None) per scanline
    idat = zlib.compress(row * height, 9)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def prompt_rgb(prompt: str) -> tuple[int, int, int]:
    """Derive a stable colour from a prompt (first three bytes of its BLAKE2 hash)."""
    digest = hashlib.blake2b(prompt.encode("utf-8", "surrogatepass"), digest_size=3).digest()
    return digest[0], digest[1], digest[2]


@functools.lru_cache(maxsize=1024)
def prompt_png(prompt: str) -> bytes:
    """Return the (cached) 64x64 PNG the fake renders for ``prompt``."""
    return make_png(_IMAGE_SIZE, _IMAGE_SIZE, prompt_rgb(prompt))


@functools.lru_cache(maxsize=1024)
def png_data_uri(prompt: str) -> str:
    """Return the (cached) ``data:image/png;base64,...`` URI of :func:`prompt_png`."""
    return "data:image/png;base64," + base64.b64encode(prompt_png(prompt)).decode("ascii")
