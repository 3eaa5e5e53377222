"""Rate-limited warnings for refused callbacks: one line per reason per period, with a count.

A flood of forged callbacks (wrong tokens, huge or trickled bodies) must not flood the log: the
first refusal of a reason is logged at once, the next ones are counted and reported in one
line once the period is over ("1,234 callbacks with a wrong token in the last 60 s"). Pure
bookkeeping on an injectable clock; the receiver calls ``refused`` for each refusal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import attrs

__all__ = ["REASONS", "RefusalLog"]

logger = logging.getLogger("ketchup_async")

#: What each refusal reason's WARNING says about the callbacks it counts.
REASONS = {
    "token": "with a wrong or missing token",
    "too_large": "with a body over the size limit",
    "malformed": "with a malformed body",
    "timeout": "whose body was not received in time",
}


@attrs.define(eq=False)
class _Reason:
    last_logged: float
    count: int = 0  # refusals since ``last_logged``, not logged yet


@attrs.define(eq=False)
class RefusalLog:
    """Logs refused callbacks at WARNING, at most once per ``period`` per reason.

    Args:
        period: Seconds between two WARNING lines of one reason.
        clock: The time source (seconds, monotonic).
    """

    period: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _reasons: dict[str, _Reason] = attrs.field(factory=dict, init=False)

    def refused(self, reason: str, detail: str = "") -> bool:
        """Count one refusal; log it (with those counted since the last line) if it is time.

        Args:
            reason: A key of ``REASONS``.
            detail: What to add about the latest one (e.g. its peer), never a secret.

        Returns:
            True if a line was logged.
        """
        now = self.clock()
        state = self._reasons.get(reason)
        what = REASONS.get(reason, f"refused ({reason})")
        suffix = f" (latest: {detail})" if detail else ""
        if state is None:
            self._reasons[reason] = _Reason(last_logged=now)
            logger.warning(
                "webhook: refused a callback %s%s; more are counted and reported at most "
                "once every %g s",
                what,
                suffix,
                self.period,
            )
            return True
        state.count += 1
        if now - state.last_logged < self.period:
            return False
        logger.warning(
            "webhook: %s callbacks %s in the last %g s%s",
            f"{state.count:,}",
            what,
            now - state.last_logged,
            suffix,
        )
        state.last_logged, state.count = now, 0
        return True

    def pending(self, reason: str) -> int:
        """Refusals of ``reason`` counted but not logged yet."""
        state = self._reasons.get(reason)
        return 0 if state is None else state.count
