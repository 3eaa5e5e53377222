"""The engine of a durable bulk run: drive every unfinished input of a journal to a final state.

One pass (``BulkRunner.drive``) does, concurrently:
- re-attach every ``submitted`` task with ``client.track()`` (no new submit);
- download the files of every success that lacks them on disk;
- submit every ``queued`` input through ``generate_many``, journaling ``submitting`` just before
  each submit goes on the wire (after any ``submit_rate`` wait, holding a request slot) and the
  task id as soon as it is known (both awaited: they guard the money);
- record each outcome, then download its images (bounded concurrency).

Outcome writes are not awaited one by one (the journal groups them into few commits); a crash
before one is committed only means the task is re-attached on resume.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio

from .._converter import request_from_dict
from .._jobs import Job
from .._models import GenerateRequest, GenerationResult, ImageResult, Outcome, SubmitHooks
from ..errors import KetchupError, ValidationError
from ._files import download_result, file_stem, files_missing
from ._journal import Journal, Row
from ._progress import BulkProgress
from ._states import (
    State,
    is_fatal_submit_error,
    state_after_submit_error,
    state_after_task_error,
)

if TYPE_CHECKING:
    from .._client import KetchupClient

__all__ = ["BulkRunner"]

logger = logging.getLogger("ketchup_async")

_PAGE = 1000


class _HookFailed(Exception):
    """A journal write in a submit hook failed: the run must stop (never an ``Outcome``)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        super().__init__(str(error))


def _consumed(value: object) -> str | None:
    return None if value is None else str(value)


