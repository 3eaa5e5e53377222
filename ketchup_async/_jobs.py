"""``Job``: a handle on one submitted task, awaitable, resolved by the poller or a webhook.

A ``Job`` holds what its user needs (the task id, the request, the status, the outcome) and
nothing of the poller's bookkeeping, which lives in the poller's own per-task record. It knows
whoever tracks it only through the small ``Tracker`` protocol (to stop tracking on
``cancel()``), so this module imports nothing of the poller.

Its status lives in a ``StatusCell`` that the tracker writes; ``Job.updates()`` follows it.
Each follower keeps only the latest status it has not taken yet, so a slow consumer costs one
slot and never blocks the writer (the poller, a webhook).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any, Protocol

from ._models import GenerateRequest, GenerationResult, TaskStatus
from .errors import JobTimeoutError

__all__ = ["Job", "StatusCell", "Tracker"]


class Tracker(Protocol):
    """Whoever resolves a job (the shared poller): told when the job's user cancels it."""

    def untrack(self, job: Job) -> None:
        """Stop tracking ``job`` and drop everything kept for it."""


class _Follower:
    """One ``Job.updates()`` iteration: the latest status it has not taken yet, and a wake-up."""

    __slots__ = ("latest", "wake")

    def __init__(self) -> None:
        self.latest: TaskStatus | None = None
        self.wake = asyncio.Event()


class StatusCell:
    """The status a job shows: written by its tracker, read through ``Job.status``.

    Writing a different status hands it to every follower (``Job.updates()``) at once, in
    constant time per follower: a follower that lags keeps only the latest.
    """

    __slots__ = ("_followers", "_status")

    def __init__(self, status: TaskStatus = TaskStatus.PENDING) -> None:
        self._status = status
        self._followers: list[_Follower] | None = None  # made on the first follow(): memory

    @property
    def status(self) -> TaskStatus:
        """The status last seen."""
        return self._status

    @status.setter
    def status(self, value: TaskStatus) -> None:
        if value is self._status:
            return
        self._status = value
        for follower in self._followers or ():
            follower.latest = value
            follower.wake.set()

    def follow(self) -> _Follower:
        """Start handing status changes to a new follower."""
        follower = _Follower()
        if self._followers is None:
            self._followers = []
        self._followers.append(follower)
        return follower

    def unfollow(self, follower: _Follower) -> None:
        """Stop handing status changes to ``follower``."""
        if self._followers is not None and follower in self._followers:
            self._followers.remove(follower)


class Job:
    """A task being tracked by the client's shared poller.

    Await it (``result = await job``) for its ``GenerationResult``; it raises
    ``TaskFailedError`` when the task fails. Any number of coroutines may await one job;
    cancelling one of them never stops tracking for the others, ``cancel()`` does. Every
    attribute is read-only.

    Attributes:
        task_id: The API's task id.
        request: The request it was submitted with (None for ``track()`` without one).
        status: The status last seen (from a query or a webhook).
    """

    __slots__ = ("__weakref__", "_cell", "_future", "_request", "_task_id", "_tracker")

    def __init__(
        self,
        task_id: str,
        request: GenerateRequest | None,
        future: asyncio.Future[GenerationResult],
        tracker: Tracker,
        cell: StatusCell,
    ) -> None:
        self._task_id = task_id
        self._request = request
        self._future = future
        self._tracker = tracker
        self._cell = cell

    @property
    def task_id(self) -> str:
        """The API's task id."""
        return self._task_id

    @property
    def request(self) -> GenerateRequest | None:
        """The request it was submitted with (None for ``track()`` without one)."""
        return self._request

    @property
    def status(self) -> TaskStatus:
        """The documented status last seen (from a query or a webhook)."""
        return self._cell.status

    def __repr__(self) -> str:
        future = self._future
        if not future.done():
            state = self._cell.status.value
        elif future.cancelled():
            state = "cancelled"
        elif future.exception() is None:
            state = "succeeded"
        else:
            state = f"failed: {type(future.exception()).__name__}"
        return f"<Job {self._task_id} {state}>"

    def done(self) -> bool:
        """True once the job has a result, an error, or was cancelled."""
        return self._future.done()

    def cancelled(self) -> bool:
        """True if the job was cancelled (``cancel()``), not resolved."""
        return self._future.cancelled()

    def __await__(self) -> Generator[Any, None, GenerationResult]:
        return asyncio.shield(self._future).__await__()

    async def wait(self, timeout: float | None = None) -> GenerationResult:
        """Wait for the result, at most ``timeout`` seconds.

        Raises:
            JobTimeoutError: The deadline passed; it carries the task id, and the job keeps
                being tracked (also a ``TimeoutError``).
            TaskFailedError: The task failed.
        """
        try:
            return await asyncio.wait_for(asyncio.shield(self._future), timeout)
        except asyncio.TimeoutError:
            if self._future.done():  # resolved at the very deadline: the outcome wins
                return self._future.result()
            raise JobTimeoutError(self._task_id, timeout) from None

    def result(self) -> GenerationResult:
        """The result of a finished job (raises its error; ``InvalidStateError`` if pending)."""
        return self._future.result()

    def exception(self) -> BaseException | None:
        """The error of a finished job, or None (``InvalidStateError`` if pending)."""
        return self._future.exception()

    async def updates(self) -> AsyncIterator[TaskStatus]:
        """Follow the job's status: yield it now, then each change, until it is final.

        Fed by what the shared poller and webhooks already learn: following a job sends no
        query. Any number of consumers may follow one job; each gets every change it keeps up
        with, and one that lags gets only the latest status when it asks again (it never slows
        the poller down). The iteration ends after the final status (``success`` or
        ``failed``), or when the job ends otherwise (cancelled, client closed, deadline): await
        the job for its result or error.
        """
        follower = self._cell.follow()

        def wake(_: object) -> None:
            follower.wake.set()

        self._future.add_done_callback(wake)
        try:
            status = self._cell.status
            yield status
            while not status.is_final:
                follower.wake.clear()
                if follower.latest is not None:
                    status, follower.latest = follower.latest, None
                    yield status
                elif self._future.done():
                    return
                else:
                    await follower.wake.wait()
        finally:
            self._cell.unfollow(follower)
            self._future.remove_done_callback(wake)

    def add_done_callback(self, callback: Callable[..., object]) -> None:
        """Call ``callback(job)`` once the job is done (immediately if it already is)."""
        self._future.add_done_callback(lambda _: callback(self))

    def cancel(self) -> bool:
        """Stop tracking this job; every awaiter gets ``asyncio.CancelledError``.

        Returns:
            False if the job was already done.
        """
        if self._future.done():
            return False
        self._tracker.untrack(self)
        return self._future.cancel()
