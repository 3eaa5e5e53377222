"""``QueryPacer``: how fast, and how many at once, the shared poller may query.

Three things bound the poller's queries, and they live here together:

- the rate: ``RateController`` (pure, ``_rate``) follows demand and reacts to 429s;
- one ``aiolimiter.AsyncLimiter`` (a leaky bucket) spends that rate, a schedule tick's worth
  at a time, rebuilt when the rate moves by more than 1%;
- a window of queries in flight that opens as answers come back: it starts at
  ``START_WINDOW`` and grows by one per answered query up to ``PollPolicy.max_in_flight``, and
  halves on a 429. Without it the first queries of a large backlog leave all at once (32 in
  flight), so against a server that allows 10 a second the first storm of 429s is as large as
  the in-flight limit (TCP's slow start, per answer rather than per round trip, is the model).
"""

from __future__ import annotations

import asyncio

from aiolimiter import AsyncLimiter

from ._models import PollPolicy
from ._rate import RateController
from ._schedule import Schedule

__all__ = ["START_WINDOW", "QueryPacer"]

#: Queries in flight before the first answers come back.
START_WINDOW = 4


def _limiter(rate: float, tick: float) -> AsyncLimiter:
    # The budget may be spent a schedule tick's worth at a time (at least one query): a
    # limiter of capacity 1 waits one timer tick (~1 ms) per query, capping it near 900/s.
    burst = max(1.0, rate * tick)
    return AsyncLimiter(burst, burst / rate)


class QueryPacer:
    """The poller's query budget and in-flight window; created inside the running loop.

    Args:
        policy: The poll policy (``rate``, ``min_interval``, ``max_in_flight``).
        schedule: The poller's schedule (its tick grid batches queries).
    """

    def __init__(self, policy: PollPolicy, schedule: Schedule) -> None:
        self.rate = RateController(
            policy.rate,
            floor=1.0 / policy.min_interval,  # one query per per-task floor: the least useful
            recovery_period=5.0 * policy.min_interval,
            window=policy.min_interval,
            demand=0.0,  # adaptive (rate None): up to one query per pending task per min_interval
        )
        self._schedule = schedule
        self._loop = asyncio.get_running_loop()
        self._limiter_rate = self.rate.rate
        self._limiter = _limiter(self._limiter_rate, schedule.tick)
        self.max_window = policy.max_in_flight
        self.window = min(START_WINDOW, self.max_window)
        self.in_flight = 0
        self._freed = asyncio.Event()

    @property
    def paused_until(self) -> float:
        """The loop time before which no query may leave (a 429's ``Retry-After``)."""
        return self.rate.paused_until

    async def acquire(self, demand: float) -> None:
        """Wait for a place in the window, then for the budget.

        Args:
            demand: Queries per second the pending jobs could use (pending / min_interval).
        """
        while self.in_flight >= self.window:
            self._freed.clear()
            await self._freed.wait()
        self.in_flight += 1
        try:
            await self._budget(demand)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """A query ended (or was not sent after all): its place in the window is free."""
        self.in_flight -= 1
        self._freed.set()

    def on_answered(self, now: float) -> None:
        """The API answered a query: the window opens by one."""
        self.rate.on_answered(now)
        if self.window < self.max_window:
            self.window += 1
            self._freed.set()

    def on_rate_limited(self, now: float, retry_after: float) -> None:
        """A query was refused with 429: pause, cut the rate, halve the window."""
        self.rate.on_rate_limited(now, retry_after)
        self.window = max(1, self.window // 2)

    async def _budget(self, demand: float) -> None:
        now = self._loop.time()
        self.rate.on_demand(now, demand)
        rate = self.rate.current_rate(now)
        if abs(rate - self._limiter_rate) > 0.01 * self._limiter_rate:
            self._limiter = _limiter(rate, self._schedule.tick)
            self._limiter_rate = rate
        if self._limiter.max_rate > 1.0 and not self._limiter.has_capacity():
            # Out of a budget of several queries per tick: wait for the next tick of the grid
            # (a tick's worth has leaked by then), not for one query's, so that queries leave
            # in a batch. (At one query per tick the limiter's own wait is the same, and exact.)
            now = self._loop.time()
            await asyncio.sleep(self._schedule.next_tick(now) - now)
        await self._limiter.acquire()
