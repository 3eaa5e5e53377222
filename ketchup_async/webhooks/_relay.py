"""``RedisRelay``: hands a callback that matches no local job to every worker, over Redis.

A backend with several workers (``uvicorn --workers 4``, gunicorn, several pods) receives each
callback in whichever worker the load balancer picked; the job belongs to the worker that
submitted it. A worker whose client does not know the task publishes the callback body to a
Redis **stream**; every worker reads the stream and delivers each entry to its own client,
where it resolves the job that owns it (the others ignore it).

Why a stream and not pub/sub: pub/sub drops what is published while a subscriber is
reconnecting, a stream keeps it. Each worker remembers the id of the last entry it read and,
after a dropped connection, goes on from there, so a blip between a worker and Redis loses
nothing. The stream is capped (``maxlen``, trimmed approximately on each publish), so Redis
holds a bounded number of recent callbacks. Entries carry the raw body (at most
``MAX_CALLBACK_BYTES``, already checked by the receiver) and the publishing worker's id, so a
worker skips its own. Consumer groups are not used: every worker must see every entry.

Redis down: callbacks still resolve the receiving worker's own jobs; publishing fails fast and
the other workers' jobs fall back to their safety-net poll; the reader reconnects with capped
exponential back-off. One WARNING per outage says so, one INFO when Redis is back.

Needs the ``redis`` extra: ``pip install "ketchup-async[redis]"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs

from ..errors import ValidationError

__all__ = ["RedisRelay", "RelayStats"]

logger = logging.getLogger("ketchup_async")

#: The default stream key.
DEFAULT_STREAM = "ketchup:callbacks"
#: How long one read of the stream blocks (ms): also how long ``aclose()`` waits for it.
_BLOCK_MS = 500
#: Seconds any Redis command may take before the connection counts as lost.
_SOCKET_TIMEOUT = 10.0
_SCHEMES = ("redis", "rediss", "unix")


def _check_url(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError("url", f"must be a string, got {type(value).__name__}")
    if urlsplit(value).scheme not in _SCHEMES:
        raise ValidationError("url", "must be a redis://, rediss:// or unix:// URL")
    return value


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _positive_int(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(attribute.name, f"must be a positive integer, got {value!r}")


@attrs.define
class RelayStats:
    """Counters of one relay.

    Attributes:
        published: Callbacks this worker handed to the other workers.
        received: Entries read from the stream that other workers published.
        delivered: Of those, how many resolved a job of this worker.
        publish_failures: Callbacks that could not be published (Redis unreachable).
        reconnects: Times the reader lost Redis and got it back.
    """

    published: int = 0
    received: int = 0
    delivered: int = 0
    publish_failures: int = 0
    reconnects: int = 0


@attrs.define(eq=False)
class RedisRelay:
    """Relays callbacks between the workers of one backend through a Redis stream.

    Give it to ``WebhookReceiver(client, relay=RedisRelay(url))``; the receiver starts and
    stops it (``async with receiver`` or, in aiohttp, ``receiver.add_to(app)``).

    Args:
        url: ``redis://[:password@]host:port/db``, ``rediss://...`` or ``unix:///path``.
        stream: The stream key, shared by every worker of the backend.
        maxlen: Entries the stream keeps (trimmed approximately).
        backoff: First and largest wait between reconnection attempts, in seconds.

    Raises:
        ValidationError: A bad URL or option.
    """

    url: str = attrs.field(converter=_check_url, repr=_masked)
    stream: str = attrs.field(default=DEFAULT_STREAM, kw_only=True)
    maxlen: int = attrs.field(default=10_000, kw_only=True, validator=_positive_int)
    backoff: tuple[float, float] = attrs.field(default=(0.2, 30.0), kw_only=True)
    stats: RelayStats = attrs.field(factory=RelayStats, init=False)
    origin: str = attrs.field(factory=lambda: secrets.token_hex(8), init=False)
    _redis: Any = attrs.field(default=None, init=False, repr=False)
    _reader: asyncio.Task[None] | None = attrs.field(default=None, init=False, repr=False)
    _deliver: Callable[[bytes], bool] | None = attrs.field(default=None, init=False, repr=False)
    _last_id: str | None = attrs.field(default=None, init=False, repr=False)
    _down: bool = attrs.field(default=False, init=False, repr=False)
    _ready: asyncio.Event | None = attrs.field(default=None, init=False, repr=False)
    _stopping: bool = attrs.field(default=False, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        try:
            import redis.asyncio  # noqa: F401 - fail here, with the fix, not on first use
        except ImportError:  # pragma: no cover - the extra is installed in tests
            raise ValidationError(
                "relay", 'RedisRelay needs redis-py: pip install "ketchup-async[redis]"'
            ) from None

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``aclose()``."""
        return self._reader is not None and not self._reader.done()

    @property
    def reachable(self) -> bool:
        """False while an outage is going on (publishing or reading failed, not yet back)."""
        return not self._down

    async def start(self, deliver: Callable[[bytes], bool]) -> None:
        """Start reading the stream (inside the running loop); ``deliver(body)`` gets entries.

        Returns once the reader is positioned at the end of the stream (or Redis was found
        unreachable: then it keeps trying in the background).

        Args:
            deliver: Called with each body another worker published; True if it resolved
                one of this worker's jobs.
        """
        if self.running:
            return
        import redis.asyncio as aioredis

        self._deliver = deliver
        self._stopping = False
        # No command may wait forever: a read blocks at most _BLOCK_MS, far below the timeout.
        self._redis = aioredis.from_url(
            self.url, socket_connect_timeout=5.0, socket_timeout=_SOCKET_TIMEOUT
        )
        self._ready = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(
            self._read(), name="ketchup-async webhook relay"
        )
        with contextlib.suppress(asyncio.TimeoutError):  # unreachable: it keeps trying
            await asyncio.wait_for(self._ready.wait(), _SOCKET_TIMEOUT)

    async def publish(self, body: bytes) -> bool:
        """Hand one callback body to the other workers; False if Redis is unreachable."""
        if self._redis is None:
            return False
        try:
            await self._redis.xadd(
                self.stream,
                {"origin": self.origin, "body": body},
                maxlen=self.maxlen,
                approximate=True,
            )
        except Exception as exc:  # any Redis or socket failure: the safety-net poll remains
            self.stats.publish_failures += 1
            self._went_down(exc)
            return False
        self.stats.published += 1
        return True

    async def aclose(self) -> None:
        """Stop reading and close the connection (bounded: a few seconds at most).

        The reader is asked to stop and ends after its current read (at most ``_BLOCK_MS``);
        it is cancelled only if it does not: cancelling redis-py in the middle of a blocking
        read can leave its connection waiting forever.
        """
        reader, self._reader = self._reader, None
        self._stopping = True
        if reader is not None:
            _, running = await asyncio.wait({reader}, timeout=2.0 * _BLOCK_MS / 1000 + 1.0)
            if running:
                reader.cancel()
                await asyncio.wait(running, timeout=1.0)
        redis, self._redis = self._redis, None
        if redis is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(redis.aclose(), 2.0)

    # -- the reader ------------------------------------------------------------------------

    def _went_down(self, exc: BaseException) -> None:
        if not self._down:
            self._down = True
            logger.warning(
                "webhook relay: Redis at %s is unreachable (%s); callbacks for other workers' "
                "jobs fall back to their safety-net poll until it is back",
                _masked(self.url),
                type(exc).__name__,
            )

    def _came_back(self) -> None:
        if self._down:
            self._down = False
            self.stats.reconnects += 1
            logger.info("webhook relay: Redis at %s is reachable again", _masked(self.url))

    async def _position(self) -> str:
        # Start after the newest entry: older callbacks were for jobs of an earlier process.
        newest = await self._redis.xrevrange(self.stream, count=1)
        return newest[0][0].decode() if newest else "0-0"

    async def _read(self) -> None:
        assert self._ready is not None
        delay = self.backoff[0]
        while not self._stopping:
            try:
                if self._last_id is None:
                    self._last_id = await self._position()
                self._came_back()
                self._ready.set()
                entries = await self._redis.xread({self.stream: self._last_id}, block=_BLOCK_MS)
                delay = self.backoff[0]
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis or socket failure: retry with back-off
                self._went_down(exc)
                self._ready.set()
                await asyncio.sleep(random.uniform(delay / 2, delay))
                delay = min(self.backoff[1], delay * 2)
                continue
            for _stream, items in entries or ():
                for entry_id, fields in items:
                    self._last_id = entry_id.decode()
                    self._handle(fields)

    def _handle(self, fields: dict[bytes, bytes]) -> None:
        if fields.get(b"origin", b"").decode() == self.origin:
            return
        body = fields.get(b"body")
        if body is None or self._deliver is None:
            return
        self.stats.received += 1
        try:
            matched = self._deliver(body)
        except Exception:  # a bad entry (or a closed client) must not stop the reader
            logger.debug("webhook relay: an entry could not be delivered", exc_info=True)
            return
        if matched:
            self.stats.delivered += 1
