"""Parsing of webhook (callback) bodies: framework-neutral, strict about structure.

Re-exported by ``ketchup_async.webhooks``; nothing here knows about HTTP frameworks.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable
from typing import Any

from .. import _validate
from .._converter import structure_callback
from .._models import CallbackPayload, TaskStatus
from ..errors import ValidationError

__all__ = ["MAX_CALLBACK_BYTES", "parse_callback", "read_body"]

#: The largest callback body accepted (bytes); the API's callbacks are a few hundred bytes.
MAX_CALLBACK_BYTES = 64 * 1024

_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _decode(body: bytes) -> object:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("body", "is not UTF-8 text") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            "body", f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ValidationError("body", f"is not valid JSON ({exc})") from None


def parse_callback(body: bytes, *, max_bytes: int = MAX_CALLBACK_BYTES) -> CallbackPayload:
    """Parse and validate one callback body, as the API POSTs it to a ``callback_url``.

    Strict about structure (a JSON object with a valid ``task_id``, a final ``status``, a
    decimal ``consumed`` when present, and at least one image on ``success``), tolerant of
    keys it does not know. Framework-neutral: hand it the raw request body.

    Args:
        body: The raw request body.
        max_bytes: Bodies longer than this are refused.

    Returns:
        The parsed ``CallbackPayload`` (pass it to ``KetchupClient.deliver``).

    Raises:
        ValidationError: Naming what was wrong: ``body`` (too large, not UTF-8, not JSON, not
            an object), ``task_id``, ``status`` (missing, unknown or not final), ``consumed``
            or ``result``.
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise ValidationError("body", f"must be bytes, got {type(body).__name__}")
    body = bytes(body)
    if len(body) > max_bytes:
        raise ValidationError("body", f"is {len(body):,} bytes; the limit is {max_bytes:,}")
    data = _decode(body)
    if not isinstance(data, dict):
        raise ValidationError("body", f"must be a JSON object, got {_json_type(data)}")
    if "task_id" not in data:
        raise ValidationError("task_id", "is missing")
    _validate.check_task_id(data["task_id"])
    payload = structure_callback(data)
    if payload.status is TaskStatus.SUCCESS:
        if not payload.images:
            raise ValidationError("result", "a success callback must carry at least one image")
        for i, image in enumerate(payload.images):
            _validate.check_image_ref(image.image, field=f"result[{i}].image")
    return payload


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
