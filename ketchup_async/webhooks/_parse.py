"""Reading webhook (callback) bodies with a size cap; parsing is ``.._callback``'s.

Re-exported by ``ketchup_async.webhooks``; nothing here knows about HTTP frameworks.
"""

from __future__ import annotations

from collections.abc import AsyncIterable

from .._callback import MAX_CALLBACK_BYTES, parse_callback

__all__ = ["MAX_CALLBACK_BYTES", "parse_callback", "read_body"]


async def read_body(chunks: AsyncIterable[bytes], *, limit: int = MAX_CALLBACK_BYTES) -> bytes:
    """Read a request body from ``chunks``, stopping once it is longer than ``limit``.

    Returns at most ``limit + 1`` bytes, so a caller (``WebhookReceiver.handle``) can tell an
    oversized body from one that is exactly at the limit, without ever buffering more.

    Args:
        chunks: The body as an async iterable, e.g. aiohttp's ``request.content.iter_any()``
            or Starlette's ``request.stream()``.
        limit: The largest body wanted, in bytes.
    """
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            parts.append(chunk[: limit + 1 - size])
            size += len(parts[-1])
            if size > limit:
                break
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    return b"".join(parts)
