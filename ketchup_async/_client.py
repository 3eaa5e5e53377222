"""``KetchupClient``: the session manager. Lifecycle and the public methods; thin."""

from __future__ import annotations

import ipaddress
import logging
import os
import warnings
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

import aiohttp

from . import _validate
from ._converter import structure_task, unstructure_request
from ._download import DEFAULT_MAX_BYTES, download_image
from ._http import USER_AGENT, Transport
from ._jobs import Job
from ._many import generate_many
from ._models import (
    CallbackPayload,
    GenerateRequest,
    GenerationResult,
    ImageResult,
    Outcome,
    PollPolicy,
    RetryPolicy,
    SubmitHooks,
    Task,
)
from ._poller import QUERY_PATH, Poller
from ._submit import SubmitGate, Submitter
from ._submit_rate import SubmitController
from .errors import ClientClosedError, ServerError, TaskNotFoundError, ValidationError

__all__ = ["DEFAULT_BASE_URL", "InsecureTransportWarning", "KetchupClient"]

logger = logging.getLogger("ketchup_async")

DEFAULT_BASE_URL = "https://api.defapi.org"


class InsecureTransportWarning(UserWarning):
    """The base URL is plain ``http://`` to a host other than loopback: the key travels in clear."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("KETCHUP_API_KEY")
        if key is not None and not isinstance(key, str):
            raise ValidationError("api_key", f"must be a string, got {type(key).__name__}")
        if key is None or not key.strip():
            raise ValidationError(
                "api_key", "no API key: pass api_key=... or set the KETCHUP_API_KEY variable"
            )
        if any(c.isspace() or ord(c) < 32 for c in key):
            raise ValidationError("api_key", "must be a single token without whitespace")
        url = base_url or os.environ.get("KETCHUP_BASE_URL") or DEFAULT_BASE_URL
        _validate.check_http_url(url, field="base_url")
        parts = urlsplit(url)
        if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
            warnings.warn(
                f"base_url {parts.scheme}://{parts.netloc} is not HTTPS: the API key would be "
                "sent in clear text",
                InsecureTransportWarning,
                stacklevel=2,
            )
        _validate.check_model(model)
        if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 0:
            raise ValidationError("max_images", f"must be an integer >= 0, got {max_images!r}")
        _validate.check_positive(max_concurrency, field="max_concurrency", integer=True)
        _validate.check_positive(max_download_bytes, field="max_download_bytes", integer=True)
        if submit_rate is not None:
            _validate.check_positive(submit_rate, field="submit_rate")
        _validate.check_positive(timeout, field="timeout")
        for name, value, cls in (("polling", polling, PollPolicy), ("retry", retry, RetryPolicy)):
            if value is not None and not isinstance(value, cls):
                raise ValidationError(name, f"must be a {cls.__name__}, got {type(value).__name__}")
        self._api_key = key
        self.base_url = url.rstrip("/")
        self.model = model
        self.polling = polling or PollPolicy()
        self.retry = retry or RetryPolicy()
        self.max_concurrency = max_concurrency
        self.submit_rate = submit_rate
        self.timeout = timeout
        self.max_images = max_images
        self.max_download_bytes = max_download_bytes
        self._session = session
        self._owns_session = session is None
        self._transport: Transport | None = None
        self._poller: Poller | None = None
        self._submitter: Submitter | None = None
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"<KetchupClient base_url={self.base_url!r} model={self.model!r} "
            f"api_key={_mask(self._api_key)!r}>"
        )

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> KetchupClient:
        self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _open(self) -> tuple[Transport, Poller]:
        if self._closed:
            raise ClientClosedError("the client is closed")
        if self._transport is None or self._poller is None:
            if self._session is None:
                self._session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=self.max_concurrency),
                    headers={"User-Agent": USER_AGENT},
                )
            self._transport = Transport(
                session=self._session,
                base_url=self.base_url,
                api_key=self._api_key,
                retry=self.retry,
                timeout=self.timeout,
                max_concurrency=self.max_concurrency,
            )
            self._poller = Poller(self._transport, self.polling)
            controller = SubmitController(
                self.submit_rate,
                base=self.retry.base,
                cap=self.retry.cap,
                retry_after_cap=self.retry.retry_after_cap,
            )
            self._submitter = Submitter(self._transport, SubmitGate(controller), self.retry)
        return self._transport, self._poller

    @property
    def closed(self) -> bool:
        """True once ``aclose()`` was called."""
        return self._closed

    async def aclose(self) -> None:
        """Stop the poller, fail pending jobs with ``ClientClosedError``, close our session."""
        if self._closed:
            return
        self._closed = True
        if self._submitter is not None:
            self._submitter.gate.close()  # submits waiting for their turn end now
        if self._poller is not None:
            await self._poller.close()
        if self._owns_session and self._session is not None:
            await self._session.close()

    # -- one job ----------------------------------------------------------------------------

    def _request(
        self,
        prompt: str,
        images: Sequence[str],
        callback_url: str | None,
        model: str | None,
    ) -> GenerateRequest:
        return GenerateRequest(
            prompt,
            model=model,
            images=images,
            callback_url=callback_url,
            max_images=self.max_images,
        )

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
        return await self.submit_request(self._request(prompt, images, callback_url, model))

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
        if not isinstance(request, GenerateRequest):
            raise ValidationError(
                "request", f"must be a GenerateRequest, got {type(request).__name__}"
            )
        if hooks is not None and not isinstance(hooks, SubmitHooks):
            raise ValidationError("hooks", f"must be SubmitHooks, got {type(hooks).__name__}")
        if len(request.images) > self.max_images:
            raise ValidationError(
                "images",
                f"has {len(request.images)} reference images; this client allows {self.max_images}",
            )
        hooks = hooks or SubmitHooks()
        _, poller = self._open()
        assert self._submitter is not None
        body = unstructure_request(request, default_model=self.model)
        task_id = await self._submitter.submit(body, hooks)
        if hooks.on_submitted is not None:
            await hooks.on_submitted(task_id)
        logger.debug("submitted task %s", task_id)
        return poller.add(task_id, request, has_callback=request.callback_url is not None)

    async def generate(
        self,
        prompt: str,
        *,
        images: Sequence[str] = (),
        callback_url: str | None = None,
        model: str | None = None,
        timeout: float | None = None,
    ) -> GenerationResult:
        """Submit one generation and wait for its result (at most ``timeout`` seconds)."""
        job = await self.submit(prompt, images=images, callback_url=callback_url, model=model)
        return await job.wait(timeout)

    async def query(self, task_id: str) -> Task:
        """Query one task once (no tracking).

        Raises:
            TaskNotFoundError: The API does not know the task.
        """
        _validate.check_task_id(task_id)
        transport, _ = self._open()
        data = await transport.request(
            "GET",
            QUERY_PATH,
            params={"task_id": task_id},
            idempotent=True,
            not_found=TaskNotFoundError,
        )
        try:
            return structure_task(data)
        except ValidationError as exc:
            raise ServerError(f"malformed query response: {exc}", status_code=200) from None

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
        _, poller = self._open()
        return poller.add(task_id, request, has_callback=has_callback, learn=False)

    def deliver(self, payload: CallbackPayload, *, verify: bool = False) -> bool:
        """Resolve a tracked job from a webhook payload now.

        Duplicates and unknown task ids are harmless. A callback that arrives before its
        submit returned is kept and applied when the job appears.

        Args:
            payload: The parsed callback (see ``ketchup_async.webhooks.parse_callback``).
            verify: Don't trust the payload: re-query the task (within the budget) instead.

        Returns:
            True if it matched a pending job.
        """
        if not isinstance(payload, CallbackPayload):
            raise ValidationError(
                "payload", f"must be a CallbackPayload, got {type(payload).__name__}"
            )
        _, poller = self._open()
        return poller.deliver(payload, verify=verify)

    def pending(self) -> int:
        """How many jobs the poller is watching."""
        return 0 if self._poller is None else len(self._poller)

    @property
    def queries_sent(self) -> int:
        """How many task queries the shared poller has sent."""
        return 0 if self._poller is None else self._poller.queries

    # -- many jobs and files ----------------------------------------------------------------

    def generate_many(
        self,
        inputs: Iterable[str | GenerateRequest] | AsyncIterable[str | GenerateRequest],
        *,
        concurrency: int = 256,
        hooks: Callable[[int, GenerateRequest], SubmitHooks] | None = None,
    ) -> AsyncIterator[Outcome]:
        """Generate an image per input, yielding an ``Outcome`` per input as each completes.

        Inputs (prompts or ``GenerateRequest`` objects, from a list, an iterator or an async
        iterator) are read lazily; at most ``concurrency`` jobs are in flight. A failed submit
        or task is an ``Outcome`` with ``error``; the iteration itself does not raise for it.
        Breaking out of the loop stops submitting and stops tracking what is in flight.

        Args:
            inputs: Prompts or requests.
            concurrency: Inputs between "read" and "taken by the caller", at most.
            hooks: Called with (input index, request) for the ``SubmitHooks`` of that submit
                (a durable run journals through them).
        """
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, (Iterable, AsyncIterable)):
            # A lone prompt would be iterated character by character: one paid job per letter.
            raise ValidationError(
                "inputs", f"must be an iterable of prompts or requests, got {type(inputs).__name__}"
            )
        self._open()
        return generate_many(self, inputs, concurrency=concurrency, hooks=hooks)

    async def download(
        self, image: ImageResult | str, dest: str | os.PathLike[str], *, overwrite: bool = True
    ) -> Path:
        """Download (or decode) one result image to ``dest``; return the path written.

        URLs are fetched with the SDK's User-Agent and without the API key, streamed to a
        temporary file and renamed into place; ``dest`` without a suffix gets one from the
        content type. Capped at ``max_download_bytes``.
        """
        if not isinstance(image, (ImageResult, str)):
            raise ValidationError("image", f"must be a URL, got {type(image).__name__}")
        if not isinstance(dest, (str, os.PathLike)):
            raise ValidationError("dest", f"must be a path, got {type(dest).__name__}")
        transport, _ = self._open()
        return await download_image(
            transport.session,
            image if isinstance(image, ImageResult) else ImageResult(image),
            Path(dest),
            max_bytes=self.max_download_bytes,
            retry=self.retry,
            timeout=self.timeout,
            overwrite=overwrite,
        )
