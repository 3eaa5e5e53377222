"""The client's shutdown bookkeeping: which submits are under way, and how ``aclose()`` ends them.

A submit is money once its bytes are on the wire. So ``aclose()`` first refuses new submits,
wakes every submit that is only *waiting* (its turn at the submit gate, or sleeping between
retries after a refusal: nothing charged; the client closes the gate) with
``ClientClosedError``, lets the ones on the wire finish (bounded), and only then stops the
poller and closes the session. A submit waiting for a request slot is stopped at the slot: its
``on_send`` guard raises before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Protocol, TypeVar

from .errors import ClientClosedError

__all__ = ["Lifecycle"]

logger = logging.getLogger("ketchup_async")

T = TypeVar("T")


class Run(Protocol):
    """An open ``generate_many`` run, as shutdown sees it."""

    def log_unreported(self, why: str) -> None:
        """Log the task ids its caller has not seen."""


class Lifecycle:
    """Counts the submits under way and tells waiting ones that the client is closing."""

    def __init__(self) -> None:
        self._closing = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._submits = 0
        self._shutdown: asyncio.Future[None] | None = None

    @property
    def closing(self) -> bool:
        """True once ``close()`` was called."""
        return self._closing.is_set()

    @property
    def submits(self) -> int:
        """Submits under way."""
        return self._submits

    def close(self) -> None:
        """Refuse new submits and wake the waiting ones."""
        self._closing.set()

    def check_open(self, what: str = "the submit was not sent") -> None:
        """Raise ``ClientClosedError`` (nothing charged) once the client is closing."""
        if self._closing.is_set():
            raise ClientClosedError(f"the client is closed: {what}")

    def guard(self, then: Callable[[], Awaitable[None]] | None) -> Callable[[], Awaitable[None]]:
        """An ``on_send`` hook that refuses to send once the client is closing, then ``then``."""

        async def on_send() -> None:  # holding a request slot: the last moment to refuse
            self.check_open()
            if then is not None:
                await then()

        return on_send

    @contextlib.contextmanager
    def submitting(self) -> Iterator[None]:
        """Count one submit as under way for the duration of the block."""
        self._submits += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._submits -= 1
            if not self._submits:
                self._idle.set()

    async def unless_closing(self, start: Callable[[], Awaitable[T]], what: str) -> T:
        """Await ``start()``; cancel it and raise ``ClientClosedError`` if the client closes."""
        self.check_open(what)
        work = asyncio.ensure_future(start())
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait((work, closing), return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not work.done():
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
        if work.cancelled():
            self.check_open(what)
        return work.result()

    async def sleep(self, delay: float) -> None:
        """Sleep between retries of a refused (uncharged) request; the client closing ends it."""
        await self.unless_closing(
            lambda: asyncio.sleep(delay), "the request was waiting to retry and was not resent"
        )

    async def wait_idle(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for every submit to end; False if some did not."""
        if self._idle.is_set():
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def shutdown(
        self, grace: float, runs: Iterable[Run], release: Callable[[], Awaitable[None]]
    ) -> None:
        """Close: wait for submits (at most ``grace`` s), log unreported ids, then ``release``.

        The work runs in its own task: cancelling the caller does not interrupt it, and a
        second call waits for the same work.
        """
        if self._shutdown is None:
            self.close()
            self._shutdown = asyncio.ensure_future(self._close(grace, runs, release))
        await asyncio.shield(self._shutdown)

    async def _close(
        self, grace: float, runs: Iterable[Run], release: Callable[[], Awaitable[None]]
    ) -> None:
        try:
            if not await self.wait_idle(grace):
                logger.warning(
                    "aclose(): %d submit(s) still under way after %.1f s; closing anyway",
                    self._submits,
                    grace,
                )
            for run in list(runs):
                run.log_unreported("the client closed during generate_many")
        finally:
            await release()
