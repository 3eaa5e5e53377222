"""The engine of a durable bulk run: drive every unfinished input of a journal to a final state.

One pass (``BulkRunner.drive``) does, concurrently:
- re-attach every ``submitted`` task with ``client.track()`` (no new submit);
- download the files of every success that lacks them on disk;
- submit every ``queued`` input the credit budget admits (``_spend.BudgetGate``) through
  ``generate_many``, journaling ``submitting`` just before each attempt goes on the wire,
  ``queued`` again when an attempt was refused without being charged (429/503/500, a
  connection that never carried it: a run stopped during the client's wait leaves the input
  ``queued``), and the task id as soon as it is known (all awaited: they guard the money);
- record each outcome (writes grouped into few commits: a crash before one is committed only
  means the task is re-attached on resume), then download its images (bounded concurrency).

A task id the journal cannot record (a full disk) is never dropped: the write is retried a
few times, then the id is logged at ERROR and appended to the recovery file (``_recovery``),
no new submit is sent, and the run ends with ``UnjournaledTasksError`` listing them all.
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
import attrs

from .._converter import request_from_dict
from .._jobs import Job
from .._models import GenerateRequest, GenerationResult, Outcome, SubmitHooks
from ..errors import KetchupError, ValidationError
from ._downloads import Downloads
from ._journal import Journal, Row
from ._outdir import RECOVERY_FILE, run_dir
from ._progress import BulkProgress
from ._recovery import Recovered, RecoveryLog, TaskIdKeeper
from ._spend import BudgetGate, consumed_text, load_budget, stop_for_budget
from ._states import (
    State,
    is_fatal_submit_error,
    state_after_submit_error,
    state_after_task_error,
)
from ._values import BulkOptions

if TYPE_CHECKING:
    from .._client import KetchupClient

__all__ = ["BulkRunner"]

logger = logging.getLogger("ketchup_async")

_PAGE = 1000


#: Seconds between tries of a task id write that failed (then the recovery file).
TASK_ID_RETRY_DELAYS = (0.1, 0.5, 2.0)


class _HookFailed(Exception):
    """A journal write in a submit hook failed: the run must stop (never an ``Outcome``)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        super().__init__(str(error))


class _Stopping(Exception):
    """The run is stopping: an attempt about to go on the wire is not sent."""


