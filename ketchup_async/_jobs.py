"""``Job``: one submitted task, awaitable, resolved by the shared poller or by a webhook."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from ._models import GenerateRequest, GenerationResult, TaskStatus

if TYPE_CHECKING:
    from ._poller import Poller

__all__ = ["Job"]


class Job:
    """A task being tracked by the client's shared poller.

    Await it (``result = await job``) for its ``GenerationResult``; it raises
    ``TaskFailedError`` when the task fails. Any number of coroutines may await one job;
    cancelling one of them never stops tracking for the others, ``cancel()`` does.

    Attributes:
        task_id: The API's task id.
        request: The request it was submitted with (None for ``track()`` without one).
        status: The status last seen (from a query or a webhook).
    """

    __slots__ = (
        "__weakref__",
        "_future",
        "_poller",
        "due",
        "errors",
        "has_callback",
        "last_poll",
        "last_running",
        "learn",
        "polls",
        "request",
        "status",
        "submitted_at",
        "task_id",
    )

    def __init__(
        self,
        task_id: str,
        request: GenerateRequest | None,
        future: asyncio.Future[GenerationResult],
        poller: Poller,
        *,
        submitted_at: float,
        has_callback: bool,
    ) -> None:
        self.task_id = task_id
        self.request = request
        self.status: TaskStatus = TaskStatus.PENDING
        self._future = future
        self._poller = poller
        self.submitted_at = submitted_at
        self.has_callback = has_callback
        # Poller bookkeeping (read by the schedule, written only by the poller).
        self.due = 0.0
        self.polls = 0
        self.errors = 0
        self.last_poll: float | None = None
        self.last_running: float | None = None
        self.learn = True

    def __repr__(self) -> str:
        state = "done" if self.done() else self.status.value
        return f"<Job {self.task_id} {state}>"

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
            TimeoutError: The deadline passed (the job keeps being tracked).
            TaskFailedError: The task failed.
        """
        return await asyncio.wait_for(asyncio.shield(self._future), timeout)

    def result(self) -> GenerationResult:
        """The result of a finished job (raises its error; ``InvalidStateError`` if pending)."""
        return self._future.result()

    def exception(self) -> BaseException | None:
        """The error of a finished job, or None (``InvalidStateError`` if pending)."""
        return self._future.exception()

    def add_done_callback(self, callback: Any) -> None:
        """Call ``callback(job)`` once the job is done (immediately if it already is)."""
        self._future.add_done_callback(lambda _: callback(self))

    def cancel(self) -> bool:
        """Stop tracking this job; every awaiter gets ``asyncio.CancelledError``.

        Returns:
            False if the job was already done.
        """
        if self._future.done():
            return False
        self._poller.forget(self)
        return self._future.cancel()
