"""Bodies of the fake's adversarial answers: proxy HTML pages and hostile JSON (no I/O)."""

from __future__ import annotations

import urllib.parse

__all__ = [
    "HTML_404",
    "HTML_502",
    "HTML_504",
    "check_callback_url",
    "check_image",
    "nested_json",
    "padding",
]

HTML_502 = "<html><body><h1>502 Bad Gateway</h1><hr><center>nginx</center></body></html>"
HTML_504 = "<html><body><h1>504 Gateway Time-out</h1><hr><center>nginx</center></body></html>"
HTML_404 = "<html><body><h1>404 Not Found</h1><hr><center>nginx</center></body></html>"


def nested_json(depth: int) -> bytes:
    """A syntactically valid JSON document nested ``depth`` arrays deep (no task in it)."""
    return b'{"code":0,"message":"ok","data":' + b"[" * depth + b"]" * depth + b"}"


def padding(size: int) -> str:
    """``size`` characters of filler for an unknown field."""
    return "x" * size


def _http_url(value: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def check_image(value: str) -> bool:
    """Whether the real API would accept ``value`` as a reference image (URL or data URI)."""
    return _http_url(value) or value[:11].lower() == "data:image/"


def check_callback_url(value: str) -> bool:
    """Whether the real API would accept ``value`` as a callback URL (http or https)."""
    return _http_url(value)
