"""The shared poller: one background task watches every pending task id of a client.

One min-heap of ``(due, task_id)``, one ``QueryPacer`` for the query budget and the queries
in flight (``_pacer``: the adaptive rate, one ``aiolimiter.AsyncLimiter``, a window that opens
as answers come back) and a plain ``asyncio.Future`` per job: no task, coroutine
or timer per pending job, so 100,000 pending jobs cost memory, not wake-ups. The poller owns
its per-task bookkeeping (``Watch``); a ``Job`` is only the user's handle. ``_reactions``
decides what to do with each query's outcome, ``_schedule`` when to ask; time comes from an
injectable ``Clock`` (the running loop by default): tests drive the poller without sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable

from ._clock import Clock
from ._early import EarlyCallbacks
from ._endpoints import query_task
from ._http import Transport
from ._jobs import Job, StatusCell
from ._models import CallbackPayload, GenerateRequest, GenerationResult, PollPolicy, Task
from ._pacer import QueryPacer
from ._rate import RateController
from ._reactions import (
    Reaction,
    Verdict,
    copy_api_error,
    react_to_error,
    react_to_status,
    with_deadline,
)
from ._schedule import PollQueue, Schedule
from ._watch import Watch
from .errors import APIConnectionError, ClientClosedError, KetchupError

__all__ = ["COMPACT_SLACK", "Poller"]

logger = logging.getLogger("ketchup_async")

#: The heap is rebuilt without its stale entries once it holds this many more than twice the
#: live ones, so jobs resolved by webhook or cancelled leave nothing behind for long.
COMPACT_SLACK = 64


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Poller:
    """Watches every pending job of one client; created inside the running loop.

    Args:
        transport: The client's request path.
        policy: The schedule, budget and deadlines.
        clock: The time source (default: the running loop).
    """

    def __init__(
        self, transport: Transport, policy: PollPolicy, *, clock: Clock | None = None
    ) -> None:
        self._transport = transport
        self._telemetry = transport.telemetry  # jobs and queries are reported there too
        self.policy = policy
        self.schedule = Schedule(policy)
        self._pacer = QueryPacer(policy, self.schedule)
        self._loop = asyncio.get_running_loop()
        self._clock: Clock = clock if clock is not None else self._loop
        self._watches: dict[str, Watch] = {}
        self._queue: PollQueue[str] = PollQueue(self._is_live)
        self._runner: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Future[None] | None = None
        self._wake_at = math.inf
        self._early = EarlyCallbacks()
        self._answered = False  # the API answered a query of this client at least once
        self._stray_404s = 0  # non-API 404s in a row
        self._closed = False
        #: Queries sent so far (for summaries and benchmarks).
        self.queries = 0

    def __len__(self) -> int:
        return len(self._watches)

    @property
    def rate(self) -> RateController:
        """The adaptive query rate (read-only use: stats and telemetry)."""
        return self._pacer.rate

    @property
    def heap_size(self) -> int:
        """Entries in the schedule's heap, stale ones included (bounded by the live ones)."""
        return len(self._queue)

    @property
    def early_callbacks(self) -> int:
        """Callbacks remembered for task ids not tracked yet."""
        return len(self._early)

    def _is_live(self, task_id: str, due: float) -> bool:
        watch = self._watches.get(task_id)
        return watch is not None and watch.due == due

    # -- tracking ---------------------------------------------------------------------------

    def add(
        self,
        task_id: str,
        request: GenerateRequest | None,
        *,
        has_callback: bool,
        learn: bool = True,
    ) -> Job:
        """Track ``task_id`` (or return the job already tracking it)."""
        if self._closed:
            raise ClientClosedError("the client is closed")
        existing = self._watches.get(task_id)
        if existing is not None:
            return existing.job
        now = self._clock.time()
        future: asyncio.Future[GenerationResult] = self._loop.create_future()
        cell = StatusCell()
        job = Job(task_id, request, future, self, cell)
        watch = Watch(job, future, cell, now, has_callback, learn)
        self._watches[task_id] = watch
        watch.trace = self._telemetry.job_started(task_id, request, now, resumed=not learn)
        if self._early.pop(task_id) is not None:
            # Its callback beat the submit response: ask the API now (the callback's own
            # content is never trusted nor kept), and never learn a render time of ~0 from it.
            watch.learn = False
            self._push(watch, now)
        elif not learn:
            self._push(watch, now)  # a resumed task may be long finished: ask now
        else:
            self._push(watch, self.schedule.first_due(now, has_callback=has_callback))
        self._ensure_running()
        return job

    def untrack(self, job: Job) -> None:
        """Stop tracking ``job`` (``Job.cancel()``); its record is dropped at once."""
        watch = self._watches.get(job.task_id)
        if watch is not None and watch.job is job:
            self._drop(watch)
            self._telemetry.job_ended(watch.trace, None, self._clock.time())

    def _drop(self, watch: Watch) -> None:
        task_id = watch.job.task_id
        if self._watches.get(task_id) is watch:
            del self._watches[task_id]
        watch.due = math.inf  # its heap entries are stale now
        if len(self._queue) > 2 * len(self._watches) + COMPACT_SLACK:
            self._queue.compact()

    def deliver(self, payload: CallbackPayload, *, verify: bool = False) -> bool:
        """Resolve a tracked job from a webhook payload; True if it matched a pending job.

        With ``verify``, the payload is not trusted: the job is queried at once (within the
        budget and the per-task floor) and resolved from the API's answer. A final callback
        for a task not tracked yet is remembered (its id and status only) and its job is
        queried as soon as it appears.
        """
        watch = self._watches.get(payload.task_id)
        if watch is None:
            if not self._closed and payload.status.is_final:
                self._early.remember(payload.task_id, payload.status, verify)
            return False
        if not payload.status.is_final:
            return True
        if verify:
            if watch.due != math.inf:  # not already being queried
                self._push(watch, self._clock.time())
            return True
        reaction = react_to_status(
            watch.job.task_id, payload.status, payload.images, payload.consumed, payload.reason
        )
        self._apply(watch, reaction, exact=True)
        return True

    # -- the loop -----------------------------------------------------------------------

    def _ensure_running(self) -> None:
        if self._runner is None or self._runner.done():
            self._runner = self._loop.create_task(self._run(), name="ketchup-async poller")
            self._runner.add_done_callback(self._runner_done)

    def _runner_done(self, runner: asyncio.Task[None]) -> None:
        if runner.cancelled() or runner.exception() is None:
            return
        error = runner.exception()
        logger.error("the shared poller stopped unexpectedly: %r", error)
        self._fail_all(
            lambda: APIConnectionError(
                f"the shared poller stopped unexpectedly: {error!r}", may_have_been_processed=False
            )
        )

    def _push(self, watch: Watch, due: float) -> None:
        # Never later than the job's deadline: its last query decides whether it ends there.
        due = min(due, watch.submitted_at + self.policy.job_deadline)
        due = self.schedule.align(self.schedule.floor(watch.last_poll, due))
        watch.due = due
        self._queue.push(due, watch.job.task_id)
        if due < self._wake_at and self._wake is not None:
            _set_done(self._wake)

    async def _sleep_until(self, when: float) -> None:
        future: asyncio.Future[None] = self._loop.create_future()
        self._wake, self._wake_at = future, when
        handle = self._clock.call_at(when, _set_done, future) if when < math.inf else None
        try:
            await future
        finally:
            self._wake, self._wake_at = None, math.inf
            if handle is not None:
                handle.cancel()

    async def _run(self) -> None:
        clock = self._clock
        while True:
            now = clock.time()
            if self.rate.paused_until > now:
                await self._sleep_until(self.rate.paused_until)
                continue
            due = self._queue.next_due()
            if due is None or due > now:
                await self._sleep_until(math.inf if due is None else due)
                continue
            await self._pacer.acquire(len(self._watches) / self.policy.min_interval)
            task_id = self._queue.pop_due(clock.time())
            watch = None if task_id is None else self._watches.get(task_id)
            if watch is None or self.rate.paused_until > clock.time():
                if watch is not None:
                    self._queue.push(watch.due, watch.job.task_id)
                self._pacer.release()
                continue
            watch.due = math.inf  # in flight: no heap entry is live for it
            # The task leaves ``_in_flight`` itself when it ends (no done callback: one
            # scheduled callback, often one loop iteration, less per query).
            self._in_flight.add(self._loop.create_task(self._poll(watch)))

    async def _query(self, watch: Watch) -> Task:
        try:
            return await query_task(self._transport, watch.job.task_id, retries=False)
        finally:
            # The floor counts from the answer, so the server never sees two queries of one
            # task closer than min_interval, whatever the network latency.
            watch.last_poll = self._clock.time()

    async def _poll(self, watch: Watch) -> None:
        try:
            watch.polls += 1
            self.queries += 1
            try:
                task = await self._query(watch)
            except Exception as exc:  # whatever it is, the job gets a reaction: never orphaned
                facts = watch.facts(self._clock.time(), self._answered, self._stray_404s)
                reaction = react_to_error(
                    exc,
                    facts,
                    grace=self.policy.not_found_grace,
                    default_pause=self.policy.min_interval,
                    pause_cap=self._transport.retry.retry_after_cap,
                )
                if reaction.verdict is Verdict.RETRY and reaction.unexpected:
                    logger.warning("query of %s raised %r: retrying later", facts.task_id, exc)
                else:
                    logger.debug("query of %s failed (%s)", facts.task_id, exc)
            else:
                facts = watch.facts(self._clock.time(), self._answered, self._stray_404s)
                reaction = react_to_status(
                    task.task_id, task.status, task.images, task.consumed, task.reason
                )
            reaction = with_deadline(reaction, facts, deadline=self.policy.job_deadline)
            self._telemetry.query_done(reaction.verdict.value)
            if reaction.verdict is Verdict.RATE_LIMITED:
                retry_after = reaction.pause
                self._pacer.on_rate_limited(self._clock.time(), retry_after)
                logger.info(
                    "query rate limited: pausing %.2f s, rate now %.2f/s",
                    retry_after,
                    self.rate.rate,
                )
            elif reaction.answered:
                self._pacer.on_answered(self._clock.time())
            self._apply(watch, reaction, exact=False)
        except Exception as exc:  # pragma: no cover - a bug here must still end the job
            logger.exception("the poller failed to handle a query of %s", watch.job.task_id)
            self._finish(
                watch,
                APIConnectionError(f"the poller failed: {exc!r}", may_have_been_processed=False),
            )
        finally:
            self._pacer.release()
            self._in_flight.discard(asyncio.current_task())

    # -- outcomes -----------------------------------------------------------------------

    def _tracked(self, watch: Watch) -> bool:
        return self._watches.get(watch.job.task_id) is watch and not watch.future.done()

    def _apply(self, watch: Watch, reaction: Reaction, *, exact: bool) -> None:
        """Carry out ``reaction`` for ``watch`` (and the client-wide state it changes)."""
        if reaction.verdict is Verdict.FAIL_ALL:
            error = reaction.error
            assert error is not None
            logger.error("query refused (%s): failing every pending job", error)
            self._fail_all(lambda: copy_api_error(error))
            return
        if not exact:  # a query's outcome: the client-wide counters follow it
            self._answered = self._answered or reaction.answered
            self._stray_404s = reaction.stray_404s
        if not self._tracked(watch):
            return  # resolved meanwhile (webhook, cancel, close, 401)
        now = self._clock.time()
        watch.errors = reaction.errors
        watch.not_found = reaction.not_found
        watch.unexpected = reaction.unexpected
        if reaction.raw_status is not None:
            watch.seen = True
            watch.last_status = reaction.raw_status
        if reaction.status is not None:
            watch.cell.status = reaction.status
        verdict = reaction.verdict
        if verdict is Verdict.RUNNING:
            watch.last_running = now
            due = self.schedule.next_due(
                now, watch.polls, submitted_at=watch.submitted_at, has_callback=watch.has_callback
            )
            self._push(watch, due)
        elif verdict is Verdict.RETRY:
            self._push(watch, self.schedule.retry_due(now, watch.errors))
        elif verdict is Verdict.RATE_LIMITED:
            self._push(watch, self.rate.paused_until)
        else:
            if reaction.status is not None and reaction.status.is_final:
                watch.teach(self.schedule.model, now, exact=exact)
                self._telemetry.job_resolved(watch.trace, now, watch.last_running, exact)
            outcome = reaction.result if verdict is Verdict.SUCCEEDED else reaction.error
            assert outcome is not None
            self._finish(watch, outcome)

    def _finish(self, watch: Watch, outcome: GenerationResult | BaseException) -> None:
        self._drop(watch)
        future = watch.future
        if future.done():
            return
        self._telemetry.job_ended(watch.trace, outcome, self._clock.time())
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
            future.exception()  # retrieved here: an unawaited failed job logs nothing
        else:
            future.set_result(outcome)

    def _fail_all(self, make_error: Callable[[], KetchupError]) -> None:
        for watch in list(self._watches.values()):
            self._finish(watch, make_error())

    async def close(self) -> None:
        """Stop polling now and fail every pending job with ``ClientClosedError``."""
        if self._closed:
            return
        self._closed = True
        tasks = list(self._in_flight)
        if self._runner is not None:
            tasks.append(self._runner)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._fail_all(lambda: ClientClosedError("the client was closed while the job was pending"))
        self._in_flight.clear()
        self._queue.clear()
        self._early.clear()