class BulkRunner:
    """Drives one journal's unfinished inputs; see the module docstring."""

    def __init__(
        self,
        client: KetchupClient,
        journal: Journal,
        out_dir: Path,
        *,
        concurrency: int,
        download: bool,
        download_concurrency: int,
        progress: Callable[[BulkProgress], None] | None,
        progress_interval: float,
    ) -> None:
        self.client = client
        self.journal = journal
        self.out_dir = out_dir
        self.concurrency = concurrency
        self.download = download
        self.progress = progress
        self.progress_interval = progress_interval
        self.counts: dict[State, int] = dict.fromkeys(State, 0)
        self.consumed = Decimal(0)
        self.finished = 0
        self.submits = 0
        self.resumed = 0
        self.files_written = 0
        self.download_errors = 0
        self._slots = asyncio.Semaphore(download_concurrency)
        self._downloads: set[asyncio.Task[None]] = set()
        self._tracked: set[Job] = set()
        self._seq_of_index: dict[int, Row] = {}
        self._on_the_wire: set[int] = set()  # indices journaled ``submitting``, no outcome yet
        self._errors: list[BaseException] = []
        self._fatal: KetchupError | None = None
        self._idle = asyncio.Event()
        self._started = time.monotonic()

    # -- progress ---------------------------------------------------------------------------

    def snapshot(self) -> BulkProgress:
        """The current progress."""
        return BulkProgress(
            total=sum(self.counts.values()),
            counts=dict(self.counts),
            consumed=self.consumed,
            finished=self.finished,
            downloading=len(self._downloads),
            files_written=self.files_written,
            elapsed=time.monotonic() - self._started,
        )

    def report(self) -> None:
        """Call the progress callback with a snapshot (if there is one)."""
        if self.progress is not None:
            self.progress(self.snapshot())

    def _move(self, source: State, target: State) -> None:
        self.counts[source] -= 1
        self.counts[target] += 1
        if target.is_final:
            self.finished += 1

    def _watch(self, future: asyncio.Future[Any]) -> None:
        """Keep the error of a write nobody awaits (it ends the run)."""

        def check(done: asyncio.Future[Any]) -> None:
            if not done.cancelled() and done.exception() is not None:
                self._errors.append(done.exception())  # type: ignore[arg-type]
                self._idle.set()

        future.add_done_callback(check)

    # -- the pass ---------------------------------------------------------------------------

    async def drive(self) -> None:
        """Bring every unfinished input to a final state (or as far as this run can)."""
        self.counts = await self.journal.counts()
        self.consumed = await self.journal.consumed_total()
        self._started = time.monotonic()
        self.report()
        ticker = asyncio.get_running_loop().create_task(self._tick()) if self.progress else None
        try:
            if self.download:
                await self._download_missing()
            await self._reattach()
            await self._submit_queued()
            while self._tracked or self._downloads:
                self._idle.clear()
                await self._idle.wait()
                self._raise_errors()
            if self._fatal is not None:
                raise self._fatal
        except _HookFailed as exc:
            raise exc.error from None
        finally:
            if ticker is not None:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)
            await self._stop()
        self._raise_errors()
        self.report()

    async def _tick(self) -> None:
        while True:  # progress keeps moving (elapsed, rate, ETA) while nothing finishes
            await asyncio.sleep(self.progress_interval)
            try:
                self.report()
            except Exception:  # a display bug must not stop a paid run
                logger.exception("the progress callback failed; no more progress reports")
                return

    async def _submit_queued(self) -> None:
        outcomes = cast(
            "AsyncGenerator[Outcome, None]",
            self.client.generate_many(
                self._queued(), concurrency=self.concurrency, hooks=self._hooks
            ),
        )
        try:
            async for outcome in outcomes:
                self._on_outcome(outcome)
                self._raise_errors()
        finally:  # stop submitting, let submits on the wire land in the journal, stop tracking
            await outcomes.aclose()

    async def _stop(self) -> None:
        for job in list(self._tracked):
            job.cancel()  # the task stays `submitted`: a resume re-attaches it
        self._tracked.clear()
        downloads = list(self._downloads)
        for task in downloads:
            task.cancel()  # the row stays `succeeded` without files: a resume downloads them
        if downloads:
            await asyncio.gather(*downloads, return_exceptions=True)

    def _raise_errors(self) -> None:
        if self._errors:
            raise self._errors[0]

    def _task_done(self) -> None:
        if not self._tracked and not self._downloads:
            self._idle.set()

    # -- submitting -------------------------------------------------------------------------

    async def _queued(self) -> AsyncIterator[GenerateRequest]:
        index, after = 0, 0
        while True:
            page = await self.journal.rows(State.QUEUED, after=after, limit=_PAGE)
            if not page:
                return
            for row in page:
                if self._fatal is not None:
                    return
                after = row.seq
                try:
                    request = request_from_dict(row.request, max_images=self.client.max_images)
                except ValidationError as exc:
                    await self._refuse(row, exc)
                    continue
                self._seq_of_index[index] = row
                index += 1
                yield request

    async def _refuse(self, row: Row, error: ValidationError) -> None:
        # A journaled request this client refuses (e.g. a lower max_images): nothing is sent.
        await self.journal.mark_submitting(row.seq)
        self._move(State.QUEUED, State.SUBMITTING)
        await self.journal.mark_failed(row.seq, f"invalid request: {error}")
        self._move(State.SUBMITTING, State.FAILED)

    def _hooks(self, index: int, request: GenerateRequest) -> SubmitHooks:
        return SubmitHooks(
            on_send=functools.partial(self._before_submit, index),
            on_refused=functools.partial(self._refused, index),
            on_submitted=functools.partial(self._after_submit, index),
        )

    async def _before_submit(self, index: int) -> None:
        try:
            await self.journal.mark_submitting(self._seq_of_index[index].seq)
        except KetchupError as exc:  # not an Outcome: nothing may be sent without this row
            raise _HookFailed(exc) from exc
        self._move(State.QUEUED, State.SUBMITTING)
        self._on_the_wire.add(index)

    async def _refused(self, index: int) -> None:
        # Refused without charge (429/503/500/never sent): queued again until the next attempt,
        # so a run stopped while the submit waits leaves nothing uncertain.
        try:
            await self.journal.mark_requeued(self._seq_of_index[index].seq, "refused; retrying")
        except KetchupError as exc:
            raise _HookFailed(exc) from exc
        self._on_the_wire.discard(index)
        self._move(State.SUBMITTING, State.QUEUED)

    async def _after_submit(self, index: int, task_id: str) -> None:
        self._on_the_wire.discard(index)
        self.submits += 1
        try:
            await self.journal.mark_submitted(self._seq_of_index[index].seq, task_id)
        except KetchupError as exc:  # not an Outcome: the task exists and was paid for
            raise _HookFailed(exc) from exc
        self._move(State.SUBMITTING, State.SUBMITTED)

    def _on_outcome(self, outcome: Outcome) -> None:
        row = self._seq_of_index.pop(outcome.index)
        if outcome.task_id is None:  # the submit itself failed
            error = outcome.error
            assert error is not None
            sent = outcome.index in self._on_the_wire  # before_submit journaled it
            self._on_the_wire.discard(outcome.index)
            target = state_after_submit_error(error, sent=sent)
            if not sent:  # failed before it went on the wire: the row is still queued
                if target is State.QUEUED:
                    return
                self._watch(self.journal.mark_submitting(row.seq))  # to failed, as _refuse does
                self._move(State.QUEUED, State.SUBMITTING)
            if target is State.UNCERTAIN:
                write = self.journal.mark_uncertain(row.seq, f"submit failed: {error}")
            elif target is State.QUEUED:
                write = self.journal.mark_requeued(row.seq, f"not submitted: {error}")
                if is_fatal_submit_error(error) and self._fatal is None:
                    self._fatal = error  # stop feeding; what is in flight still lands
            else:
                write = self.journal.mark_failed(row.seq, f"submit refused: {error}")
            self._watch(write)
            self._move(State.SUBMITTING, target)
        elif outcome.result is not None:
            self._succeeded(row, outcome.result)
        else:
            assert outcome.error is not None
            self._task_error(row, outcome.error)

    # -- tracking ---------------------------------------------------------------------------

    async def _reattach(self) -> None:
        after = 0
        while page := await self.journal.rows(State.SUBMITTED, after=after, limit=_PAGE):
            for row in page:
                after = row.seq
                assert row.task_id is not None
                try:
                    request: GenerateRequest | None = request_from_dict(row.request)
                except ValidationError:
                    request = None
                job = self.client.track(
                    row.task_id,
                    request=request,
                    has_callback=bool(row.request.get("callback_url")),
                )
                self.resumed += 1
                self._tracked.add(job)
                job.add_done_callback(lambda done, row=row: self._on_tracked(row, done))

    def _on_tracked(self, row: Row, job: Job) -> None:
        self._tracked.discard(job)
        if not job._future.cancelled():
            error = job.exception()
            if error is None:
                self._succeeded(row, job.result())
            elif isinstance(error, KetchupError):
                self._task_error(row, error)
            else:  # pragma: no cover - the poller only sets KetchupError
                self._errors.append(error)
        self._task_done()

    def _task_error(self, row: Row, error: KetchupError) -> None:
        if state_after_task_error(error) is None:
            logger.warning("task %s of input %s left pending: %s", row.task_id, row.key, error)
            return  # stays `submitted`: a resume re-attaches it
        consumed = _consumed(getattr(error, "consumed", None))
        self._watch(self.journal.mark_failed(row.seq, str(error), consumed))
        if consumed is not None:
            self.consumed += Decimal(consumed)
        self._move(State.SUBMITTED, State.FAILED)

    def _succeeded(self, row: Row, result: GenerationResult) -> None:
        images = [image.image for image in result.images]
        consumed = _consumed(result.consumed)
        self._watch(self.journal.mark_succeeded(row.seq, images, consumed))
        if consumed is not None:
            self.consumed += Decimal(consumed)
        self._move(State.SUBMITTED, State.SUCCEEDED)
        if self.download:
            self._start_download(row, result.images)

    # -- files ------------------------------------------------------------------------------

    async def _download_missing(self) -> None:
        after = 0
        while page := await self.journal.rows(State.SUCCEEDED, after=after, limit=_PAGE):
            after = page[-1].seq
            missing = await anyio.to_thread.run_sync(self._missing, page)
            for row in missing:
                self._start_download(row, tuple(ImageResult(i) for i in row.images))

    def _missing(self, rows: list[Row]) -> list[Row]:
        return [r for r in rows if files_missing(self.out_dir, r.files, len(r.images))]

    def _start_download(self, row: Row, images: tuple[ImageResult, ...]) -> None:
        task = asyncio.get_running_loop().create_task(self._download(row, images))
        self._downloads.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            self._downloads.discard(done)
            if not done.cancelled() and done.exception() is not None:
                self._errors.append(done.exception())  # type: ignore[arg-type]
            self._task_done()

        task.add_done_callback(finished)

    async def _download(self, row: Row, images: tuple[ImageResult, ...]) -> None:
        async with self._slots:
            report = await download_result(
                self.client,
                images,
                self.out_dir,
                claim=lambda n: self.journal.claim_names(row.seq, file_stem(row.key), n),
            )
        self.files_written += len(report.files)
        error = None
        if not report.complete:
            self.download_errors += 1
            error = "download failed: " + "; ".join(report.errors)
            logger.warning("input %s: %s", row.key, error)
        await self.journal.set_files(row.seq, report.files, error)
