"""The fake server's callback sender: one background task draining a min-heap of due times."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from ._state import FakeTask
from ._stats import FakeStats

__all__ = ["CallbackDispatcher"]

logger = logging.getLogger("ketchup_async.testing")

_USER_AGENT = "Ketchup-Callback/1.0"
_BATCH = 256  # callbacks fired before yielding to the event loop


class CallbackDispatcher:
    """POSTs each task's final state to its ``callback_url`` once it is due.

    There is no timer per task: :meth:`schedule` pushes ``(due, task_id)`` on a heap and a
    single loop sleeps until the earliest entry. Failed POSTs are counted, never retried.

    Args:
        tasks: The server's task mapping (looked up when an entry is due).
        stats: Where sent / dropped / failed callbacks are counted.
        rng: The server's seeded RNG (drop and duplicate draws).
        payload: Builds the JSON body for a final task.
        drop_rate: Probability that a callback is not sent.
        duplicate_rate: Probability that a callback is sent twice.
        delay: REAL seconds between completion and the POST.
        timeout: REAL seconds allowed for one POST.
        max_concurrency: Callback POSTs in flight at once.
    """

    def __init__(
        self,
        *,
        tasks: Mapping[str, FakeTask],
        stats: FakeStats,
        rng: random.Random,
        payload: Callable[[FakeTask], dict[str, Any]],
        drop_rate: float,
        duplicate_rate: float,
        delay: float,
        timeout: float = 10.0,
        max_concurrency: int = 64,
    ) -> None:
        self._tasks = tasks
        self._stats = stats
        self._rng = rng
        self._payload = payload
        self.drop_rate = drop_rate
        self.duplicate_rate = duplicate_rate
        self.delay = delay
        self._timeout = timeout
        self._max_concurrency = max_concurrency
        self._heap: list[tuple[float, str]] = []
        self._wakeup: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._senders: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._semaphore: asyncio.Semaphore | None = None

    def schedule(self, task: FakeTask) -> None:
        """Queue ``task``'s callback for ``completed_at + delay`` and wake the loop if needed."""
        if task.callback_url is None or task.callback_done:
            return
        entry = (task.completed_at + self.delay, task.task_id)
        heap = self._heap
        heapq.heappush(heap, entry)
        if self._wakeup is not None and heap[0] is entry:
            self._wakeup.set()

    async def start(self) -> None:
        """Create the shared client session and start the background loop."""
        self._wakeup = asyncio.Event()
        self._semaphore = asyncio.Semaphore(self._max_concurrency)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            headers={"User-Agent": _USER_AGENT},
        )
        self._loop_task = asyncio.create_task(self._run(), name="fake-ketchup-callbacks")

    async def close(self) -> None:
        """Stop the loop, cancel in-flight POSTs and close the session."""
        tasks = [t for t in (self._loop_task, *self._senders) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = None
        self._senders.clear()
        self._wakeup = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        wakeup = self._wakeup
        assert wakeup is not None
        heap = self._heap
        while True:
            wakeup.clear()
            if not heap:
                await wakeup.wait()
                continue
            now = time.monotonic()
            delay = heap[0][0] - now
            if delay > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), delay)
                continue
            fired = 0
            while heap and heap[0][0] <= now and fired < _BATCH:
                _, task_id = heapq.heappop(heap)
                self._fire(task_id, now)
                fired += 1
            await asyncio.sleep(0)

    def _fire(self, task_id: str, now: float) -> None:
        task = self._tasks.get(task_id)
        if task is None or task.callback_done or task.callback_url is None:
            return
        if not task.is_final(now):  # pragma: no cover - entries are pushed for completed_at
            self.schedule(task)
            return
        task.callback_done = True
        rng = self._rng
        if self.drop_rate and rng.random() < self.drop_rate:
            self._stats.callbacks_dropped += 1
            return
        copies = 2 if self.duplicate_rate and rng.random() < self.duplicate_rate else 1
        sender = asyncio.create_task(self._send(task.callback_url, self._payload(task), copies))
        self._senders.add(sender)
        sender.add_done_callback(self._senders.discard)

    async def _send(self, url: str, body: dict[str, Any], copies: int) -> None:
        session, semaphore = self._session, self._semaphore
        assert session is not None
        assert semaphore is not None
        async with semaphore:
            for _ in range(copies):
                try:
                    async with session.post(url, json=body) as response:
                        await response.read()
                except Exception as exc:  # never let a bad receiver crash the loop
                    self._stats.callbacks_failed += 1
                    logger.debug("callback to %s failed: %r", url, exc)
                else:
                    self._stats.callbacks_sent += 1
