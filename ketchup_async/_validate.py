"""Local validation of user input: pure functions that raise ``ValidationError``.

Everything here runs before a request is built, so a bad input never costs a request.
"""

from __future__ import annotations

import binascii
import math
import re
from base64 import b64decode
from collections.abc import Iterable, Mapping
from typing import TypeGuard
from urllib.parse import urlsplit

from .errors import ValidationError

#: The models the provider documents. Other names are allowed (the API may add models).
MODEL_GEMPIX2 = "google/gempix2"
MODEL_GEMINI_FLASH_IMAGE = "google/gemini-2.5-flash-image"
KNOWN_MODELS = (MODEL_GEMPIX2, MODEL_GEMINI_FLASH_IMAGE)

#: The provider's table says "max 4" reference images (its prose says five): 4 by default.
DEFAULT_MAX_IMAGES = 4
#: Longest prompt accepted locally (characters); the API documents none, this stops accidents.
MAX_PROMPT_CHARS = 100_000
#: Longest reference data URI accepted locally (characters of the whole URI).
MAX_DATA_URI_CHARS = 16 * 1024 * 1024
#: Longest URL accepted (characters).
MAX_URL_CHARS = 8192

#: Longest task id accepted (characters). The API documents ids like ``ta…``; any printable
#: id it issues is accepted (and URL-encoded in queries), so every run can be resumed.
MAX_TASK_ID_CHARS = 256
_DATA_URI = re.compile(r"data:image/([a-z0-9.+-]+);base64,", re.IGNORECASE)


def check_prompt(value: object, *, field: str = "prompt") -> str:
    """Return the prompt, or raise if it is not a non-blank string of sane length."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValidationError(field, "must not be empty or only whitespace")
    if len(value) > MAX_PROMPT_CHARS:
        raise ValidationError(
            field, f"is {len(value):,} characters long; the limit is {MAX_PROMPT_CHARS:,}"
        )
    if "\x00" in value:
        raise ValidationError(field, "must not contain NUL characters")
    return value


def check_model(value: object, *, field: str = "model") -> str:
    """Return the model name, or raise if it is not a non-empty string."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValidationError(field, "must not be empty")
    if value != value.strip() or any(c.isspace() for c in value):
        raise ValidationError(field, f"must not contain whitespace, got {value!r}")
    return value


def check_http_url(value: object, *, field: str) -> str:
    """Return an absolute ``http(s)`` URL with a host, or raise naming ``field``."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string URL, got {type(value).__name__}")
    if len(value) > MAX_URL_CHARS:
        raise ValidationError(field, f"URL is longer than {MAX_URL_CHARS} characters")
    if any(c.isspace() or ord(c) < 32 for c in value):
        raise ValidationError(field, "URL must not contain whitespace or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValidationError(field, f"is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        shown = parts.scheme or "none"
        raise ValidationError(field, f"must be an absolute http(s) URL (scheme was {shown!r})")
    if not parts.hostname:
        raise ValidationError(field, "must be an absolute http(s) URL with a host")
    return value


def check_data_uri(value: str, *, field: str, max_chars: int = MAX_DATA_URI_CHARS) -> str:
    """Return a ``data:image/...;base64,`` URI whose payload is valid base64, or raise."""
    match = _DATA_URI.match(value)
    if match is None:
        raise ValidationError(field, "data URI must look like data:image/<type>;base64,<data>")
    if len(value) > max_chars:
        raise ValidationError(
            field, f"data URI is {len(value):,} characters; the limit is {max_chars:,}"
        )
    payload = value[match.end() :]
    if not payload:
        raise ValidationError(field, "data URI has no image data")
    try:
        b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(field, "data URI payload is not valid base64") from None
    return value


def check_image_ref(value: object, *, field: str) -> str:
    """Return a reference image (an http(s) URL or an image data URI), or raise."""
    if isinstance(value, str) and value[:5].lower() == "data:":
        return check_data_uri(value, field=field)
    return check_http_url(value, field=field)


def check_images(value: object, *, max_images: int, field: str = "images") -> tuple[str, ...]:
    """Return the reference images as a tuple, or raise on a bad list or a bad item."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ValidationError(field, f"must be a list of image URLs, got {type(value).__name__}")
    items = tuple(value)
    if len(items) > max_images:
        raise ValidationError(
            field, f"has {len(items)} reference images; at most {max_images} are allowed"
        )
    return tuple(check_image_ref(item, field=f"{field}[{i}]") for i, item in enumerate(items))


def check_type(
    value: object, types: type | tuple[type, ...], *, field: str, what: str, optional: bool = False
) -> None:
    """Raise ``ValidationError`` naming ``field`` unless ``value`` is one of ``types`` (or None)."""
    if not (isinstance(value, types) or (optional and value is None)):
        raise ValidationError(field, f"must be {what}, got {type(value).__name__}")


def is_int(value: object) -> TypeGuard[int]:
    """True for an ``int`` that is not a ``bool`` (``True`` is an int to Python, not to us)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    """True for an ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(value: object, *, field: str, minimum: int = 0) -> int:
    """Return an integer (never a ``bool``) of at least ``minimum``, or raise naming ``field``."""
    if not is_int(value) or value < minimum:
        shown = repr(value) if is_number(value) else type(value).__name__
        raise ValidationError(field, f"must be an integer >= {minimum}, got {shown}")
    return value


def check_api_key(value: object) -> str:
    """Return the API key, or raise if it is missing, blank or not a single token."""
    if value is not None and not isinstance(value, str):
        raise ValidationError("api_key", f"must be a string, got {type(value).__name__}")
    if value is None or not value.strip():
        raise ValidationError(
            "api_key", "no API key: pass api_key=... or set the KETCHUP_API_KEY variable"
        )
    if any(c.isspace() or ord(c) < 32 for c in value):
        raise ValidationError("api_key", "must be a single token without whitespace")
    return value


def check_positive(value: object, *, field: str, integer: bool = False) -> float:
    """Return a finite number above zero (an ``int`` if ``integer``), or raise naming ``field``."""
    kind = "a positive integer" if integer else "a positive number"
    if not (is_int(value) if integer else is_number(value)):
        raise ValidationError(field, f"must be {kind}, got {type(value).__name__}")
    assert isinstance(value, (int, float))
    if not (math.isfinite(value) and value > 0):
        raise ValidationError(field, f"must be {kind}, got {value!r}")
    return value


def check_task_id(value: object, *, field: str = "task_id") -> str:
    """Return a task id the API may have issued, or raise.

    Any non-empty printable string of at most ``MAX_TASK_ID_CHARS`` characters is accepted
    (queries URL-encode it); control characters, line breaks and empty ids are refused.
    """
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, got {type(value).__name__}")
    if not value:
        raise ValidationError(field, "must not be empty")
    shown = f"{value[:40]!r}{'...' if len(value) > 40 else ''}"
    if len(value) > MAX_TASK_ID_CHARS:
        raise ValidationError(
            field, f"is {len(value):,} characters long; the limit is {MAX_TASK_ID_CHARS}"
        )
    if not value.isprintable() or not value.strip():
        raise ValidationError(
            field, f"must be printable text, not blank or with control characters (got {shown})"
        )
    return value
