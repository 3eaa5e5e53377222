"""``WebhookReceiver``: checks the path token and hands callbacks to the client."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import warnings
from collections import Counter, OrderedDict
from collections.abc import AsyncIterable, Callable
from typing import Any
from urllib.parse import urlsplit

import attrs
from aiohttp import web

from .. import _validate
from .._addresses import is_loopback_host
from .._client import KetchupClient
from ..errors import ClientClosedError, InsecureTransportWarning, ValidationError
from ._parse import MAX_CALLBACK_BYTES, parse_callback, read_body
from ._refusals import RefusalLog
from ._relay import RedisRelay
from ._tokens import (
    RedactTokens,
    check_path,
    check_token,
    check_tokens,
    new_token,
)

__all__ = ["DEFAULT_PATH", "WebhookReceiver", "WebhookStats"]

logger = logging.getLogger("ketchup_async")

#: Where the receiver is mounted by default; the token is the last path segment.
DEFAULT_PATH = "/ketchup/callback"
_RECENT = 10_000  # task ids remembered to recognise duplicate deliveries
#: Seconds allowed to read a callback body (the API's are a few hundred bytes).
DEFAULT_READ_TIMEOUT = 5.0

Reply = tuple[int, dict[str, Any]]


def _client(instance: object, attribute: attrs.Attribute[KetchupClient], value: object) -> None:
    if not isinstance(value, KetchupClient):
        raise ValidationError("client", f"must be a KetchupClient, got {type(value).__name__}")


def _relay(instance: object, attribute: attrs.Attribute[RedisRelay | None], value: object) -> None:
    if value is not None and not isinstance(value, RedisRelay):
        raise ValidationError("relay", f"must be a RedisRelay, got {type(value).__name__}")


def _max_bytes(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    _validate.check_int(value, field="max_bytes", minimum=1)


def _read_timeout(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    _validate.check_positive(value, field="read_timeout")


@attrs.define(eq=False)
class WebhookStats:
    """Counters of one receiver, for observability.

    Attributes:
        received: Requests handled.
        delivered: Callbacks that matched a pending job.
        duplicate: Repeated deliveries of an already resolved job (ignored).
        unknown: Callbacks for a task the client does not track (yet): answered 200, kept
            briefly by the client in case its submit has not returned yet.
        rejected: Refused requests by reason: ``token`` (404), ``too_large`` (413),
            ``malformed`` (400), ``timeout`` (408: the body did not arrive within
            ``read_timeout``), ``closed`` (503: the client is closed).
        relayed_in: Callbacks received by another worker that resolved a job of this one
            (through the relay).
    """

    received: int = 0
    delivered: int = 0
    duplicate: int = 0
    unknown: int = 0
    rejected: Counter[str] = attrs.field(factory=Counter)
    relayed_in: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Return the counters as a JSON-able dict."""
        return {
            "received": self.received,
            "delivered": self.delivered,
            "duplicate": self.duplicate,
            "unknown": self.unknown,
            "rejected": dict(self.rejected),
            "relayed_in": self.relayed_in,
        }


