"""Is the API answering? Failed requests as they happen, and the "unreachable" warning.

The client retries failed requests quietly (a transient error never fails a job), so a run
whose server went away would otherwise show nothing but a frozen progress bar. The SDK logs
each failed attempt with its ``KetchupError`` among the log record's arguments; ``ErrorLog``
(a ``logging.Handler``) hands those to ``ApiHealth``, which is pure (a clock is passed in) and
decides when to warn: errors keep coming and no input moved (no task id received, no task
finished) for ``after`` seconds. Progress snapshots tell it that the API answers again.

Decision: observe the client's logging rather than wrap its HTTP session (the client sets the
SDK's User-Agent on the session it owns) or add a callback to the core: the log records are
the client's public, documented trace of every retry.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

import attrs

from .. import APIConnectionError, BulkProgress, KetchupError, ServerError
from ..bulk import State

__all__ = ["ApiHealth", "ErrorLog", "describe"]

#: Seconds of failures without any progress before the warning.
WARN_AFTER = 5.0
#: A streak of failures ends when no error came for this long.
QUIET = 30.0


def _os_reason(error: BaseException | None) -> str | None:
    """The operating system's reason ("connection refused") found in an exception chain."""
    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, OSError):
            if error.errno is not None and error.errno > 0:
                return os.strerror(error.errno).lower()
            if isinstance(error.strerror, str) and error.strerror:
                return error.strerror.lower()
        error = error.__cause__ or error.__context__
        seen += 1
    return None


def describe(error: KetchupError, handling: BaseException | None = None) -> str:
    """A short reason for ``error``: the OS's words for a connection error, else its message.

    Args:
        error: The error a request failed with.
        handling: The exception being handled when it was logged (its chain may hold the
            OS error of a retried attempt).
    """
    if isinstance(error, APIConnectionError):
        reason = error.reason or _os_reason(error) or _os_reason(handling)
        if reason is not None:
            return reason
    return str(error)


@attrs.define
class ApiHealth:
    """Failed requests of a run, and whether the API looks unreachable (pure, clock given).

    Attributes:
        errors: Failed requests seen (every attempt, retried or not).
        last_error: The short reason of the latest one.
        failing_since: When the current streak of failures began (None: the API answers).
        warned: The warning for the current streak was given.
    """

    after: float = WARN_AFTER
    errors: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    failing_since: float | None = None
    unreachable: bool = False
    warned: bool = False
    _moves: tuple[int, ...] | None = None

    def on_error(self, now: float, reason: str, *, unreachable: bool) -> None:
        """A request failed with ``reason`` (``unreachable``: no connection at all)."""
        self.errors += 1
        self.last_error = reason
        self.unreachable = unreachable
        if self.failing_since is None or (
            self.last_error_at is not None and now - self.last_error_at > QUIET
        ):
            self.failing_since = now
            self.warned = False
        self.last_error_at = now

    def on_progress(self, progress: BulkProgress) -> bool:
        """Note a snapshot: an input that moved ends the streak; True if it had been warned."""
        c = progress.counts
        moves = (c[State.SUBMITTED], c[State.SUCCEEDED], c[State.FAILED], progress.files_written)
        moved = self._moves is not None and moves != self._moves
        self._moves = moves
        if moved and self.failing_since is not None:
            recovered = self.warned
            self.failing_since = None
            self.warned = False
            return recovered
        return False

    def failing_for(self, now: float) -> float | None:
        """Seconds the API has been failing without any progress, or None."""
        if self.failing_since is None or self.last_error_at is None:
            return None
        if now - self.last_error_at > QUIET:
            return None
        return now - self.failing_since

    def warning(self, now: float, out_dir: str) -> str | None:
        """The warning to give now (once per streak), or None."""
        seconds = self.failing_for(now)
        if self.warned or seconds is None or seconds < self.after:
            return None
        self.warned = True
        what = "unreachable" if self.unreachable else "failing"
        return (
            f"API {what} for {seconds:.0f} s: {self.last_error}; still retrying; "
            f"Ctrl-C then `ketchup resume {out_dir}` to continue later"
        )


class ErrorLog(logging.Handler):
    """Feeds the SDK's records of failed requests to an ``ApiHealth``."""

    def __init__(self, health: ApiHealth, clock: Callable[[], float]) -> None:
        super().__init__(logging.DEBUG)
        self.health = health
        self.clock = clock

    def emit(self, record: logging.LogRecord) -> None:
        """Count the record's ``KetchupError`` if it is a failure of the API or the network."""
        args = record.args if isinstance(record.args, tuple) else ()
        candidates = [*args, record.exc_info[1] if record.exc_info else None]
        for value in candidates:
            if isinstance(value, (APIConnectionError, ServerError)):
                reason = describe(value, sys.exc_info()[1])
                self.health.on_error(
                    self.clock(), reason, unreachable=isinstance(value, APIConnectionError)
                )
                return
