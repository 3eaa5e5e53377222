"""``client.stats()``: the counters every client keeps, and their frozen snapshot.

``_telemetry``'s recorder updates a ``Counts`` as jobs and requests end; ``snapshot`` adds
the shared poller's own figures (pending jobs, queries, the query budget, the learned render
times).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

import attrs

from ._models import PollPolicy
from ._rate import RateController
from ._schedule import DurationModel, Schedule

__all__ = ["ClientStats", "Counts", "PollerFigures", "snapshot"]


@attrs.frozen(kw_only=True)
class ClientStats:
    """A snapshot of one client's counters (``client.stats()``), with or without OpenTelemetry.

    Attributes:
        pending: Jobs the shared poller is watching now.
        submitted: Jobs submitted (tasks created) by this client.
        tracked: Jobs attached with ``track()`` (resumed tasks).
        succeeded: Jobs that ended with a result.
        failed: Jobs that ended with an error (the task failed, a deadline, the client closed...).
        cancelled: Jobs stopped with ``Job.cancel()``.
        queries: Task queries sent by the shared poller.
        rate_limited: HTTP 429 answers received (submits, queries and downloads).
        query_budget: The poller's current query rate, in queries per second (it adapts: it
            drops on 429 and recovers slowly); None before the client opened.
        render_time_median: The learned median render time, in seconds (the prior until a job
            has finished).
        render_time_p90: The learned 90th percentile of render times, in seconds.
        render_times_learned: Finished jobs the render-time model has learned from.
        credits_consumed: Credits the API reported for finished jobs.
    """

    pending: int
    submitted: int
    tracked: int
    succeeded: int
    failed: int
    cancelled: int
    queries: int
    rate_limited: int
    query_budget: float | None
    render_time_median: float
    render_time_p90: float
    render_times_learned: int
    credits_consumed: Decimal

    def as_dict(self) -> dict[str, Any]:
        """The snapshot as a JSON-able dict (credits as a string, to keep them exact)."""
        data = attrs.asdict(self)
        data["credits_consumed"] = str(self.credits_consumed)
        return data


class PollerFigures(Protocol):
    """What ``Recorder.stats`` reads of the shared poller."""

    queries: int
    schedule: Schedule

    @property
    def rate(self) -> RateController:
        """The adaptive query rate."""

    def __len__(self) -> int:
        """Jobs being watched."""


@attrs.define(slots=True)
class Counts:
    """A client's running counters (see ``ClientStats`` for their meaning)."""

    submitted: int = 0
    tracked: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    rate_limited: int = 0
    credits: Decimal = attrs.field(factory=Decimal)


def snapshot(counts: Counts, poller: PollerFigures | None, policy: PollPolicy) -> ClientStats:
    """A ``ClientStats`` from ``counts`` and the poller's figures (if it started)."""
    model = DurationModel(policy.expected_duration) if poller is None else poller.schedule.model
    return ClientStats(
        pending=0 if poller is None else len(poller),
        submitted=counts.submitted,
        tracked=counts.tracked,
        succeeded=counts.succeeded,
        failed=counts.failed,
        cancelled=counts.cancelled,
        queries=0 if poller is None else poller.queries,
        rate_limited=counts.rate_limited,
        query_budget=None if poller is None else poller.rate.rate,
        render_time_median=model.median,
        render_time_p90=model.quantile(0.9),
        render_times_learned=model.count,
        credits_consumed=counts.credits,
    )