@attrs.define(eq=False)
class WebhookReceiver:
    """Receives the API's callbacks and resolves the client's jobs from them.

    Mount it in an aiohttp app with ``add_to(app)`` (``POST {path}/{token}``), or call
    ``handle(token, body)`` from any other framework. Answers: 200 for a callback (also for
    unknown task ids and duplicates, which are ignored), 404 for a wrong or missing token,
    413 for a body over ``max_bytes``, 408 for a body not received within ``read_timeout``,
    400 for a malformed body, 503 once the client is closed. Refusals are logged at WARNING at
    most once a minute per reason, with a count.

    Args:
        client: The client whose jobs the callbacks resolve.
        tokens: One or two secret path tokens (current first, then the previous one while
            rotating), each at least 22 url-safe characters; None generates one.
        verify: Don't trust callbacks: re-query each task (within the poller's budget) and
            resolve it from the API's answer instead.
        path: Where the receiver is mounted (the token is appended as a path segment).
        max_bytes: The largest body accepted.
        read_timeout: Seconds allowed to receive a body (then 408).
        relay: Hands callbacks that match no job of this worker to the backend's other
            workers (see ``RedisRelay``); started and stopped with the receiver.

    Raises:
        ValidationError: A bad token, path or size.
    """

    client: KetchupClient = attrs.field(validator=_client)
    _tokens: tuple[str, ...] = attrs.field(
        default=None, kw_only=True, converter=check_tokens, repr=False, alias="tokens"
    )
    verify: bool = attrs.field(default=False, kw_only=True)
    path: str = attrs.field(default=DEFAULT_PATH, kw_only=True, converter=check_path)
    max_bytes: int = attrs.field(default=MAX_CALLBACK_BYTES, kw_only=True, validator=_max_bytes)
    read_timeout: float = attrs.field(
        default=DEFAULT_READ_TIMEOUT, kw_only=True, validator=_read_timeout
    )
    relay: RedisRelay | None = attrs.field(default=None, kw_only=True, validator=_relay)
    #: The time source of the rate-limited warnings (monotonic seconds; a fake one in tests).
    clock: Callable[[], float] = attrs.field(default=time.monotonic, kw_only=True, repr=False)
    stats: WebhookStats = attrs.field(factory=WebhookStats, init=False)
    _recent: OrderedDict[str, None] = attrs.field(factory=OrderedDict, init=False, repr=False)
    _filter: RedactTokens | None = attrs.field(default=None, init=False, repr=False)
    _publishing: set[asyncio.Task[bool]] = attrs.field(factory=set, init=False, repr=False)
    _refusals: RefusalLog = attrs.field(init=False, repr=False)

    @_refusals.default
    def _make_refusals(self) -> RefusalLog:
        return RefusalLog(clock=self.clock)

    # -- lifecycle (only does something with a relay) --------------------------------------

    async def start(self) -> None:
        """Start the relay, if any (inside the running loop, before callbacks arrive)."""
        if self.relay is not None:
            await self.relay.start(self._deliver_relayed)

    async def aclose(self) -> None:
        """Finish handing callbacks to the relay, then stop it."""
        if self._publishing:
            await asyncio.gather(*self._publishing, return_exceptions=True)
        if self.relay is not None:
            await self.relay.aclose()

    async def __aenter__(self) -> WebhookReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- tokens and URLs -------------------------------------------------------------------

    @property
    def tokens(self) -> tuple[str, ...]:
        """The accepted tokens, current first (secrets: never log them)."""
        return self._tokens

    def rotate(self, token: str | None = None) -> str:
        """Make ``token`` (or a fresh one) current; the previous one stays accepted.

        Callbacks of jobs submitted with the previous URL still arrive; an older token is no
        longer accepted. Returns the new current token.
        """
        token = new_token() if token is None else check_token(token)
        if token != self._tokens[0]:
            self._tokens = (token, self._tokens[0])
            logger.info("webhook token rotated; the previous one is still accepted")
        return token

    def retire_previous(self) -> None:
        """Stop accepting the previous token (once its jobs are all resolved)."""
        self._tokens = self._tokens[:1]

    def callback_url(self, public_base_url: str) -> str:
        """The ``callback_url`` to submit with: ``{public_base_url}{path}/{current token}``.

        Args:
            public_base_url: Where the API reaches this app, e.g. ``https://app.example.com``
                (a path prefix is allowed; a query or fragment is not).

        Raises:
            ValidationError: Not an absolute http(s) URL, or it has a query or fragment.
        """
        _validate.check_http_url(public_base_url, field="public_base_url")
        parts = urlsplit(public_base_url)
        if parts.query or parts.fragment:
            raise ValidationError("public_base_url", "must not have a query or fragment")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
            warnings.warn(
                "public_base_url is not HTTPS: the callback token would travel in clear text",
                InsecureTransportWarning,
                stacklevel=2,
            )
        return f"{public_base_url.rstrip('/')}{self.path}/{self._tokens[0]}"

    @property
    def log_filter(self) -> logging.Filter:
        """A ``logging.Filter`` that masks the tokens, e.g. for the access log.

        ``logging.getLogger("aiohttp.access").addFilter(receiver.log_filter)`` (or
        ``"uvicorn.access"``): access logs print request paths, and the path holds the token.
        Any segment after ``path`` is masked, not only the tokens accepted now (callbacks
        carrying a previous process's token are masked too).
        """
        if self._filter is None:
            self._filter = RedactTokens(lambda: self._tokens, self.path)
        return self._filter

    def report(self) -> dict[str, Any]:
        """This receiver's ``stats`` and its client's ``stats()``, as one JSON-able dict.

        For a backend's ``/stats`` endpoint: ``{"webhooks": {...}, "client": {...}}``.
        """
        return {"webhooks": self.stats.as_dict(), "client": self.client.stats().as_dict()}

    # -- aiohttp ---------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        """The aiohttp routes: ``POST {path}/{token}`` (and ``{path}``, always 404)."""
        return [
            web.post(f"{self.path}/{{token}}", self.handle_request),
            web.post(self.path, self.handle_request),
        ]

    def add_to(self, app: web.Application) -> None:
        """Mount the receiver's routes in an (unfrozen) aiohttp application.

        With a relay, the app's startup starts it and its cleanup stops it.
        """
        app.add_routes(self.routes())
        if self.relay is not None:
            app.on_startup.append(self._on_startup)
            app.on_cleanup.append(self._on_cleanup)

    async def _on_startup(self, app: web.Application) -> None:
        await self.start()

    async def _on_cleanup(self, app: web.Application) -> None:
        await self.aclose()

    async def handle_request(self, request: web.Request) -> web.Response:
        """The aiohttp handler: checks the token, the size (declared, then read), the body."""
        self.stats.received += 1
        token = request.match_info.get("token", "")
        reply = self._check(token, request.content_length, request.remote)
        if reply is None:
            reply = await self._read_and_accept(request.content.iter_any())
        status, data = reply
        response = web.json_response(data, status=status)
        if status == 408:
            response.force_close()  # the rest of a trickled body is not waited for
        return response

    # -- framework-neutral -----------------------------------------------------------------

    def handle(self, token: str, body: bytes, *, remote: str | None = None) -> Reply:
        """Handle one callback request; return the HTTP status and a JSON-able body to answer.

        Call it from the event loop that runs the client (e.g. an ``async def`` route).

        Args:
            token: The path segment after ``path`` (compared in constant time).
            body: The raw body (cap it while reading: see ``read_body``).
            remote: The peer's address, for the log line of a refused token.
        """
        self.stats.received += 1
        return self._check(token, len(body), remote) or self._accept(body)

    async def handle_stream(
        self,
        token: str,
        chunks: AsyncIterable[bytes],
        *,
        content_length: int | None = None,
        remote: str | None = None,
    ) -> Reply:
        """Handle one callback request from its body stream (checked before it is read).

        The token and the declared length are checked first; then the body is read with the
        ``max_bytes`` cap and the ``read_timeout`` deadline (408 when it passes). For
        FastAPI/Starlette: ``receiver.handle_stream(token, request.stream())``.

        Args:
            token: The path segment after ``path`` (compared in constant time).
            chunks: The body, e.g. Starlette's ``request.stream()``.
            content_length: The declared ``Content-Length``, if any.
            remote: The peer's address, for the log line of a refused token.
        """
        self.stats.received += 1
        reply = self._check(token, content_length, remote)
        return reply or await self._read_and_accept(chunks)

    async def _read_and_accept(self, chunks: AsyncIterable[bytes]) -> Reply:
        try:
            body = await asyncio.wait_for(
                read_body(chunks, limit=self.max_bytes), self.read_timeout
            )
        except asyncio.TimeoutError:
            self._refusals.refused("timeout", f"not received within {self.read_timeout:g} s")
            return self._reject("timeout", 408, "request body not received in time")
        return self._check_size(len(body)) or self._accept(body)

    def _check(self, token: str, size: int | None, remote: str | None) -> Reply | None:
        given = token.encode("utf-8", "replace") if isinstance(token, str) else b""
        accepted = False
        for expected in self._tokens:  # no short cut: every token is compared
            accepted |= hmac.compare_digest(given, expected.encode("ascii"))
        if not accepted:
            self._refusals.refused("token", f"from {remote or 'an unknown peer'}")
            return self._reject("token", 404, "not found")
        return self._check_size(size)

    def _check_size(self, size: int | None) -> Reply | None:
        if size is not None and size > self.max_bytes:
            self._refusals.refused("too_large", f"over {self.max_bytes:,} bytes")
            return self._reject("too_large", 413, f"body larger than {self.max_bytes} bytes")
        return None

    def _reject(self, reason: str, status: int, error: str, **extra: Any) -> Reply:
        self.stats.rejected[reason] += 1
        return status, {"error": error, **extra}

    def _accept(self, body: bytes) -> Reply:
        try:
            payload = parse_callback(body, max_bytes=self.max_bytes)
        except ValidationError as exc:
            self._refusals.refused("malformed", str(exc))
            return self._reject("malformed", 400, "malformed callback", detail=str(exc))
        task_id = payload.task_id
        if task_id in self._recent:
            self.stats.duplicate += 1
            logger.debug("webhook: duplicate callback for %s ignored", task_id)
            return 200, {"status": "duplicate"}
        try:
            matched = self.client.deliver(payload, verify=self.verify)
        except ClientClosedError:
            return self._reject("closed", 503, "client closed")
        if not matched:
            self.stats.unknown += 1
            logger.debug("webhook: callback for untracked task %s", task_id)
            if self.relay is not None and self.relay.running:
                self._relay_out(body)
                return 200, {"status": "relayed"}
            return 200, {"status": "unmatched"}
        self.stats.delivered += 1
        if not self.verify:  # resolved now; a verified job resolves only after its query
            self._remember(task_id)
        return 200, {"status": "accepted"}

    # -- relay -----------------------------------------------------------------------------

    def _relay_out(self, body: bytes) -> None:
        assert self.relay is not None
        task = asyncio.get_running_loop().create_task(self.relay.publish(body))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    def _deliver_relayed(self, body: bytes) -> bool:
        """Deliver a callback another worker received; True if it resolved one of our jobs."""
        try:
            payload = parse_callback(body, max_bytes=self.max_bytes)
            matched = self.client.deliver(payload, verify=self.verify)
        except (ValidationError, ClientClosedError):
            return False
        if matched:
            self.stats.relayed_in += 1
            if not self.verify:
                self._remember(payload.task_id)
        return matched

    def _remember(self, task_id: str) -> None:
        self._recent[task_id] = None
        if len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
