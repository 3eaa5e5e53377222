"""The one request path: auth, User-Agent, timeouts, logging, retries.

Every call to the API goes through ``Transport.send`` (one attempt, holding a request slot),
which returns an ``Answer``; what an answer means (data, or which error) is ``_answers``.
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
import logging
import random
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import attrs

from . import _retry
from ._answers import (
    Answer,
    connection_error,
    error_for_answer,
    os_reason,
    request_id_of,
)
from ._models import RetryPolicy
from ._telemetry import Recorder
from ._version import __version__
from .errors import (
    KetchupError,
    NotFoundError,
    ServerError,
)

__all__ = ["USER_AGENT", "Transport"]

logger = logging.getLogger("ketchup_async")

#: The SDK's own User-Agent, sent to the API and to the image CDN.
USER_AGENT = (
    f"ketchup-async/{__version__} aiohttp/{aiohttp.__version__} "
    f"python/{sys.version_info.major}.{sys.version_info.minor}"
)

Sleep = Callable[[float], Awaitable[None]]

# Failures before the request could have left this machine: always safe to retry.
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


class _Bearer(str):
    """The ``Authorization`` value: a ``str`` whose repr hides the key.

    Error reporters that capture frame locals (Sentry and the like) record ``repr`` of each
    local; the header dicts that hold this value therefore never show the key.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'Bearer ***'"


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
            retries: False to make exactly one attempt (the poller schedules its own retries).
            not_found: The class for a 404 (``TaskNotFoundError`` for a query).

        Raises:
            APIError: The API answered with an error (after retries, where retryable).
            APIConnectionError: No usable answer.
        """
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
                        None, on_wire=False, reason=type(exc).__name__, os_reason=os_reason(exc)
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
                        os_reason=os_reason(exc),
                    )
            request_id = request_id_of(headers)
            self._log(method, path, status, started, attempt, request_id)
            answer = Answer(
                status,
                body,
                request_id=request_id,
                retry_after=_retry.parse_retry_after(headers.get("Retry-After")),
            )
            if method == "POST" and 200 <= status < 300 and call.recording:
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
