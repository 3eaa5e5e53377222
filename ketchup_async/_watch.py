"""The shared poller's record of one tracked task: everything it keeps besides the ``Job``.

Only ``_poller`` uses it: a ``Job`` is the user's handle and holds none of this.
"""

from __future__ import annotations

import asyncio

import attrs

from ._jobs import Job, StatusCell
from ._models import GenerationResult
from ._reactions import Facts
from ._schedule import DurationModel
from ._telemetry import JobTrace

__all__ = ["Watch"]


@attrs.define(slots=True, eq=False)
class Watch:
    """The poller's record of one tracked task (its ``Job`` is only the user's handle)."""

    job: Job
    future: asyncio.Future[GenerationResult]
    cell: StatusCell
    submitted_at: float
    has_callback: bool
    learn: bool  # a resumed task's render time is unknown: never learn from it
    due: float = 0.0  # math.inf while a query is in flight or once finished
    polls: int = 0
    errors: int = 0
    not_found: int = 0
    unexpected: int = 0
    seen: bool = False  # the API answered a status for it
    last_status: str | None = None  # as sent (an undocumented one too)
    last_poll: float | None = None
    last_running: float | None = None
    trace: JobTrace | None = None  # the job's span and metrics (see ``_telemetry``)

    def facts(self, now: float, answered: bool, stray_404s: int) -> Facts:
        """What a reaction needs to know, at ``now`` (with the client's own two facts)."""
        return Facts(
            task_id=self.job.task_id,
            age=now - self.submitted_at,
            seen=self.seen,
            errors=self.errors,
            not_found=self.not_found,
            unexpected=self.unexpected,
            last_status=self.last_status,
            answered=answered,
            stray_404s=stray_404s,
        )

    def teach(self, model: DurationModel, now: float, *, exact: bool) -> None:
        """Teach ``model`` this task's render time, now that it is final (if it may learn)."""
        if not self.learn:
            return
        if exact:  # a webhook's arrival
            model.observe(now - self.submitted_at)
        else:
            # The answer brackets the render time: after the last "still running", by now.
            low = 0.0 if self.last_running is None else self.last_running - self.submitted_at
            model.observe_between(low, now - self.submitted_at)
