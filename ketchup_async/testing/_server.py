"""``FakeKetchupServer``: a faithful in-process aiohttp implementation of the Ketchup API."""

from __future__ import annotations

import itertools
import random
import time
import types
from collections.abc import Iterable, Mapping
from typing import Literal

from aiohttp import web

from ._admin import AdminHandlers
from ._callbacks import CallbackDispatcher
from ._handlers import ServerHandlers
from ._ledger import FakeLedger
from ._state import FakeTask, Faults, TaskStore, TokenBucket, format_retry_after
from ._stats import FakeStats

__all__ = ["FakeKetchupServer", "ResultMode"]

ResultMode = Literal["url", "data_uri"]
"""How result images are delivered: CDN URLs or inline ``data:`` URIs."""

_SHUTDOWN_TIMEOUT = 0.1  # real seconds in-flight requests get when sites close
_MAX_BODY = 32 * 1024 * 1024


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


def _check_non_negative(name: str, value: float) -> None:
    if not value >= 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class FakeKetchupServer(ServerHandlers, AdminHandlers):
    """The Ketchup API (``/api/image/gen``, ``/api/task/query``) plus its image CDN, faked.

    Task statuses are computed from the clock when queried (no timer per task), so the
    server holds very many pending tasks cheaply. Every random draw comes from ONE
    ``random.Random(seed)``. Times are in API seconds and scaled by ``time_scale``
    (real seconds per API second) unless stated otherwise.

    Args:
        api_keys: Accepted API keys.
        render_time: Median render time (log-normal), API seconds.
        render_sigma: Sigma of the log-normal render time.
        time_scale: Real seconds per API second (``0.05`` runs 20x faster).
        failure_rate: Probability that a task ends ``failed``.
        seed: Seed of the single RNG used for all draws.
        result_mode: ``"url"`` (PNG served by the fake CDN) or ``"data_uri"``.
        images_per_task: Images in each successful result.
        max_images: Reference images accepted per submit (400 above).
        visibility_delay: API seconds after submit during which queries answer 404.
        query_rate_limit: Queries per API second for the whole server (None: unlimited).
        submit_rate_limit: Submits per API second for the whole server (None: unlimited).
        retry_after: API seconds advertised (scaled) in ``Retry-After`` on 429.
        submit_faults: Faults injected into submits (mutable at runtime).
        query_faults: Faults injected into queries (mutable at runtime).
        callback_drop_rate: Probability that a callback is not sent.
        callback_duplicate_rate: Probability that a callback is sent twice.
        callback_delay: API seconds between completion and the callback POST.
        cdn_require_user_agent: CDN answers 403 without a User-Agent or with aiohttp's default.
        extra_fields: Add unknown keys to every JSON response.
        omit_consumed: Leave ``consumed`` out of query responses.
        request_id_header: The response header carrying each answer's request id (the
            guide names none; ``X-Request-Id`` by default, e.g. ``"CF-Ray"`` or
            ``"Request-Id"`` to test a client against another proxy; None: no request id).
        host: Interface both ports bind to.
        port: API port (0: pick a free one).
        cdn_port: CDN port (0: pick a free one).
    """

    def __init__(
        self,
        *,
        api_keys: Iterable[str] = ("dk-test",),
        render_time: float = 8.0,
        render_sigma: float = 0.5,
        time_scale: float = 1.0,
        failure_rate: float = 0.0,
        seed: int = 0,
        result_mode: ResultMode = "url",
        images_per_task: int = 1,
        max_images: int = 4,
        visibility_delay: float = 0.0,
        query_rate_limit: float | None = None,
        submit_rate_limit: float | None = None,
        retry_after: float = 1.0,
        submit_faults: Faults | None = None,
        query_faults: Faults | None = None,
        callback_drop_rate: float = 0.0,
        callback_duplicate_rate: float = 0.0,
        callback_delay: float = 0.0,
        cdn_require_user_agent: bool = True,
        extra_fields: bool = False,
        omit_consumed: bool = False,
        request_id_header: str | None = "X-Request-Id",
        host: str = "127.0.0.1",
        port: int = 0,
        cdn_port: int = 0,
    ) -> None:
        for name, value in (
            ("render_time", render_time),
            ("render_sigma", render_sigma),
            ("time_scale", time_scale),
            ("visibility_delay", visibility_delay),
            ("retry_after", retry_after),
            ("callback_delay", callback_delay),
        ):
            _check_non_negative(name, value)
        for name, value in (
            ("failure_rate", failure_rate),
            ("callback_drop_rate", callback_drop_rate),
            ("callback_duplicate_rate", callback_duplicate_rate),
        ):
            _check_probability(name, value)
        if result_mode not in ("url", "data_uri"):
            raise ValueError(f"result_mode must be 'url' or 'data_uri', got {result_mode!r}")
        if images_per_task < 1 or max_images < 0:
            raise ValueError("images_per_task must be >= 1 and max_images >= 0")
        if request_id_header is not None and (
            not isinstance(request_id_header, str) or not request_id_header.strip()
        ):
            raise ValueError(f"request_id_header must be a header name, got {request_id_header!r}")
        self._keys = set(api_keys)
        self.time_scale = time_scale
        self._rng = random.Random(seed)
        self._stats = FakeStats()
        self._store = TaskStore(
            rng=self._rng,
            render_time=render_time,
            render_sigma=render_sigma,
            time_scale=time_scale,
            failure_rate=failure_rate,
            visibility_delay=visibility_delay,
        )
        self._data_uri = result_mode == "data_uri"
        self._images_per_task = images_per_task
        self._max_images = max_images
        self._query_bucket = TokenBucket(query_rate_limit, time_scale) if query_rate_limit else None
        self._submit_bucket = (
            TokenBucket(submit_rate_limit, time_scale) if submit_rate_limit else None
        )
        self._retry_after = format_retry_after(retry_after * time_scale)
        self.submit_faults = submit_faults if submit_faults is not None else Faults()
        self.query_faults = query_faults if query_faults is not None else Faults()
        self._cdn_require_user_agent = cdn_require_user_agent
        self._extra_fields = extra_fields
        self._omit_consumed = omit_consumed
        self._consumed = f"{0.5 * images_per_task:.6f}"
        self._callbacks = CallbackDispatcher(
            tasks=self._store.tasks,
            stats=self._stats,
            rng=self._rng,
            payload=self._callback_payload,
            drop_rate=callback_drop_rate,
            duplicate_rate=callback_duplicate_rate,
            delay=callback_delay * time_scale,
        )
        self._host = host
        self._port = port
        self._cdn_port = cdn_port
        self._cdn_base = ""
        self._runners: list[web.AppRunner] = []
        self._started = False
        self._request_ids = itertools.count(1)
        self._request_id_header = request_id_header
        self._ledger = FakeLedger()

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> FakeKetchupServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind the API and CDN ports and start the callback loop.

        Raises:
            RuntimeError: If the server is already started.
        """
        if self._started:
            raise RuntimeError("FakeKetchupServer is already started")
        self._started = True
        try:
            await self._callbacks.start()
            await self._start_sites()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close both ports, stop the callback loop and its session (idempotent)."""
        await self._stop_sites()
        await self._callbacks.close()
        self._started = False

    async def restart(self) -> None:
        """Drop every open connection: close both sites and reopen them on the same ports.

        Tasks, keys and stats are kept.

        Raises:
            RuntimeError: If the server is not started.
        """
        if not self._started:
            raise RuntimeError("FakeKetchupServer is not started")
        await self._stop_sites()
        await self._start_sites()

    async def _start_sites(self) -> None:
        api = web.Application(client_max_size=_MAX_BODY)
        api.router.add_post("/api/image/gen", self._handle_submit)
        api.router.add_get("/api/task/query", self._handle_query)
        api.router.add_get("/_fake/stats", self._handle_stats)
        api.router.add_get("/_fake/tasks", self._handle_tasks)
        api.router.add_get("/_fake/ledger", self._handle_ledger)
        cdn = web.Application()
        cdn.router.add_get("/images/{name}", self._handle_image)
        self._port = await self._serve(api, self._port)
        self._cdn_port = await self._serve(cdn, self._cdn_port)
        self._cdn_base = _url(self._host, self._cdn_port)

    async def _serve(self, app: web.Application, port: int) -> int:
        app.on_response_prepare.append(self._add_request_id)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, self._host, port).start()
        bound: int = runner.addresses[0][1]
        return bound

    async def _stop_sites(self) -> None:
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.cleanup()

    def _next_request_id(self) -> str:
        rid = (next(self._request_ids) * 0x9E3779B97F4A7C15) & 0xFFFF_FFFF_FFFF_FFFF
        return f"req_{rid:016x}"

    async def _add_request_id(self, request: web.Request, response: web.StreamResponse) -> None:
        header = self._request_id_header
        if header is not None and header not in response.headers:
            response.headers[header] = self._next_request_id()

    # -- public API ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API root, e.g. ``http://127.0.0.1:PORT`` (available once started)."""
        self._require_started()
        return _url(self._host, self._port)

    @property
    def cdn_url(self) -> str:
        """The image CDN root; result URLs are ``{cdn_url}/images/{task_id}-{n}.png``."""
        self._require_started()
        return self._cdn_base

    @property
    def stats(self) -> FakeStats:
        """Counters of what clients did so far."""
        return self._stats

    @property
    def ledger(self) -> FakeLedger:
        """The money ledger: every task created, how its submit was answered (see ``audit``)."""
        return self._ledger

    @property
    def tasks(self) -> Mapping[str, FakeTask]:
        """Read-only view of every task, by id."""
        return types.MappingProxyType(self._store.tasks)

    @property
    def api_keys(self) -> frozenset[str]:
        """The keys currently accepted."""
        return frozenset(self._keys)

    def add_key(self, key: str) -> None:
        """Start accepting ``key``."""
        self._keys.add(key)

    def revoke_key(self, key: str) -> None:
        """Stop accepting ``key`` (no error if it was not accepted)."""
        self._keys.discard(key)

    def create_task(
        self,
        prompt: str,
        *,
        model: str = "google/gempix2",
        images: Iterable[str] = (),
        callback_url: str | None = None,
    ) -> str:
        """Create a task as if another client had submitted it; return its id."""
        return self._create(prompt, model, tuple(images), callback_url).task_id

    def complete_now(
        self,
        task_id: str,
        status: Literal["success", "failed"] = "success",
        reason: str | None = None,
    ) -> None:
        """Force ``task_id`` into a final state now (and send its callback promptly).

        Args:
            task_id: An existing task.
            status: ``"success"`` or ``"failed"``.
            reason: ``status_reason.message`` for a failure (a default one if None).

        Raises:
            KeyError: If the task does not exist.
            ValueError: If ``status`` is not final.
        """
        task = self._store.complete(task_id, status, reason, now=time.monotonic())
        self._callbacks.schedule(task)

    def _require_started(self) -> None:
        if not self._cdn_base:
            raise RuntimeError("FakeKetchupServer was never started: no address yet")
