"""``BulkProgress``: what a bulk run's ``progress`` callback receives."""

from __future__ import annotations

from decimal import Decimal

import attrs

from ._states import State

__all__ = ["BulkProgress"]


@attrs.frozen
class BulkProgress:
    """A snapshot of a bulk run, handed to the ``progress`` callback.

    Attributes:
        total: Inputs in the journal.
        counts: Inputs per state.
        consumed: Credits consumed so far (the whole journal).
        finished: Inputs that reached a final state during this run.
        downloading: Successes whose files are being written.
        files_written: Files written during this run.
        elapsed: Seconds since this run started.
        max_credits: The credit budget (None: no limit).
        spent_before: Credits consumed by earlier runs of the journal (in ``consumed``).
    """

    total: int
    counts: dict[State, int] = attrs.field(eq=False)
    consumed: Decimal
    finished: int
    downloading: int
    files_written: int
    elapsed: float
    max_credits: Decimal | None = None
    spent_before: Decimal = Decimal(0)

    @property
    def done(self) -> int:
        """Inputs in a final state."""
        return sum(self.counts[s] for s in State if s.is_final)

    @property
    def in_flight(self) -> int:
        """Inputs being submitted or rendered."""
        return self.counts[State.SUBMITTING] + self.counts[State.SUBMITTED]

    @property
    def rate(self) -> float:
        """Inputs finished per second during this run."""
        return self.finished / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate (None before anything finished)."""
        rate = self.rate
        return (self.total - self.done) / rate if rate > 0 else None
