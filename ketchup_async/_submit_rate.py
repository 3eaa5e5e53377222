"""The submit controller: when the next submit may go. Pure logic, no I/O, fake-clock tested.

One per client. It is the query controller's logic (``RateController``: on a 429, pause for
``Retry-After`` and cut the rate to at most half of itself and at most what the server accepted
over the last window) applied to submits, with four additions submits need:

- **Slow start.** Until the server first refuses a submit, the number of submits on the wire
  is a window that starts at ``initial_window`` and grows by one per accepted submit (it
  doubles every round trip): an unlimited server is at full speed within a few round trips,
  and a limited one sees a handful of refusals, not ``max_concurrency`` of them.
- **Additive recovery.** After a cut to ``r0``, each accepted submit adds
  ``recovery * r0 / (r * window)`` to the rate ``r``: the rate grows by ``recovery * r0`` per
  window (below: one second) while submits are being accepted, and not at all while idle.
  The query controller's own (multiplicative, time-based) recovery still applies; the faster
  of the two wins; back at the budget (a ``submit_rate`` ceiling), it returns to slow start.
- **A gentler cut.** The cut rate is at least ``KEEP`` (70%) of what the server accepted over
  the window (and never more than it): what it accepted is the best estimate of its limit.
- **A time base from the server.** The window over which "what the server accepted" is counted
  (and recovery paced) is one second, or the first ``Retry-After`` when that is shorter (a
  server that asks to be retried within 100 ms counts its limit on that scale).

A refusal without ``Retry-After`` (a bare 503) pauses for an exponential back-off instead:
``base * 2**n`` up to ``cap`` for the n-th refusal in a row. An explicit ``ceiling`` (the
client's ``submit_rate``) is a hard limit on the rate at all times.
"""

from __future__ import annotations

import math
from collections import deque

from ._rate import RateController

__all__ = ["SubmitController"]

#: The longest window over which accepted submits are counted, seconds.
WINDOW = 1.0
#: After a refusal the rate is at least this fraction of what the server accepted over the
#: window: halving (the query controller's cut) would idle a quarter of a submit-limited run
#: (simulated: 2,000 submits against 10/s took 293 s halving, 203 s keeping 70%, for 28 and
#: 49 refusals).
KEEP = 0.7
#: The shortest such window (a ``Retry-After`` of 0 must not make the count meaningless).
MIN_WINDOW = 0.01


class SubmitController:
    """When the next submit may leave, for one client.

    Args:
        ceiling: The hard limit in submits per second (None: unlimited).
        initial_window: Submits on the wire at once before the first refusal, to start with.
        recovery: Additive recovery per second, as a fraction of the rate after the last cut.
        base: The first pause after a refusal that named no ``Retry-After``, seconds.
        cap: The longest such pause, seconds.
        retry_after_cap: The longest ``Retry-After`` honoured, seconds.
    """

    __slots__ = (
        "_accepted",
        "_cut_rate",
        "_inner",
        "_next_at",
        "_rate",
        "_refusals",
        "_window_seconds",
        "base",
        "cap",
        "ceiling",
        "in_flight",
        "recovery",
        "retry_after_cap",
        "window",
    )

    def __init__(
        self,
        ceiling: float | None = None,
        *,
        initial_window: int = 8,
        recovery: float = 0.1,
        base: float = 0.5,
        cap: float = 8.0,
        retry_after_cap: float = 60.0,
    ) -> None:
        self.ceiling = ceiling
        self.recovery = recovery
        self.base = base
        self.cap = cap
        self.retry_after_cap = retry_after_cap
        #: Submits allowed on the wire at once during slow start (None: not in slow start).
        self.window: float | None = float(initial_window)
        #: Submits sent and not yet answered.
        self.in_flight = 0
        self._inner: RateController | None = None
        self._rate = math.inf  # the additive rate (inf: not limited by a refusal)
        self._cut_rate = math.inf
        self._next_at = -math.inf
        self._refusals = 0
        self._window_seconds = WINDOW
        self._accepted: deque[float] = deque()

    @property
    def budget(self) -> float:
        """The ceiling, or infinity."""
        return math.inf if self.ceiling is None else self.ceiling

    def rate(self, now: float) -> float:
        """Submits per second allowed at ``now`` (infinite when nothing limits them)."""
        inner = self._inner
        if inner is None:
            return self.budget
        rate = max(self._rate, inner.current_rate(now))
        if rate >= self.budget:  # fully recovered: back to slow start
            self._inner = None
            self._rate = self._cut_rate = math.inf
            self.window = max(float(self.in_flight), 8.0)
            return self.budget
        return rate

    def paused_until(self) -> float:
        """When the current pause ends (-inf when not paused)."""
        return -math.inf if self._inner is None else self._inner.paused_until

    def delay(self, now: float) -> float:
        """Seconds until the next submit may leave (0: now; inf: when an answer comes)."""
        wait = self.paused_until() - now
        window = self.window
        if window is not None and self.in_flight >= window:
            return math.inf
        rate = self.rate(now)
        if math.isfinite(rate):
            wait = max(wait, self._next_at - now)
        return max(0.0, wait)

    def on_send(self, now: float) -> None:
        """A submit leaves at ``now`` (after ``delay(now)`` said 0)."""
        self.in_flight += 1
        rate = self.rate(now)
        if math.isfinite(rate):
            self._next_at = max(self._next_at, now) + 1.0 / rate

    def on_accepted(self, now: float) -> None:
        """A submit was answered with a task (or any answer that is not a refusal)."""
        self._done()
        self._refusals = 0
        if self.window is not None:
            self.window += 1.0
        accepted = self._accepted
        accepted.append(now)
        while accepted[0] <= now - WINDOW:
            accepted.popleft()
        inner = self._inner
        if inner is not None:
            inner.on_answered(now)
            rate = max(self._rate, 1e-9)
            step = self.recovery * self._cut_rate / (rate * self._window_seconds)
            self._rate = min(self.budget, rate + step)

    def on_other(self) -> None:
        """A submit ended without telling anything about the server's limit."""
        self._done()

    def on_refused(self, now: float, retry_after: float | None) -> None:
        """A submit was refused (429 or 503): pause everything and cut the rate."""
        self._done()
        self._refusals += 1
        if retry_after is None:
            pause = min(self.cap, self.base * 2.0 ** min(self._refusals - 1, 62))
        else:
            pause = min(retry_after, self.retry_after_cap)
        inner = self._inner
        if inner is None:
            window = self._window_seconds = min(WINDOW, max(MIN_WINDOW, pause))
            inner = self._inner = RateController(
                self.budget, floor=min(1.0, self.budget), window=window
            )
            for accepted_at in self._accepted:  # what it accepted before this refusal
                inner.on_answered(accepted_at)
        inner.on_rate_limited(now, pause)
        cut = min(self.budget, max(inner.current_rate(now), KEEP * self._served(now)))
        if cut < self._rate:
            self._rate = self._cut_rate = cut
        self.window = None
        self._next_at = max(self._next_at, inner.paused_until)

    def _served(self, now: float) -> float:
        horizon = now - self._window_seconds
        return sum(1 for t in self._accepted if t > horizon) / self._window_seconds

    def _done(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)
