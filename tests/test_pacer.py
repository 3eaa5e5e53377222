"""The poller's pacer: an in-flight window that opens with answers and halves on 429."""

from __future__ import annotations

import asyncio

import pytest

from ketchup_async import PollPolicy
from ketchup_async._pacer import START_WINDOW, QueryPacer
from ketchup_async._schedule import Schedule

pytestmark = pytest.mark.anyio

POLICY = PollPolicy(rate=1e6, max_in_flight=6)


def _pacer(policy: PollPolicy = POLICY) -> QueryPacer:
    return QueryPacer(policy, Schedule(policy))


async def test_the_window_starts_small() -> None:
    """Before any answer, at most START_WINDOW (4) queries are in flight."""
    pacer = _pacer()
    assert START_WINDOW == 4
    for _ in range(4):
        await pacer.acquire(demand=1e6)
    blocked = asyncio.ensure_future(pacer.acquire(demand=1e6))
    await asyncio.sleep(0)
    assert not blocked.done()
    pacer.release()
    await asyncio.wait_for(blocked, 1)
    assert pacer.in_flight == 4


async def test_each_answer_opens_the_window_by_one_up_to_max_in_flight() -> None:
    """Answers grow the window one at a time, never past max_in_flight."""
    pacer = _pacer()
    for expected in (5, 6, 6):
        pacer.on_answered(0.0)
        assert pacer.window == expected


async def test_an_answer_lets_a_waiting_query_go() -> None:
    """A query waiting on a full window leaves as soon as an answer opens it."""
    pacer = _pacer()
    for _ in range(4):
        await pacer.acquire(demand=1e6)
    blocked = asyncio.ensure_future(pacer.acquire(demand=1e6))
    await asyncio.sleep(0)
    pacer.on_answered(0.0)
    await asyncio.wait_for(blocked, 1)
    assert pacer.in_flight == 5


async def test_a_429_halves_the_window_never_below_one() -> None:
    """A 429 halves the window (4 -> 2 -> 1 -> 1) and pauses for Retry-After."""
    pacer = _pacer()
    for expected in (2, 1, 1):
        pacer.on_rate_limited(100.0, 2.0)
        assert pacer.window == expected
    assert pacer.paused_until == 102.0


async def test_a_small_max_in_flight_caps_the_start() -> None:
    """max_in_flight below START_WINDOW is the window from the start."""
    assert _pacer(PollPolicy(rate=1e6, max_in_flight=2)).window == 2
