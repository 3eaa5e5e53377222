"""When to poll what: pure logic, no I/O. Every method takes ``now`` from the caller's clock.

- ``DurationModel`` learns this client's render times online (a log-normal fit).
- ``Schedule`` turns it and the ``PollPolicy`` into due times: the first query at a low
  quantile of the learned render time, then one query every ``min_interval`` while the job's
  age is inside the dense window (up to the ``dense_until`` quantile), then geometric back-off
  to ``max_interval``; never two queries of one task within ``min_interval``; jobs with a
  callback get a late, rare safety net.
- ``PollQueue`` is the one min-heap of ``(due, seq, item)``: the most overdue item comes first.

How fast to send is not decided here: see ``_rate.RateController``.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from statistics import NormalDist
from typing import Generic, TypeVar

from ._models import PollPolicy

__all__ = ["TICK_FRACTION", "DurationModel", "PollQueue", "Schedule"]

T = TypeVar("T")

_NORMAL = NormalDist()

#: Due times are rounded up to a grid of ``min_interval * TICK_FRACTION`` so that queries due
#: at about the same time leave together: one wake-up for a batch of requests costs a third
#: of the CPU per query of one wake-up per request, for at most one tick of extra lag.
TICK_FRACTION = 0.1


class DurationModel:
    """An online log-normal fit of render times (seconds), seeded by a prior.

    Uses an exponentially weighted mean and variance of ``log(duration)`` so it follows drift;
    the prior counts as ``prior_weight`` observations.
    """

    __slots__ = ("_mean", "_var", "_weight", "count", "max_weight")

    def __init__(
        self,
        prior_median: float,
        *,
        prior_sigma: float = 0.5,
        prior_weight: float = 4.0,
        max_weight: float = 500.0,
    ) -> None:
        self._mean = math.log(prior_median)
        self._var = prior_sigma**2
        self._weight = prior_weight
        self.max_weight = max_weight
        self.count = 0

    def observe(self, seconds: float) -> None:
        """Learn from one finished job's exact render time (e.g. a webhook's arrival)."""
        if not (seconds > 0 and math.isfinite(seconds)):
            return
        delta = math.log(seconds) - self._mean
        self._update(delta, delta * delta)

    def observe_between(self, low: float, high: float) -> None:
        """Learn from a job known to have finished after ``low`` and by ``high`` seconds.

        A poll only brackets a render time: taking ``high`` (when the poll saw it done) as the
        render time biases the fit upwards, and the more so the more overdue the polls are.
        Instead the update uses the expected log render time (and its spread) of the current
        fit truncated to the bracket: an online EM step for interval-censored data.
        """
        if not (high > 0 and math.isfinite(high)) or low >= high:
            return
        mean, sigma = self._mean, self.sigma
        # A bracket from 0 (or below) starts at -inf, where cdf and pdf are 0.
        a = (math.log(low) - mean) / sigma if low > 0 else -math.inf
        b = (math.log(high) - mean) / sigma
        mass = _NORMAL.cdf(b) - _NORMAL.cdf(a)
        if mass < 1e-9:  # far out in a tail of the fit: fall back to the bracket's middle
            self.observe(math.sqrt(low * high) if low > 0 else high)
            return
        pdf_a = _NORMAL.pdf(a)
        a_pdf_a = a * pdf_a if low > 0 else 0.0  # -inf * 0 is nan: the limit is 0
        pdf_b = _NORMAL.pdf(b)
        expected_delta = sigma * (pdf_a - pdf_b) / mass
        expected_square = sigma * sigma * (1.0 + (a_pdf_a - b * pdf_b) / mass)
        self._update(expected_delta, expected_square)

    def _update(self, delta: float, square: float) -> None:
        # Exponentially weighted mean and variance of log(render time); ``square`` is the
        # (expected) squared deviation from the current mean.
        self.count += 1
        self._weight = min(self._weight + 1.0, self.max_weight)
        alpha = 1.0 / self._weight
        self._mean += alpha * delta
        self._var = (1.0 - alpha) * (self._var + alpha * square)

    @property
    def median(self) -> float:
        """The fitted median render time."""
        return math.exp(self._mean)

    @property
    def sigma(self) -> float:
        """The fitted log-scale spread (floored so a uniform history cannot collapse it)."""
        return max(math.sqrt(self._var), 0.05)

    def quantile(self, q: float) -> float:
        """The render time below which a fraction ``q`` of jobs finish."""
        return math.exp(self._mean + self.sigma * _NORMAL.inv_cdf(q))


class Schedule:
    """Due times for one client's jobs under a ``PollPolicy``.

    The shape is the one the exact frontier (``benchmarks/frontier.py``) finds for a lag p50
    target on log-normal render times: no query before the window where jobs are most likely to
    finish (``first_poll_quantile`` to ``dense_until`` of the learned distribution), one query
    every ``min_interval`` inside it (each catches what finished since the last, within one
    interval), and few queries after it (the interval grows by ``backoff`` per query: a job
    still running there is unlikely to finish in any given second).
    """

    __slots__ = ("_cached_count", "_dense_end", "_first_offset", "model", "policy", "tick")

    def __init__(self, policy: PollPolicy, model: DurationModel | None = None) -> None:
        self.policy = policy
        self.model = model or DurationModel(policy.expected_duration)
        #: The grid due times are aligned to (see ``align``).
        self.tick = policy.min_interval * TICK_FRACTION
        self._first_offset = 0.0
        self._dense_end = 0.0
        self._cached_count = -1

    def _refresh(self) -> None:
        # Cached per learning step: this runs once per query.
        if self._cached_count != self.model.count:
            policy = self.policy
            self._first_offset = max(
                policy.min_interval, self.model.quantile(policy.first_poll_quantile)
            )
            self._dense_end = self.model.quantile(policy.dense_until)
            self._cached_count = self.model.count

    def window(self) -> tuple[float, float]:
        """The dense window now, as ages (seconds since submit): (first poll, end)."""
        self._refresh()
        return self._first_offset, self._dense_end

    def first_due(self, submitted_at: float, *, has_callback: bool = False) -> float:
        """When to query a job submitted at ``submitted_at`` for the first time."""
        if has_callback:
            return submitted_at + self.model.quantile(0.99) + self.policy.callback_grace
        self._refresh()
        return submitted_at + self._first_offset

    def next_due(
        self, now: float, polls: int, *, submitted_at: float, has_callback: bool = False
    ) -> float:
        """When to query again a job submitted at ``submitted_at``, still running at ``now``.

        ``polls`` is how many times it was queried (only the safety net of a job with a
        callback counts them).
        """
        policy = self.policy
        if has_callback:
            return now + policy.max_interval * policy.backoff ** min(polls, 32)
        self._refresh()
        age = now - submitted_at
        if age < self._first_offset:  # queried early (resumed, verified): wait for the window
            wait = self._first_offset - age
            return now + min(policy.max_interval, max(policy.min_interval, wait))
        # Inside the window: every min_interval. After it: min_interval growing by ``backoff``
        # per query (an interval proportional to the time since the window's end).
        past = max(0.0, age - self._dense_end)
        interval = policy.min_interval + (policy.backoff - 1.0) * past
        return now + min(policy.max_interval, interval)

    def retry_due(self, now: float, errors: int) -> float:
        """When to query again after ``errors`` consecutive transient errors for one job."""
        policy = self.policy
        interval = policy.min_interval * 2.0 ** min(errors - 1, 32)
        return now + min(policy.max_interval, max(policy.min_interval, interval))

    def floor(self, last_poll: float | None, due: float) -> float:
        """``due``, moved later if needed so the task is never queried within ``min_interval``."""
        if last_poll is None:
            return due
        return max(due, last_poll + self.policy.min_interval)

    def align(self, due: float) -> float:
        """``due`` rounded up to the next multiple of ``tick`` (never earlier than ``due``)."""
        if not math.isfinite(due):
            return due
        aligned = math.ceil(due / self.tick - 1e-6) * self.tick
        return aligned if aligned >= due else due

    def next_tick(self, now: float) -> float:
        """The first point of the tick grid strictly after ``now``."""
        index = math.floor(now / self.tick) + 1.0
        tick = index * self.tick
        return tick if tick > now else (index + 1.0) * self.tick


class PollQueue(Generic[T]):
    """A min-heap of ``(due, seq, item)`` with lazy deletion.

    An entry is live while ``is_live(item, due)`` says so; stale entries (rescheduled or
    finished items) are dropped when they reach the top.
    """

    __slots__ = ("_counter", "_heap", "_is_live")

    def __init__(self, is_live: Callable[[T, float], bool]) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._counter = itertools.count()
        self._is_live = is_live

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, due: float, item: T) -> None:
        """Schedule ``item`` at ``due``."""
        heapq.heappush(self._heap, (due, next(self._counter), item))

    def _drop_stale(self) -> None:
        heap = self._heap
        while heap and not self._is_live(heap[0][2], heap[0][0]):
            heapq.heappop(heap)

    def next_due(self) -> float | None:
        """The earliest live due time, or None when empty."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> T | None:
        """Remove and return the most overdue live item due at ``now``, or None."""
        self._drop_stale()
        if self._heap and self._heap[0][0] <= now:
            return heapq.heappop(self._heap)[2]
        return None

    def compact(self) -> None:
        """Drop every stale entry now (not only those at the top), in O(n)."""
        is_live = self._is_live
        self._heap = [entry for entry in self._heap if is_live(entry[2], entry[0])]
        heapq.heapify(self._heap)

    def clear(self) -> None:
        """Drop every entry."""
        self._heap.clear()
