"""The one request path: auth, User-Agent, timeouts, logging, retries, error mapping.

Every call to the API goes through ``Transport.send`` (one attempt, holding a request slot).
``Transport.request`` is the query loop: a GET retries 429, 5xx, malformed bodies and
connection errors. Submits go through ``_submit.Submitter``, which classifies each attempt with
``_retry.classify_submit_answer`` (a submit is money: only an answer that proves nothing was
created is followed by another attempt) and waits on the client's submit controller.

Retries stay hand-written (decision for issue 11; ``stamina.retry_context`` was considered).
stamina retries a block on exceptions with one per-call attempt budget and its own back-off.
Submits need what it does not express: four reactions by answer class (wait for a shared
per-client controller without counting an attempt; counted back-off; never resend; raise), hooks
around each attempt for the journal, and a back-off that a closing client ends at once. Bent to
that, it would be more code than these small loops, plus a dependency. Delays are pure
functions in ``_retry.py``.

No local of a request frame holds the plain API key: the ``Authorization`` value is built once
per key, in a ``str`` whose ``repr`` is masked (error reporters record ``repr`` of locals).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import attrs

from . import _retry
from ._models import RetryPolicy
from ._telemetry import Recorder
from ._version import __version__
from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    KetchupError,
    NotFoundError,
    RateLimitError,
    ServerError,
)

__all__ = [
    "REQUEST_ID_HEADERS",
    "USER_AGENT",
    "Answer",
    "Transport",
    "connection_error",
    "error_for_answer",
    "error_for_response",
    "request_id_of",
]

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


class _Bearer(str):
    """The ``Authorization`` value: a ``str`` whose repr hides the key.

    Error reporters that capture frame locals (Sentry and the like) record ``repr`` of each
    local; the header dicts that hold this value therefore never show the key.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'Bearer ***'"


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


@attrs.define(eq=False)
class Transport:
    """Sends API requests for one client. Created inside the running loop.

    Attributes:
        session: The aiohttp session (ours or the caller's).
        base_url: The API root, without a trailing slash.
        retry: The retry policy.
        timeout: Seconds to get a connection, and again seconds for the exchange (each
            attempt; a read that stalls for ``timeout`` fails the attempt).
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
    _headers: dict[str, str] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.max_concurrency)
        # ``connect`` bounds the pool wait and the connect (ConnectionTimeoutError: not sent);
        # ``total`` never fires before it, so a total timeout means "on the wire".
        self._client_timeout = aiohttp.ClientTimeout(
            total=2.0 * self.timeout + 1.0,
            connect=self.timeout,
            sock_connect=min(self.timeout, 10.0),
            sock_read=self.timeout,
        )
        self.set_api_key(self._api_key)

    def set_api_key(self, api_key: str) -> None:
        """Replace the API key (key rotation)."""
        self._api_key = api_key
        # Built once: no frame of a request holds the key in a plain local.
        self._headers = {
            "Authorization": _Bearer("Bearer " + api_key),
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        idempotent: bool = True,
        retries: bool = True,
        not_found: type[NotFoundError] = NotFoundError,
    ) -> Any:
        """Send one idempotent API call (a query) and return the envelope's ``data``.

        Retries 429, 5xx, malformed bodies and connection errors (``RETRY_STATUSES``). Submits
        do not come here: they follow the submit rule (``_submit.Submitter``).

        Args:
            method: HTTP method.
            path: Path under the base URL.
            params: Query parameters.
            json_body: JSON body, if any.
            idempotent: Must be True (kept for callers that say so explicitly).
            retries: False to make exactly one attempt (the poller schedules its own retries).
            not_found: The class for a 404 (``TaskNotFoundError`` for a query).

        Raises:
            APIError: The API answered with an error (after retries, where retryable).
            APIConnectionError: No usable answer.
        """
        if not idempotent:
            raise ValueError("submits go through Submitter, not Transport.request")
        attempts = (self.retry.max_retries if retries else 0) + 1
        for attempt in range(attempts):
            answer = await self.send(
                method, path, params=params, json_body=json_body, attempt=attempt + 1
            )
            error: KetchupError
            retry_after: float | None = None
            if answer.status is None:
                # A GET: whether it reached the server does not matter to the caller.
                error = connection_error(method, path, answer, self.base_url, idempotent=True)
            elif 200 <= answer.status < 300:
                envelope = answer.envelope()
                if envelope is not None and envelope.get("code") == 0 and "data" in envelope:
                    return envelope["data"]
                if envelope is not None and envelope.get("code") not in (0, None):
                    raise error_for_answer(answer)
                error = ServerError(
                    f"malformed response body ({len(answer.body)} bytes)",
                    status_code=answer.status,
                    request_id=answer.request_id,
                )
            else:
                error = error_for_answer(answer, not_found=not_found)
                if answer.status not in _retry.RETRY_STATUSES:
                    raise error
                if answer.status in (429, 503):
                    retry_after = answer.retry_after
            if attempt + 1 >= attempts:
                raise error
            delay = _retry.retry_delay(attempt, self.retry, self.rng, retry_after)
            logger.debug("%s %s: retrying in %.3f s after %s", method, path, delay, error)
            await self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        on_send: Callable[[], Awaitable[None]] | None = None,
        attempt: int = 1,
    ) -> Answer:
        """Make one attempt, holding a request slot; never raises for a failed exchange.

        Args:
            method: HTTP method.
            path: Path under the base URL.
            params: Query parameters.
            json_body: JSON body, if any.
            on_send: Awaited holding the slot just before the request goes on the wire; if it
                raises, nothing is sent and the exception propagates.
            attempt: The attempt number, for the log.
        """
        started = time.perf_counter()
        with self.telemetry.http_call(method, path, attempt, params) as call:
            async with self._slots:
                if on_send is not None:
                    await on_send()
                try:
                    async with self.session.request(
                        method,
                        self.base_url + path,
                        params=params,
                        json=json_body,
                        headers=self._headers,
                        timeout=self._client_timeout,
                        allow_redirects=False,
                    ) as response:
                        body = await response.read()
                        status = call.status = response.status
                        headers = response.headers
                except _NOT_SENT as exc:
                    self._log(method, path, "connect error", started, attempt)
                    call.failure = type(exc).__name__
                    return Answer(
                        None, on_wire=False, reason=type(exc).__name__, os_reason=_os_reason(exc)
                    )
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    timed_out = isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError))
                    outcome = "timeout" if timed_out else "connection lost"
                    self._log(method, path, outcome, started, attempt)
                    call.failure = type(exc).__name__
                    return Answer(
                        None,
                        timed_out=timed_out,
                        reason=type(exc).__name__,
                        os_reason=_os_reason(exc),
                    )
            request_id = request_id_of(headers)
            self._log(method, path, status, started, attempt, request_id)
            answer = Answer(
                status,
                body,
                request_id=request_id,
                retry_after=_retry.parse_retry_after(headers.get("Retry-After")),
            )
            if method == "POST" and 200 <= status < 300:
                envelope = answer.envelope()  # the submit span notes its task id
                call.done(None if envelope is None else envelope.get("data"))
            return answer

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


def _os_reason(error: BaseException | None) -> str | None:
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
