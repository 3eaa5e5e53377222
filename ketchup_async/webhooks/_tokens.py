"""The secret path tokens of the webhook receiver: checks, generation, log redaction."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Mapping, Sequence

from ..errors import ValidationError

__all__ = [
    "MIN_TOKEN_CHARS",
    "RedactTokens",
    "check_path",
    "check_token",
    "check_tokens",
    "new_token",
]

#: The shortest token accepted: 22 url-safe characters carry 132 bits.
MIN_TOKEN_CHARS = 22
_MAX_TOKEN_CHARS = 256
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+")
_REDACTED = "<token>"


def new_token() -> str:
    """Return a fresh random path token (256 bits, url-safe)."""
    return secrets.token_urlsafe(32)


def check_token(value: object) -> str:
    """Return ``value`` if it is a url-safe token of at least 128 bits, or raise."""
    if not isinstance(value, str):
        raise ValidationError("tokens", f"a token must be a string, got {type(value).__name__}")
    if len(value) < MIN_TOKEN_CHARS:
        raise ValidationError(
            "tokens",
            f"a token must have at least {MIN_TOKEN_CHARS} characters (128 bits); use "
            "secrets.token_urlsafe(32)",
        )
    if len(value) > _MAX_TOKEN_CHARS or not _TOKEN.fullmatch(value):
        raise ValidationError(
            "tokens",
            f"a token must be at most {_MAX_TOKEN_CHARS} url-safe characters (A-Z a-z 0-9 - _)",
        )
    return value


def check_tokens(value: Sequence[str] | None) -> tuple[str, ...]:
    """Return one or two distinct checked tokens (current first); None makes a fresh one."""
    if value is None:
        return (new_token(),)
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValidationError("tokens", "must be a list of one or two tokens (or None)")
    tokens = tuple(dict.fromkeys(check_token(token) for token in value))
    if not 1 <= len(tokens) <= 2:
        raise ValidationError(
            "tokens", f"must hold one or two distinct tokens (current, previous), got {len(tokens)}"
        )
    return tokens


def check_path(value: object) -> str:
    """Return a mount path like ``/ketchup/callback`` (trailing slashes dropped), or raise."""
    if not isinstance(value, str):
        raise ValidationError("path", f"must be a string, got {type(value).__name__}")
    path = value.rstrip("/")
    if not _PATH.fullmatch(path):
        raise ValidationError(
            "path", f"must look like /some/path (letters, digits, . _ ~ -), got {value!r}"
        )
    return path


class RedactTokens(logging.Filter):
    """A ``logging.Filter`` masking webhook tokens in every record it sees.

    Masks the segment after ``path`` in any path (``/ketchup/callback/<token>``), whatever it
    is: a token of a previous process, a guess or a typo is masked too. The current tokens are
    also masked wherever else they appear.

    Args:
        tokens: Returns the tokens to mask (read at each record, so rotation is followed).
        path: The receiver's mount path; the segment after it is masked.
    """

    def __init__(self, tokens: Callable[[], Sequence[str]], path: str | None = None) -> None:
        super().__init__()
        self._tokens = tokens
        self._under = (
            None if path is None else re.compile(re.escape(path.rstrip("/")) + r"/[^/\s?#\"'<>]+")
        )
        self._masked = f"{path.rstrip('/')}/{_REDACTED}" if path is not None else ""

    def _clean(self, value: object) -> object:
        if isinstance(value, str):
            if self._under is not None and self._under.search(value):
                value = self._under.sub(self._masked, value)
            for token in self._tokens():
                if token in value:
                    value = value.replace(token, _REDACTED)
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the tokens in the message, its arguments and any extra string attributes."""
        record.msg = self._clean(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._clean(arg) for arg in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {key: self._clean(arg) for key, arg in record.args.items()}
        for key, value in list(vars(record).items()):
            if isinstance(value, str) and key != "msg":
                setattr(record, key, self._clean(value))
        return True
