"""The shared poller: one background task watches every pending task id of a client.

One min-heap of due times, one ``aiolimiter.AsyncLimiter`` for the client's query budget, a
bounded number of queries in flight and a plain ``asyncio.Future`` per job: no task, coroutine
or timer per pending job, so 100,000 pending jobs cost memory, not wake-ups.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal

from aiolimiter import AsyncLimiter

from ._converter import structure_task
from ._http import Transport
from ._jobs import Job
from ._models import (
    CallbackPayload,
    GenerateRequest,
    GenerationResult,
    ImageResult,
    PollPolicy,
    Task,
    TaskStatus,
)
from ._rate import RateController
from ._schedule import PollQueue, Schedule
from .errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    ClientClosedError,
    KetchupError,
    RateLimitError,
    ServerError,
    TaskFailedError,
    TaskNotFoundError,
    ValidationError,
)

__all__ = ["QUERY_PATH", "Poller"]

logger = logging.getLogger("ketchup_async")

QUERY_PATH = "/api/task/query"
#: Callbacks that arrive before their job is known are kept (bounded) for this many task ids.
EARLY_CALLBACKS = 10_000


def _limiter(rate: float, tick: float) -> AsyncLimiter:
    # The budget may be spent a schedule tick's worth at a time (at least one query): a
    # limiter of capacity 1 waits one timer tick (~1 ms) per query, capping it near 900/s.
    burst = max(1.0, rate * tick)
    return AsyncLimiter(burst, burst / rate)


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Poller:
    """Watches every pending job of one client; created inside the running loop."""

    def __init__(self, transport: Transport, policy: PollPolicy) -> None:
        self._transport = transport
        self.policy = policy
        self.schedule = Schedule(policy)
        self.rate = RateController(
            policy.rate,
            floor=1.0 / policy.min_interval,  # one query per per-task floor: the least useful
            recovery_period=5.0 * policy.min_interval,
            window=policy.min_interval,
            demand=0.0,  # adaptive (rate None): up to one query per pending task per min_interval
        )
        self._loop = asyncio.get_running_loop()
        self._jobs: dict[str, Job] = {}
        self._queue: PollQueue[Job] = PollQueue(lambda job, due: job.due == due)
        self._slots = asyncio.Semaphore(policy.max_in_flight)
        self._limiter_rate = self.rate.rate
        self._limiter = _limiter(self._limiter_rate, self.schedule.tick)
        self._runner: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Future[None] | None = None
        self._wake_at = math.inf
        self._early: OrderedDict[str, tuple[CallbackPayload, bool]] = OrderedDict()
        self._closed = False
        #: Queries sent so far (for summaries and benchmarks).
        self.queries = 0

    def __len__(self) -> int:
        return len(self._jobs)

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
        existing = self._jobs.get(task_id)
        if existing is not None:
            return existing
        now = self._loop.time()
        future: asyncio.Future[GenerationResult] = self._loop.create_future()
        job = Job(task_id, request, future, self, submitted_at=now, has_callback=has_callback)
        job.learn = learn  # a resumed task's render time is unknown: never learn from it
        self._jobs[task_id] = job
        if not learn:
            self._push(job, now)  # a resumed task may be long finished: ask now
        else:
            self._push(job, self.schedule.first_due(now, has_callback=has_callback))
        self._ensure_running()
        early = self._early.pop(task_id, None)
        if early is not None:
            # Its callback beat the submit response: apply it after scheduling (so a verify
            # query is not overridden) and never learn a render time of ~0 from it.
            job.learn = False
            payload, verify = early
            self.deliver(payload, verify=verify)
        return job

    def forget(self, job: Job) -> None:
        """Stop tracking ``job`` (its heap entry goes stale and is dropped lazily)."""
        if self._jobs.get(job.task_id) is job:
            del self._jobs[job.task_id]
        job.due = math.inf

    def deliver(self, payload: CallbackPayload, *, verify: bool = False) -> bool:
        """Resolve a tracked job from a webhook payload; True if it matched a pending job.

        With ``verify``, the payload is not trusted: the job is queried at once (within the
        budget and the per-task floor) and resolved from the API's answer.
        """
        job = self._jobs.get(payload.task_id)
        if job is None:
            if not self._closed and payload.status.is_final:
                self._early[payload.task_id] = (payload, verify)
                self._early.move_to_end(payload.task_id)
                while len(self._early) > EARLY_CALLBACKS:
                    self._early.popitem(last=False)
            return False
        if not payload.status.is_final:
            return True
        if verify:
            if job.due != math.inf:  # not already being queried
                self._push(job, self._loop.time())
            return True
        self._resolve(
            job, payload.status, payload.images, payload.consumed, payload.reason, exact=True
        )
        return True

    # -- the loop -----------------------------------------------------------------------

    def _ensure_running(self) -> None:
        if self._runner is None or self._runner.done():
            self._runner = self._loop.create_task(self._run(), name="ketchup-async poller")

    def _push(self, job: Job, due: float) -> None:
        due = self.schedule.align(self.schedule.floor(job.last_poll, due))
        job.due = due
        self._queue.push(due, job)
        if due < self._wake_at and self._wake is not None:
            _set_done(self._wake)

    async def _sleep_until(self, when: float) -> None:
        future: asyncio.Future[None] = self._loop.create_future()
        self._wake, self._wake_at = future, when
        handle = self._loop.call_at(when, _set_done, future) if when < math.inf else None
        try:
            await future
        finally:
            self._wake, self._wake_at = None, math.inf
            if handle is not None:
                handle.cancel()

    async def _run(self) -> None:
        loop = self._loop
        while True:
            now = loop.time()
            if self.rate.paused_until > now:
                await self._sleep_until(self.rate.paused_until)
                continue
            due = self._queue.next_due()
            if due is None or due > now:
                await self._sleep_until(math.inf if due is None else due)
                continue
            await self._slots.acquire()
            try:
                await self._acquire_budget()
            except BaseException:
                self._slots.release()
                raise
            job = self._queue.pop_due(loop.time())
            if job is None or self.rate.paused_until > loop.time():
                if job is not None:
                    self._queue.push(job.due, job)
                self._slots.release()
                continue
            job.due = math.inf  # in flight: no heap entry is live for it
            task = loop.create_task(self._poll(job))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _acquire_budget(self) -> None:
        now = self._loop.time()
        self.rate.on_demand(now, len(self._jobs) / self.policy.min_interval)
        rate = self.rate.current_rate(now)
        if abs(rate - self._limiter_rate) > 0.01 * self._limiter_rate:
            self._limiter = _limiter(rate, self.schedule.tick)
            self._limiter_rate = rate
        if self._limiter.max_rate > 1.0 and not self._limiter.has_capacity():
            # Out of a budget of several queries per tick: wait for the next tick of the grid
            # (a tick's worth has leaked by then), not for one query's, so that queries leave
            # in a batch. (At one query per tick the limiter's own wait is the same, and exact.)
            now = self._loop.time()
            await asyncio.sleep(self.schedule.next_tick(now) - now)
        await self._limiter.acquire()

    async def _query(self, job: Job) -> Task:
        try:
            data = await self._transport.request(
                "GET",
                QUERY_PATH,
                params={"task_id": job.task_id},
                idempotent=True,
                retries=False,
                not_found=TaskNotFoundError,
            )
        finally:
            # The floor counts from the answer, so the server never sees two queries of one
            # task closer than min_interval, whatever the network latency.
            job.last_poll = self._loop.time()
        task = structure_task(data)
        if task.task_id != job.task_id:
            raise ValidationError("task_id", f"response is for {task.task_id!r}")
        return task

    async def _poll(self, job: Job) -> None:
        loop = self._loop
        try:
            job.polls += 1
            self.queries += 1
            try:
                task = await self._query(job)
            except RateLimitError as exc:
                retry_after = (
                    exc.retry_after if exc.retry_after is not None else self.policy.min_interval
                )
                retry_after = min(retry_after, self._transport.retry.retry_after_cap)
                self.rate.on_rate_limited(loop.time(), retry_after)
                logger.info(
                    "query rate limited: pausing %.2f s, rate now %.2f/s",
                    retry_after,
                    self.rate.rate,
                )
                self._retry_later(job, self.rate.paused_until)
            except AuthenticationError as exc:
                logger.error("query refused with 401: failing every pending job")
                refused = exc
                self._fail_all(lambda: _copy_api_error(refused))
            except TaskNotFoundError as exc:
                if loop.time() - job.submitted_at < self.policy.not_found_grace:
                    job.errors += 1
                    self._retry_later(job, self.schedule.retry_due(loop.time(), job.errors))
                else:
                    self._finish(job, exc)
            except (ServerError, APIConnectionError, ValidationError) as exc:
                job.errors += 1
                logger.debug("query of %s failed (%s): retrying later", job.task_id, exc)
                self._retry_later(job, self.schedule.retry_due(loop.time(), job.errors))
            except APIError as exc:
                self._finish(job, exc)
            else:
                job.errors = 0
                self.rate.on_answered(loop.time())
                self._resolve(
                    job, task.status, task.images, task.consumed, task.reason, exact=False
                )
        finally:
            self._slots.release()

    # -- outcomes -----------------------------------------------------------------------

    def _tracked(self, job: Job) -> bool:
        return self._jobs.get(job.task_id) is job and not job.done()

    def _retry_later(self, job: Job, due: float) -> None:
        if self._tracked(job):
            self._push(job, due)

    def _resolve(
        self,
        job: Job,
        status: TaskStatus,
        images: tuple[ImageResult, ...],
        consumed: Decimal | None,
        reason: str | None,
        *,
        exact: bool,
    ) -> None:
        if not self._tracked(job):
            return
        now = self._loop.time()
        job.status = status
        if not status.is_final:
            job.last_running = now
            self._push(job, self.schedule.next_due(now, job.polls, has_callback=job.has_callback))
            return
        self._learn(job, now, exact=exact)
        if status is TaskStatus.SUCCESS:
            self._finish(job, GenerationResult(job.task_id, images, consumed))
        else:
            self._finish(job, TaskFailedError(job.task_id, reason, consumed))

    def _learn(self, job: Job, now: float, *, exact: bool) -> None:
        if not job.learn:
            return
        model = self.schedule.model
        if exact:
            model.observe(now - job.submitted_at)
        else:
            # The answer brackets the render time: after the last "still running", by now.
            low = 0.0 if job.last_running is None else job.last_running - job.submitted_at
            model.observe_between(low, now - job.submitted_at)

    def _finish(self, job: Job, outcome: GenerationResult | BaseException) -> None:
        self.forget(job)
        future = job._future
        if future.done():
            return
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
            future.exception()  # retrieved here: an unawaited failed job logs nothing
        else:
            future.set_result(outcome)

    def _fail_all(self, make_error: Callable[[], KetchupError]) -> None:
        for job in list(self._jobs.values()):
            self._finish(job, make_error())

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
        self._queue.clear()
        self._early.clear()


def _copy_api_error(exc: APIError) -> APIError:
    return type(exc)(
        exc.message,
        status_code=exc.status_code,
        code=exc.code,
        detail=exc.detail,
        request_id=exc.request_id,
    )
