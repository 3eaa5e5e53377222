"""Parsing of webhook (callback) bodies: framework-neutral, strict about structure.

A callback arrives as raw body bytes, as the mapping a framework decoded from them
(``await request.json()``) or as a ``CallbackPayload`` already parsed: ``as_callback`` takes
any of them, with the same checks and size limit. ``parse_callback`` is re-exported by
``ketchup_async.webhooks``; nothing here knows about HTTP frameworks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeAlias

from . import _validate
from ._converter import structure_callback
from ._models import CallbackPayload, TaskStatus
from .errors import ValidationError

__all__ = ["MAX_CALLBACK_BYTES", "CallbackLike", "as_callback", "parse_callback"]

#: The largest callback body accepted (bytes); the API's callbacks are a few hundred bytes.
MAX_CALLBACK_BYTES = 64 * 1024

#: What ``KetchupClient.deliver`` takes: a parsed payload, the decoded JSON body or the raw body.
CallbackLike: TypeAlias = CallbackPayload | Mapping[str, Any] | bytes | bytearray | memoryview

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
    return _structure(_decode(body))


def _structure(data: object) -> CallbackPayload:
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


def as_callback(
    payload: CallbackLike,
    *,
    max_bytes: int = MAX_CALLBACK_BYTES,
) -> CallbackPayload:
    """Return ``payload`` as a ``CallbackPayload``, parsing it like ``parse_callback``.

    Args:
        payload: A ``CallbackPayload``; the decoded JSON body (``await request.json()``), whose
            JSON encoding is held to ``max_bytes`` too; or the raw body bytes.
        max_bytes: The largest body accepted.

    Raises:
        ValidationError: Naming what was wrong (see ``parse_callback``), or ``payload`` when
            it is none of these.
    """
    if isinstance(payload, CallbackPayload):
        return payload
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return parse_callback(bytes(payload), max_bytes=max_bytes)
    if isinstance(payload, Mapping):
        try:
            size = len(json.dumps(payload, separators=(",", ":"), allow_nan=False))
        except (TypeError, ValueError, RecursionError) as exc:
            raise ValidationError("body", f"is not JSON data ({exc})") from None
        if size > max_bytes:
            raise ValidationError("body", f"is {size:,} bytes as JSON; the limit is {max_bytes:,}")
        return _structure(dict(payload))
    raise ValidationError(
        "payload",
        f"must be a CallbackPayload, a mapping (the JSON body) or the raw body bytes, "
        f"got {type(payload).__name__}",
    )
