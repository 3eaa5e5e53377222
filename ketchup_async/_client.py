"""``KetchupClient``: the session manager. Lifecycle and the public methods; thin."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from decimal import Decimal
from pathlib import Path

import aiohttp
import attrs

from . import _validate
from ._callback import CallbackLike, as_callback
from ._converter import unstructure_request
from ._download import DEFAULT_DEADLINE, DEFAULT_MAX_BYTES, Downloader
from ._endpoints import DEFAULT_BASE_URL, query_task, resolve_base_url
from ._engine import Engine
from ._jobs import Job
from ._lifecycle import Lifecycle
from ._many import HooksFor, Item, ManyRun, ProgressHook
from ._models import (
    GenerateRequest,
    GenerationResult,
    ImageResult,
    Outcome,
    PollPolicy,
    RetryPolicy,
    SubmitHooks,
    Task,
)
from ._stats import ClientStats
from ._telemetry import Recorder, Telemetry
from .errors import ClientClosedError, ValidationError

__all__ = ["DEFAULT_BASE_URL", "KetchupClient"]

logger = logging.getLogger("ketchup_async")


def _mask(key: str) -> str:
    return f"{key[:3]}…{key[-2:]}" if len(key) > 8 else "…"


class KetchupClient:
    """An async session manager for the Ketchup image API.

    Submits many jobs concurrently and watches every pending task with one shared,
    rate-limited poller. Use it as ``async with KetchupClient() as client: ...``.

    Args:
        api_key: The API key; falls back to ``KETCHUP_API_KEY``.
        base_url: The API root; falls back to ``KETCHUP_BASE_URL``, then the public API.
        model: The model for requests that name none.
        polling: The shared poller's schedule and query budget.
        retry: HTTP retries.
        max_concurrency: HTTP requests in flight from this client.
        submit_rate: Submits per second (None: unlimited).
        timeout: Seconds per HTTP request.
        session: An ``aiohttp.ClientSession`` to share (not closed by the client).
        max_images: Reference images allowed per request (the provider documents 4).
        max_download_bytes: Size cap of one downloaded image.
        download_hosts: Host names, addresses and CIDR networks downloads may reach although
            they are not public (loopback, private, link-local...); falls back to the
            comma-separated ``KETCHUP_DOWNLOAD_HOSTS``. Empty by default: public hosts only.
        download_timeout: Seconds for one whole download (redirects and retries included).
        max_download_concurrency: Downloads in flight, on a connection pool of their own.
        telemetry: OpenTelemetry reporting (spans and metrics; see ``Telemetry``).

    Raises:
        ValidationError: No API key, or a bad argument; nothing is sent.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        model: str = _validate.MODEL_GEMPIX2,
        polling: PollPolicy | None = None,
        retry: RetryPolicy | None = None,
        max_concurrency: int = 64,
        submit_rate: float | None = None,
        timeout: float = 30.0,
        session: aiohttp.ClientSession | None = None,
        max_images: int = _validate.DEFAULT_MAX_IMAGES,
        max_download_bytes: int = DEFAULT_MAX_BYTES,
        download_hosts: Iterable[str] | None = None,
        download_timeout: float = DEFAULT_DEADLINE,
        max_download_concurrency: int = 16,
        telemetry: Telemetry | None = None,
    ) -> None:
        key = _validate.check_api_key(
            api_key if api_key is not None else os.environ.get("KETCHUP_API_KEY")
        )
        url = resolve_base_url(base_url)
        _validate.check_model(model)
        _validate.check_int(max_images, field="max_images")
        _validate.check_positive(max_concurrency, field="max_concurrency", integer=True)
        if submit_rate is not None:
            _validate.check_positive(submit_rate, field="submit_rate")
        _validate.check_positive(timeout, field="timeout")
        _validate.check_type(
            polling, (PollPolicy, type(None)), field="polling", what="a PollPolicy"
        )
        _validate.check_type(retry, (RetryPolicy, type(None)), field="retry", what="a RetryPolicy")
        self._telemetry = Recorder.for_client(telemetry, url)
        self._api_key = key
        self.base_url = url
        self.model = model
        self.polling = polling or PollPolicy()
        self.retry = retry or RetryPolicy()
        self.max_concurrency = max_concurrency
        self.submit_rate = submit_rate
        self.timeout = timeout
        self.max_images = max_images
        self.max_download_bytes = max_download_bytes
        self._downloader = Downloader.configure(
            hosts=download_hosts,
            deadline=download_timeout,
            max_connections=max_download_concurrency,
            max_bytes=max_download_bytes,
            retry=self.retry,
            timeout=timeout,
            telemetry=self._telemetry,
        )
        self._session = session
        self._engine: Engine | None = None
        self._closed = False
        self._life = Lifecycle()
        self._runs: set[ManyRun] = set()

    def __repr__(self) -> str:
        key = _mask(self._api_key)
        return f"<KetchupClient base_url={self.base_url!r} model={self.model!r} api_key={key!r}>"

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> KetchupClient:
        self._open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _open(self) -> Engine:
        if self._closed:
            raise ClientClosedError("the client is closed")
        if self._engine is None:
            self._engine = Engine.start(
                session=self._session,
                base_url=self.base_url,
                api_key=self._api_key,
                polling=self.polling,
                retry=self.retry,
                timeout=self.timeout,
                max_concurrency=self.max_concurrency,
                submit_rate=self.submit_rate,
                sleep=self._life.sleep,
                telemetry=self._telemetry,
            )
        return self._engine

    @property
    def closed(self) -> bool:
        """True once ``aclose()`` was called."""
        return self._closed

    async def aclose(self, *, timeout: float | None = None) -> None:
        """Close the client without cutting a submit that may be charged or losing a task id.

        New submits are refused; waiting ones (rate limiter, retry back-off) end with
        ``ClientClosedError``; those on the wire may finish (at most ``timeout`` s, default the
        request ``timeout``); open ``generate_many`` runs stop and log at WARNING the task ids
        their caller never saw. Then pending jobs fail with ``ClientClosedError`` and our
        session closes. Cancelling ``aclose()`` does not interrupt this; a second call waits.
        """
        self._closed = True
        if self._engine is not None:
            self._engine.stop_submits()
        for run in list(self._runs):
            run.stop()
        grace = self.timeout if timeout is None else timeout
        await self._life.shutdown(grace, self._runs, self._release)

    async def _release(self) -> None:
        if self._engine is not None:
            await self._engine.close()
        await self._downloader.aclose()

    # -- one job ----------------------------------------------------------------------------

    async def submit(
        self,
        prompt: str,
        *,
        images: Sequence[str] = (),
        callback_url: str | None = None,
        model: str | None = None,
    ) -> Job:
        """Submit one generation and return its ``Job`` (await it for the result).

        Raises:
            ValidationError: Bad input; nothing was sent.
            APIError: The API refused the submit.
            APIConnectionError: No answer; see ``may_have_been_processed``.
        """
        request = GenerateRequest(
            prompt,
            model=model,
            images=images,
            callback_url=callback_url,
            max_images=self.max_images,
        )
        return await self.submit_request(request)

    async def submit_request(
        self, request: GenerateRequest, *, hooks: SubmitHooks | None = None
    ) -> Job:
        """Submit a prepared ``GenerateRequest`` and return its ``Job``.

        Args:
            request: The request (validated on construction).
            hooks: Callbacks around the submit, for callers that journal what was sent (see
                ``SubmitHooks``).

        A 429/503 waits for the client's submit controller (no retry counted); a 500 or a
        failed connect is retried; an answer that may hide a task is never resent.

        Raises:
            ValidationError: Bad input; nothing was sent.
            APIError: The API rejected the submit.
            APIConnectionError: No usable answer; see ``may_have_been_processed``.
            ClientClosedError: The client closed before the submit was sent.
        """
        _validate.check_type(request, GenerateRequest, field="request", what="a GenerateRequest")
        _validate.check_type(hooks, SubmitHooks, field="hooks", what="SubmitHooks", optional=True)
        if len(request.images) > self.max_images:
            raise ValidationError(
                "images",
                f"has {len(request.images)} reference images; this client allows {self.max_images}",
            )
        hooks = hooks or SubmitHooks()
        engine = self._open()
        with self._life.submitting():
            self._life.check_open()
            body = unstructure_request(request, default_model=self.model)
            # refuses to send once closing, holding the request slot: the last moment to refuse
            sending = attrs.evolve(hooks, on_send=self._life.guard(hooks.on_send))
            task_id = await engine.submitter.submit(body, sending)
            if hooks.on_submitted is not None:
                await hooks.on_submitted(task_id)
            logger.debug("submitted task %s", task_id)
            try:
                return engine.poller.add(
                    task_id, request, has_callback=request.callback_url is not None
                )
            except ClientClosedError:
                raise ClientClosedError(
                    f"the client closed while submitting: task {task_id} was created",
                    task_id=task_id,
                    may_have_been_processed=True,
                ) from None

    async def generate(
        self,
        prompt: str,
        *,
        images: Sequence[str] = (),
        callback_url: str | None = None,
        model: str | None = None,
        timeout: float | None = None,
    ) -> GenerationResult:
        """Submit one generation and wait for its result (at most ``timeout`` seconds).

        Raises:
            JobTimeoutError: ``timeout`` passed; it carries the task id (the job goes on).
        """
        job = await self.submit(prompt, images=images, callback_url=callback_url, model=model)
        return await job.wait(timeout)

    async def query(self, task_id: str) -> Task:
        """Query one task once (no tracking).

        Raises:
            TaskNotFoundError: The API does not know the task.
            UnknownStatusError: The API answered a status it does not document.
        """
        _validate.check_task_id(task_id)
        return await query_task(self._open().transport, task_id)

    def track(
        self,
        task_id: str,
        *,
        request: GenerateRequest | None = None,
        has_callback: bool = False,
    ) -> Job:
        """Attach the shared poller to an existing task (to resume after a crash).

        The task is queried soon; its render time is not used to learn the schedule.
        """
        _validate.check_task_id(task_id)
        return self._open().poller.add(task_id, request, has_callback=has_callback, learn=False)

    def deliver(self, payload: CallbackLike, *, verify: bool = False) -> bool:
        """Resolve a tracked job from a webhook payload now.

        Duplicates and unknown task ids are harmless. A callback that arrives before its
        submit returned is kept and applied when the job appears.

        Args:
            payload: A ``CallbackPayload``, the decoded JSON body or the raw body bytes (parsed
                and capped like ``parse_callback``: a bad one raises ``ValidationError``).
            verify: Don't trust the payload: re-query the task (within the budget) instead.

        Returns:
            True if it matched a pending job.
        """
        parsed = as_callback(payload)
        return self._open().poller.deliver(parsed, verify=verify)

    def pending(self) -> int:
        """How many jobs the poller is watching."""
        return 0 if self._engine is None else len(self._engine.poller)

    @property
    def queries_sent(self) -> int:
        """How many task queries the shared poller has sent."""
        return 0 if self._engine is None else self._engine.poller.queries

    def stats(self) -> ClientStats:
        """A frozen snapshot of this client's counters and learned figures (``ClientStats``)."""
        return self._telemetry.stats(
            None if self._engine is None else self._engine.poller, self.polling
        )

    # -- many jobs and files ----------------------------------------------------------------

    def generate_many(
        self,
        inputs: Iterable[Item] | AsyncIterable[Item],
        *,
        concurrency: int = 256,
        hooks: HooksFor | None = None,
        on_progress: ProgressHook | None = None,
        max_credits: float | str | Decimal | None = None,
        price: float | str | Decimal | None = None,
    ) -> AsyncIterator[Outcome]:
        """Generate an image per input, yielding an ``Outcome`` per input as each completes.

        Inputs (prompts or ``GenerateRequest`` objects, from a list, an iterator or an async
        iterator) are read lazily: at most ``concurrency`` inputs are read beyond the outcomes
        the caller has taken (a slow loop body slows the run down). A failed submit or task is
        an ``Outcome`` with ``error``; the iteration itself does not raise for it. Breaking out
        of the loop stops submitting, lets submits on the wire finish and stops tracking what is
        in flight, logging at WARNING the task ids the caller never saw.

        Args:
            inputs: Prompts or requests.
            concurrency: Inputs between "read" and "taken by the caller", at most.
            hooks: Called with (input index, request) for the ``SubmitHooks`` of that submit
                (a durable run journals through them).
            on_progress: Called with a ``ManyProgress`` snapshot after every change (read,
                submitted, succeeded, failed); an exception it raises ends the iteration.
            max_credits: Never submit an input that could push spend (credits consumed plus a
                reservation per job in flight, at the highest cost seen, or ``price``) past
                this; such inputs get an ``Outcome`` with ``BudgetExceededError``, unsent.
                Until a price is known, one job at a time.
            price: Credits one job costs at most (reserved per job from the start).
        """
        run = ManyRun(self, self._runs, inputs, concurrency, hooks=hooks, on_progress=on_progress)
        run.limit_spend(max_credits, price)
        self._open()
        return run.outcomes()

    async def download(
        self, image: ImageResult | str, dest: str | os.PathLike[str], *, overwrite: bool = True
    ) -> Path:
        """Download (or decode) one result image to ``dest``; return the path written.

        URLs are fetched with the SDK's User-Agent and without the API key, streamed to a
        temporary file and renamed into place; ``dest`` without a suffix gets one from the
        content type. Capped at ``max_download_bytes`` and ``download_timeout``; run on a
        connection pool of their own (``max_download_concurrency``).

        Raises:
            ValidationError: ``image`` is not an http(s) URL or a data URI.
            DownloadError: The image host is not a public address (and not in
                ``download_hosts``), refused, too slow, or sent no image.
        """
        _validate.check_type(image, (ImageResult, str), field="image", what="a URL")
        _validate.check_type(dest, (str, os.PathLike), field="dest", what="a path")
        self._open()
        return await self._downloader.download(
            image if isinstance(image, ImageResult) else ImageResult(image),
            Path(dest),
            overwrite=overwrite,
        )