class BulkRunner:
    """Drives one journal's unfinished inputs; see the module docstring."""

    def __init__(
        self, client: KetchupClient, journal: Journal, out_dir: Path, options: BulkOptions
    ) -> None:
        self.client = client
        self.journal = journal
        self.out_dir = out_dir
        self.options = options
        self.download = options.download
        self.progress: Callable[[BulkProgress], None] | None = options.progress

        self.counts: dict[State, int] = dict.fromkeys(State, 0)
        self.consumed = Decimal(0)
        self.spent_before = Decimal(0)
        self.gate = BudgetGate(None)
        self.finished = 0
        self.submits = 0
        self.resumed = 0
        self._downloads = Downloads(
            client,
            journal,
            out_dir,
            concurrency=options.download_concurrency,
            finished=self._download_done,
        )
        self._tracked: set[Job] = set()
        self._seq_of_index: dict[int, Row] = {}
        self._on_the_wire: set[int] = set()  # indices journaled ``submitting``, no outcome yet
        self._errors: list[BaseException] = []
        self._fatal: KetchupError | None = None
        self._idle = asyncio.Event()
        self._started = time.monotonic()
        self._stopping = False
        self._task_ids = TaskIdKeeper(
            journal.mark_submitted,
            RecoveryLog(run_dir(out_dir) / RECOVERY_FILE),
            TASK_ID_RETRY_DELAYS,
        )

    # -- progress ---------------------------------------------------------------------------

    def snapshot(self) -> BulkProgress:
        """The current progress."""
        return BulkProgress(
            total=sum(self.counts.values()),
            counts=dict(self.counts),
            consumed=self.consumed,
            finished=self.finished,
            downloading=len(self._downloads),
            files_written=self._downloads.files_written,
            elapsed=time.monotonic() - self._started,
            max_credits=self.options.max_credits,
            spent_before=self.spent_before,
        )

    def report(self) -> None:
        """Call the progress callback with a snapshot (if there is one)."""
        if self.progress is not None:
            self.progress(self.snapshot())

    @property
    def files_written(self) -> int:
        """Files written by this run."""
        return self._downloads.files_written

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
        self.consumed = self.spent_before = await self.journal.consumed_total()
        self.gate = BudgetGate(await load_budget(self.journal, self.options))
        self._started = time.monotonic()
        self.report()
        ticker = asyncio.get_running_loop().create_task(self._tick()) if self.progress else None
        await anyio.to_thread.run_sync(self._task_ids.log.open)
        try:
            if self.download:
                await self._downloads.start_missing()
            await self._reattach()
            await self._submit_queued()
            while self._tracked or self._downloads:
                self._idle.clear()
                await self._idle.wait()
                self._raise_errors()
            if self._fatal is not None:
                raise self._fatal
        except _HookFailed as exc:
            if not self._task_ids.lost:
                raise exc.error from None
        finally:
            self._stopping = True
            if ticker is not None:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)
            await self._stop()
            for _ in range(await self._task_ids.retry()):
                self._move(State.SUBMITTING, State.SUBMITTED)
            self._task_ids.log.close()
        lost = self._task_ids.error()
        if lost is not None:
            raise lost
        self._raise_errors()
        self.report()

    async def _tick(self) -> None:
        while True:  # progress keeps moving (elapsed, rate, ETA) while nothing finishes
            await asyncio.sleep(self.options.progress_interval)
            try:
                self.report()
            except Exception:  # a display bug must not stop a paid run
                logger.exception("the progress callback failed; no more progress reports")
                return

    async def _submit_queued(self) -> None:
        outcomes = cast(
            "AsyncGenerator[Outcome, None]",
            self.client.generate_many(
                self._queued(), concurrency=self.options.concurrency, hooks=self._hooks
            ),
        )
        try:
            async for outcome in outcomes:
                self._on_outcome(outcome)
                self._raise_errors()
        finally:  # send nothing more, let submits on the wire land in the journal, stop tracking
            self._stopping = True
            await outcomes.aclose()

    async def _stop(self) -> None:
        for job in list(self._tracked):
            job.cancel()  # the task stays `submitted`: a resume re-attaches it
        self._tracked.clear()
        await self._downloads.cancel()

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
                if self._fatal is not None or self._stopping:
                    return
                after = row.seq
                try:
                    request = request_from_dict(row.request, max_images=self.client.max_images)
                    if self.options.callback_url is not None:
                        request = attrs.evolve(request, callback_url=self.options.callback_url)
                except ValidationError as exc:
                    await self._refuse(row, exc)
                    continue
                if not await self.gate.admit(row.seq, str(row.request.get("model"))):
                    await stop_for_budget(self.journal)  # unsent inputs: queued, "budget"
                    return
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
            on_refused=functools.partial(self._after_refused, index),
            on_submitted=functools.partial(self._after_submit, index),
        )

    async def _before_submit(self, index: int) -> None:
        if self._stopping:  # the run is ending: this attempt stays unsent, the input queued
            raise _Stopping("the bulk run is stopping")
        try:
            await self.journal.mark_submitting(self._seq_of_index[index].seq)
        except KetchupError as exc:  # not an Outcome: nothing may be sent without this row
            raise _HookFailed(exc) from exc
        self._move(State.QUEUED, State.SUBMITTING)
        self._on_the_wire.add(index)

    async def _after_refused(self, index: int) -> None:
        """An attempt was refused, not charged: the input is ``queued`` while the client waits."""
        if index not in self._on_the_wire:
            return
        try:
            await self.journal.mark_requeued(
                self._seq_of_index[index].seq, "refused by the API; retrying"
            )
        except KetchupError as exc:  # it stays `submitting`: a resume makes it uncertain
            raise _HookFailed(exc) from exc
        self._on_the_wire.discard(index)
        self._move(State.SUBMITTING, State.QUEUED)

    async def _after_submit(self, index: int, task_id: str) -> None:
        self._on_the_wire.discard(index)
        self.submits += 1
        row = self._seq_of_index[index]
        error = await self._task_ids.record(Recovered(row.key, row.seq, task_id))
        if error is not None:  # kept, logged and saved; send nothing more, end the run
            self._stopping = True
            raise _HookFailed(error)
        self._move(State.SUBMITTING, State.SUBMITTED)

    def _on_outcome(self, outcome: Outcome) -> None:
        row = self._seq_of_index.pop(outcome.index)
        if outcome.task_id is None:  # the submit itself failed
            error = outcome.error
            assert error is not None
            sent = outcome.index in self._on_the_wire  # before_submit journaled it
            self._on_the_wire.discard(outcome.index)
            target = state_after_submit_error(error, sent=sent)
            self.gate.submit_failed(row.seq, uncertain=target is State.UNCERTAIN)
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
                    has_callback=bool(self.options.callback_url or row.request.get("callback_url")),
                )
                self.resumed += 1
                self._tracked.add(job)
                job.add_done_callback(lambda done, row=row: self._on_tracked(row, done))

    def _on_tracked(self, row: Row, job: Job) -> None:
        self._tracked.discard(job)
        if not job.cancelled():
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
            self.gate.hold(row.seq)  # may still be charged
            return  # stays `submitted`: a resume re-attaches it
        consumed = consumed_text(getattr(error, "consumed", None))
        self.gate.settle(row.seq, consumed, failed=True)
        self._watch(self.journal.mark_failed(row.seq, str(error), consumed))
        if consumed is not None:
            self.consumed += Decimal(consumed)
        self._move(State.SUBMITTED, State.FAILED)

    def _succeeded(self, row: Row, result: GenerationResult) -> None:
        images = [image.image for image in result.images]
        consumed = consumed_text(result.consumed)
        self.gate.settle(row.seq, consumed)
        self._watch(self.journal.mark_succeeded(row.seq, images, consumed))
        if consumed is not None:
            self.consumed += Decimal(consumed)
        self._move(State.SUBMITTED, State.SUCCEEDED)
        if self.download:
            self._downloads.start(row, result.images)

    def _download_done(self, error: BaseException | None) -> None:
        if error is not None:
            self._errors.append(error)
        self._task_done()
