"""Lifecycle: closing wakes what only waits, counts what is under way, and runs once."""

from __future__ import annotations

import asyncio

import pytest

from ketchup_async import ClientClosedError
from ketchup_async._lifecycle import Lifecycle

pytestmark = pytest.mark.anyio


async def test_closing_ends_a_retry_backoff_unsent() -> None:
    """A back-off sleep ends with ClientClosedError (not charged) as soon as the client closes."""
    life = Lifecycle()
    sleeping = asyncio.ensure_future(life.sleep(3600))
    await asyncio.sleep(0)
    life.close()
    with pytest.raises(ClientClosedError) as caught:
        await asyncio.wait_for(sleeping, 5)
    assert caught.value.may_have_been_processed is False


async def test_waiting_after_close_raises_at_once() -> None:
    """Once closing, check_open() and sleep() raise before waiting for anything."""
    life = Lifecycle()
    life.close()
    with pytest.raises(ClientClosedError):
        life.check_open()
    with pytest.raises(ClientClosedError):
        await life.sleep(3600)


async def test_wait_idle_follows_submits_under_way() -> None:
    """wait_idle() is False while a submit is under way past the bound, True once it ends."""
    life = Lifecycle()
    with life.submitting():
        assert life.submits == 1
        assert await life.wait_idle(0) is False
    assert await life.wait_idle(0) is True


async def test_shutdown_runs_once_even_if_its_caller_is_cancelled() -> None:
    """A cancelled shutdown still releases once; a second call waits for the same work."""
    life = Lifecycle()
    gate = asyncio.Event()
    released: list[int] = []

    async def release() -> None:
        await gate.wait()
        released.append(1)

    first = asyncio.ensure_future(life.shutdown(0, [], release))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    gate.set()
    await life.shutdown(0, [], release)
    assert released == [1]
