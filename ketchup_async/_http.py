"""The one request path: auth, User-Agent, timeouts, logging, retries, error mapping.

Every call to the API goes through ``Transport.request``. A submit is money: it is retried only
when the server answered (429/5xx) or the connection provably never carried the request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import attrs

from . import _retry, _validate
from ._models import RetryPolicy
from ._telemetry import HttpCall, Recorder
from ._version import __version__
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

__all__ = ["USER_AGENT", "Transport", "error_for_response"]

logger = logging.getLogger("ketchup_async")

#: The SDK's own User-Agent, sent to the API and to the image CDN.
USER_AGENT = (
    f"ketchup-async/{__version__} aiohttp/{aiohttp.__version__} "
    f"python/{sys.version_info.major}.{sys.version_info.minor}"
)

Sleep = Callable[[float], Awaitable[None]]

_STATUS_ERRORS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    429: RateLimitError,
}

# Failures before the request could have left this machine: always safe to retry.
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


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
        code = raw_code if _validate.is_int(raw_code) else None
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


class _Retryable(Exception):
    """Internal: this attempt failed in a way that may be retried."""

    def __init__(self, error: Exception, retry_after: float | None = None) -> None:
        self.error = error
        self.retry_after = retry_after


@attrs.define(eq=False)
class Transport:
    """Sends API requests for one client. Created inside the running loop.

    Attributes:
        session: The aiohttp session (ours or the caller's).
        base_url: The API root, without a trailing slash.
        retry: The retry policy.
        timeout: Seconds per HTTP request (each attempt).
    """

    session: aiohttp.ClientSession
    base_url: str
    _api_key: str = attrs.field(repr=False, alias="api_key")
    retry: RetryPolicy
    timeout: float
    max_concurrency: int
    sleep: Sleep = asyncio.sleep
    rng: random.Random = attrs.field(factory=random.Random)
    telemetry: Recorder = attrs.field(factory=Recorder.off)
    _slots: asyncio.Semaphore = attrs.field(init=False)
    _client_timeout: aiohttp.ClientTimeout = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.max_concurrency)
        self._client_timeout = aiohttp.ClientTimeout(
            total=self.timeout, sock_connect=min(self.timeout, 10.0)
        )

    def set_api_key(self, api_key: str) -> None:
        """Replace the API key (key rotation)."""
        self._api_key = api_key

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        idempotent: bool,
        retries: bool = True,
        not_found: type[NotFoundError] = NotFoundError,
        on_send: Callable[[], Awaitable[None]] | None = None,
    ) -> Any:
        """Send one API call and return the envelope's ``data``.

        Args:
            method: HTTP method.
            path: Path under the base URL.
            params: Query parameters.
            json_body: JSON body, if any.
            idempotent: False for a submit: never resent once it may have reached the server.
            retries: False to make exactly one attempt (the poller schedules its own retries).
            not_found: The class for a 404 (``TaskNotFoundError`` for a query).
            on_send: Awaited once, holding a request slot, just before the first attempt goes
                on the wire (a durable run journals ``submitting`` here); if it raises, nothing
                is sent.

        Raises:
            APIError: The API answered with an error (after retries, where retryable).
            APIConnectionError: No usable answer; ``may_have_been_processed`` says if it may
                have been acted upon.
        """
        attempts = (self.retry.max_retries if retries else 0) + 1
        for attempt in range(attempts):
            try:
                with self.telemetry.http_call(method, path, attempt, params) as call:
                    return await self._attempt(
                        method,
                        path,
                        params,
                        json_body,
                        idempotent,
                        attempt + 1,
                        not_found,
                        on_send,
                        call,
                    )
            except _Retryable as retryable:
                on_send = None  # it ran before the first attempt
                if attempt + 1 >= attempts:
                    raise retryable.error from None
                delay = _retry.retry_delay(attempt, self.retry, self.rng, retryable.retry_after)
                logger.debug(
                    "%s %s: retrying in %.3f s after %s", method, path, delay, retryable.error
                )
                await self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json_body: Any,
        idempotent: bool,
        attempt: int,
        not_found: type[NotFoundError],
        on_send: Callable[[], Awaitable[None]] | None,
        call: HttpCall,
    ) -> Any:
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        started = time.perf_counter()
        async with self._slots:
            if on_send is not None:
                await on_send()
            try:
                async with self.session.request(
                    method,
                    self.base_url + path,
                    params=params,
                    json=json_body,
                    headers=headers,
                    timeout=self._client_timeout,
                    allow_redirects=False,
                ) as response:
                    body = await response.read()
                    status = call.status = response.status
                    request_id = response.headers.get("X-Request-Id")
                    retry_after_header = response.headers.get("Retry-After")
            except _NOT_SENT as exc:
                self._log(method, path, "connect error", started, attempt)
                raise _Retryable(
                    APIConnectionError(
                        f"could not connect to {self.base_url}: {type(exc).__name__}",
                        may_have_been_processed=False,
                    )
                ) from None
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                timed_out = isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError))
                self._log(
                    method, path, "timeout" if timed_out else "connection lost", started, attempt
                )
                cls: type[APIConnectionError] = APITimeoutError if timed_out else APIConnectionError
                what = "timed out" if timed_out else f"failed: {type(exc).__name__}"
                lost = cls(f"{method} {path} {what}", may_have_been_processed=not idempotent)
                if idempotent:
                    raise _Retryable(lost) from None
                raise lost from None
        self._log(method, path, status, started, attempt, request_id)
        if 200 <= status < 300:
            return call.done(self._data(method, path, status, body, request_id, idempotent))
        retry_after = _retry.parse_retry_after(retry_after_header)
        error = error_for_response(
            status, body, request_id=request_id, retry_after=retry_after, not_found=not_found
        )
        if status in _retry.RETRY_STATUSES:
            raise _Retryable(error, retry_after if status in (429, 503) else None)
        raise error

    def _data(
        self,
        method: str,
        path: str,
        status: int,
        body: bytes,
        request_id: str | None,
        idempotent: bool,
    ) -> Any:
        envelope = _envelope(body)
        if envelope is not None and envelope.get("code") == 0 and "data" in envelope:
            return envelope["data"]
        if envelope is not None and envelope.get("code") not in (0, None):
            raise error_for_response(status, body, request_id=request_id)
        if not idempotent:
            # The server accepted the submit but we cannot read the task id: it may be charged.
            raise APIConnectionError(
                f"{method} {path} returned an unreadable body (HTTP {status})",
                may_have_been_processed=True,
            )
        raise _Retryable(
            ServerError(
                f"malformed response body ({len(body)} bytes)",
                status_code=status,
                request_id=request_id,
            )
        )

    @staticmethod
    def _log(
        method: str,
        path: str,
        outcome: object,
        started: float,
        attempt: int,
        request_id: str | None = None,
    ) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %s in %.1f ms (attempt %d%s)",
                method,
                path,
                outcome,
                (time.perf_counter() - started) * 1000,
                attempt,
                f", request id {request_id}" if request_id else "",
            )
