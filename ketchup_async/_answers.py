"""What an HTTP answer means: the API's envelope, the error tree, request ids (pure).

``_http.Transport`` makes one attempt and returns an ``Answer`` (a status and a body, or why
there was none); this module turns answers into data or into the error tree's exceptions, for
the query path (``Transport.request``) and the submit path (``_submit``) alike.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import attrs

from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    RateLimitError,
    ServerError,
)

__all__ = [
    "REQUEST_ID_HEADERS",
    "Answer",
    "connection_error",
    "error_for_answer",
    "error_for_response",
    "os_reason",
    "request_id_of",
]

_STATUS_ERRORS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    429: RateLimitError,
}


def _envelope(body: bytes) -> Mapping[str, Any] | None:
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded if isinstance(decoded, dict) else None


def error_for_response(
    status: int,
    body: bytes,
    *,
    request_id: str | None = None,
    retry_after: float | None = None,
    not_found: type[NotFoundError] = NotFoundError,
) -> APIError:
    """Map an error response (status and raw body) to the error tree.

    An HTML or otherwise non-JSON body (a proxy's 502 page) becomes a ``ServerError`` for 5xx
    and the status's own class otherwise, with a short description instead of the page.
    """
    envelope = _envelope(body)
    code: int | None = None
    detail: str | None = None
    if envelope is None:
        snippet = body[:80].decode("utf-8", "replace").strip().replace("\n", " ")
        message = f"non-JSON response body ({len(body)} bytes): {snippet!r}"
    else:
        raw_code = envelope.get("code")
        code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
        raw_message = envelope.get("message")
        message = raw_message if isinstance(raw_message, str) else f"HTTP {status}"
        raw_detail = envelope.get("detail")
        detail = raw_detail if isinstance(raw_detail, str) else None
    cls: type[APIError]
    if status >= 500:
        cls = ServerError
    elif status == 404:
        cls = not_found
    else:
        cls = _STATUS_ERRORS.get(status, APIError)
    kwargs: dict[str, Any] = {
        "status_code": status,
        "code": code,
        "detail": detail,
        "request_id": request_id,
    }
    if cls is RateLimitError:
        return RateLimitError(message, retry_after=retry_after, **kwargs)
    return cls(message, **kwargs)


#: Response headers that may carry a request id, read in this order.
REQUEST_ID_HEADERS = ("X-Request-Id", "Request-Id", "X-Trace-Id", "CF-Ray")


def request_id_of(headers: Mapping[str, str]) -> str | None:
    """The first request id found in ``REQUEST_ID_HEADERS``, or None."""
    for name in REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value[:200]
    return None


@attrs.frozen
class Answer:
    """One attempt's outcome: an HTTP answer, or why there was none.

    Attributes:
        status: The HTTP status, or None when no answer arrived.
        body: The raw body (empty without an answer).
        request_id: The server's request id, if it sent one.
        retry_after: The parsed ``Retry-After``, if any.
        on_wire: Without an answer: whether any byte of the request may have left.
        timed_out: Without an answer: whether it was a timeout.
        reason: Without an answer: a short description (the exception's class name).
        os_reason: Without an answer: the operating system's words, when it said
            ("connection refused").
    """

    status: int | None
    body: bytes = b""
    request_id: str | None = None
    retry_after: float | None = None
    on_wire: bool = True
    timed_out: bool = False
    reason: str = ""
    os_reason: str | None = None

    def envelope(self) -> Mapping[str, Any] | None:
        """The decoded JSON object body, or None."""
        return _envelope(self.body)


def error_for_answer(answer: Answer, *, not_found: type[NotFoundError] = NotFoundError) -> APIError:
    """``error_for_response`` for an ``Answer`` that has a status."""
    assert answer.status is not None
    return error_for_response(
        answer.status,
        answer.body,
        request_id=answer.request_id,
        retry_after=answer.retry_after,
        not_found=not_found,
    )


def connection_error(
    method: str, path: str, answer: Answer, base_url: str, *, idempotent: bool
) -> APIConnectionError:
    """The error for an attempt without an answer.

    ``may_have_been_processed`` is True only for a non-idempotent request (a submit) whose
    bytes may have left this machine.
    """
    why = answer.os_reason or answer.reason
    if not answer.on_wire:
        return APIConnectionError(
            f"could not connect to {base_url}: {why}",
            may_have_been_processed=False,
            reason=answer.os_reason,
        )
    cls: type[APIConnectionError] = APITimeoutError if answer.timed_out else APIConnectionError
    what = "timed out" if answer.timed_out else f"failed: {why}"
    return cls(
        f"{method} {path} {what}", may_have_been_processed=not idempotent, reason=answer.os_reason
    )


def os_reason(error: BaseException | None) -> str | None:
    """The operating system's words ("connection refused") found in an exception chain."""
    for _ in range(8):
        if error is None:
            return None
        if isinstance(error, OSError):
            if error.errno is not None and error.errno > 0:
                return os.strerror(error.errno).lower()
            if isinstance(error.strerror, str) and error.strerror:
                return error.strerror.lower()
        nested = getattr(error, "os_error", None)  # aiohttp's ClientConnectorError
        error = nested if isinstance(nested, OSError) else (error.__cause__ or error.__context__)
    return None
