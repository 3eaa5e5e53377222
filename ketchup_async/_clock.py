"""The poller's time source, as a protocol: an ``asyncio`` event loop is one, a test's fake
clock another (so the poller's tests advance time instead of sleeping)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "TimerHandle"]


class TimerHandle(Protocol):
    """What ``Clock.call_at`` returns."""

    def cancel(self) -> None:
        """Cancel the timer."""


class Clock(Protocol):
    """Monotonic time and timers."""

    def time(self) -> float:
        """Now, in seconds (monotonic)."""

    def call_at(
        self,
        when: float,
        callback: Callable[[asyncio.Future[None]], None],
        arg: asyncio.Future[None],
        /,
    ) -> TimerHandle:
        """Call ``callback(arg)`` at ``when``."""
