"""Downloads of result images: streamed, capped, atomic, never with the API key.

URL results live on a CDN (another host than the API): they are fetched with the SDK's
User-Agent only, streamed to a temporary file next to the destination, and renamed into place
once complete. Data URIs are decoded under the same size cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
from pathlib import Path

import aiohttp
import anyio

from . import _retry, _validate
from ._http import USER_AGENT
from ._models import ImageResult, RetryPolicy
from .errors import DownloadError, ValidationError

__all__ = ["DEFAULT_MAX_BYTES", "download_image", "extension_for", "safe_name"]

logger = logging.getLogger("ketchup_async")

#: Default cap on one image, bytes.
DEFAULT_MAX_BYTES = 50 * 1024 * 1024

_TYPES = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/avif": ".avif",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Device names Windows refuses as file names, whatever the extension.
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
)
# Statuses of the image host worth another attempt.
_RETRY_STATUSES = frozenset({408, 425, 429})


def safe_name(text: str, *, max_len: int = 100) -> str:
    """A file name made from ``text`` that cannot leave its directory or hide itself.

    Only ASCII letters, digits, ``.``, ``_`` and ``-`` are kept (runs of anything else become
    one ``_``); leading and trailing dots and underscores are dropped, so the result is never
    ``.``, ``..`` or a hidden file; Windows device names get a ``_`` prefix; an empty result
    becomes ``image``.
    """
    name = _UNSAFE.sub("_", text).strip("._")[: max(1, max_len)].strip("._")
    if not name:
        return "image"
    if name.split(".", 1)[0].upper() in _RESERVED:
        name = f"_{name}"[: max(1, max_len)]
    return name


def extension_for(content_type: str | None, head: bytes) -> str | None:
    """The file extension for a content type, else from the PNG/JPEG/WebP/GIF magic bytes."""
    if content_type:
        ext = _TYPES.get(content_type.split(";", 1)[0].strip().lower())
        if ext:
            return ext
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if head.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return ".gif"
    if head[4:12] == b"ftypavif":
        return ".avif"
    return None


def _target(dest: Path, ext: str) -> Path:
    return dest if dest.suffix else dest.with_name(dest.name + ext)


def _part_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{os.getpid()}.{random.getrandbits(32):08x}.part")


def _write_atomically(target: Path, data: bytes | None, part: Path | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if data is not None:
        part = _part_path(target)
        try:
            with open(part, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                part.unlink()
            raise
    else:
        assert part is not None
        with open(part, "rb+") as handle:
            os.fsync(handle.fileno())
    os.replace(part, target)


async def _decode_data_uri(image: ImageResult, dest: Path, max_bytes: int) -> Path:
    header, _, payload = image.image.partition(",")
    if len(payload) * 3 // 4 > max_bytes:
        raise DownloadError(f"data URI image is larger than the {max_bytes:,}-byte cap")
    try:
        data = image.decode()
    except ValidationError as exc:
        raise DownloadError(f"data URI result cannot be decoded: {exc.problem}") from None
    ext = extension_for(image.media_type, data[:16])
    if ext is None:
        raise DownloadError(f"data URI is not a known image type ({header[:40]!r})")
    target = _target(dest, ext)
    await anyio.to_thread.run_sync(_write_atomically, target, data, None)
    return target


async def _fetch_once(
    session: aiohttp.ClientSession,
    url: str,
    dest: Path,
    max_bytes: int,
    timeout: float,
) -> Path:
    client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
    headers = {"User-Agent": USER_AGENT, "Accept": "image/*"}
    async with session.get(url, headers=headers, timeout=client_timeout) as response:
        if response.status >= 400:
            raise DownloadError(
                f"image host answered HTTP {response.status}", status_code=response.status
            )
        declared = response.content_length
        if declared is not None and declared > max_bytes:
            raise DownloadError(f"image is {declared:,} bytes; the cap is {max_bytes:,}")
        content_type = response.headers.get("Content-Type", "")
        if content_type and not content_type.lower().startswith(("image/", "application/octet")):
            raise DownloadError(f"image host sent {content_type!r}, not an image")
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = _part_path(dest)
        size = 0
        head = b""
        try:
            with open(part, "wb") as handle:  # noqa: ASYNC230 - small chunked writes
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        raise DownloadError(f"image exceeds the {max_bytes:,}-byte cap")
                    if len(head) < 16:
                        head += chunk[:16]
                    handle.write(chunk)
            ext = extension_for(content_type, head)
            if ext is None:
                raise DownloadError(f"downloaded data is not a known image type ({content_type!r})")
            target = _target(dest, ext)
            await anyio.to_thread.run_sync(_write_atomically, target, None, part)
            return target
        except BaseException:
            with contextlib.suppress(OSError):
                part.unlink()
            raise


async def download_image(
    session: aiohttp.ClientSession,
    image: ImageResult,
    dest: Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    retry: RetryPolicy | None = None,
    timeout: float = 30.0,
    overwrite: bool = True,
    rng: random.Random | None = None,
) -> Path:
    """Write ``image`` to ``dest`` (suffix added from the content type if ``dest`` has none).

    Raises:
        ValidationError: The image is neither an http(s) URL nor a data URI.
        DownloadError: The image host refused, the body is too large or not an image, or the
            connection kept failing after retries.
    """
    if not overwrite and dest.suffix and dest.exists():  # noqa: ASYNC240
        return dest
    if image.is_data_uri:
        return await _decode_data_uri(image, dest, max_bytes)
    url = _validate.check_http_url(image.image, field="image")
    policy = retry or RetryPolicy()
    rng = rng or random.Random()
    for attempt in range(policy.max_retries + 1):
        try:
            return await _fetch_once(session, url, dest, max_bytes, timeout)
        except DownloadError as exc:
            status = exc.status_code
            retryable = status is not None and (status >= 500 or status in _RETRY_STATUSES)
            if not retryable or attempt >= policy.max_retries:
                raise
            error: Exception = exc
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            if attempt >= policy.max_retries:
                raise DownloadError(f"image download failed: {type(exc).__name__}") from None
            error = exc
        delay = _retry.backoff_delay(attempt, policy, rng)
        logger.debug("download failed (%s); retrying in %.2f s", error, delay)
        await asyncio.sleep(delay)
    raise ValidationError("image", "unreachable")  # pragma: no cover
