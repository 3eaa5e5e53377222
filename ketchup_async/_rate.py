"""How fast to send: the adaptive rate controller. Pure, no I/O: ``now`` comes from the caller.

One ``RateController`` per kind of request (the poller's queries; submits build on it too).

**Before the first 429 the budget follows demand.** The provider's published rule is per task
("query a job at most once per second"), so until the server says otherwise the controller
allows what the caller says could be useful (``on_demand``: for the poller, one query per
pending task per ``min_interval``), never less than ``floor`` and never more than an explicit
``budget``. This is why AWS SDKs' "adaptive" retry mode leaves its token bucket disabled until
the first throttling error, and why we skip TCP's slow start: a ramp from a low guess (the old
fixed 10 queries/s) made 2,000 pending jobs wait minutes for images that were already done,
while the server never asked for less.

**A 429 cuts** (multiplicative decrease, as AIMD and CUBIC do): the rate falls to at most half of
itself and at most what the server answered over the last ``window`` (the measured rate, as
botocore's ``RateClocker`` measures it: halving a budget far above what is sent would not lighten
the server's load, so one storm brings 2,000/s down to a 10/s server's figure), never below
``floor``. That measured rate is remembered as the server's limit (CUBIC's ``W_max``). A storm of
429s from requests already in flight counts once.

**Recovery and probing**, in quiet ``recovery_period`` steps (no 429, not paused, and demand
above the rate: a budget nobody needs is never grown, so it cannot wind up while idle and
then release a storm):

- below the remembered limit, ``recovery_step`` of itself per step (proportional, as today):
  back from half in about seven steps;
- at the limit, hold for ``probe_hold`` steps: the figure the server just enforced is the most
  likely figure, and probing it at once would buy a 429 every cycle (CUBIC's plateau);
- then ``recovery_step`` of itself per step again, beyond the limit (CUBIC's convex probe), so a
  limit that was raised is found again, up to the demand and the budget.

Why not CUBIC's cubic: its one curve ties how fast the rate recovers to how soon it probes past
the limit; with the provider counting 429s against us we want a fast return and a late probe,
which the hold gives with one knob. Why not pure AIMD (additive steps from half): it probes
past the limit every cycle, i.e. a 429 every few steps for as long as demand lasts.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["RateController"]


class RateController:
    """Adaptive control of one request rate (requests per second), on the caller's clock.

    Args:
        budget: A hard ceiling (requests per second), or None: adaptive, bounded by demand only.
        floor: The absolute minimum rate (a large rate must still be able to come down to what
            a small server allows).
        recovery_period: Seconds of quiet per recovery step.
        recovery_step: Growth per step, as a fraction of the rate.
        window: Seconds over which ``served`` measures what the server answered.
        probe_hold: Quiet steps spent at the last limit before probing past it.
        demand: The initial demand (see ``on_demand``); ``inf``: unknown, not a bound.

    Attributes:
        rate: The rate allowed as of the last call (see ``current_rate``).
        paused_until: Nothing may be sent before this time (the server's ``Retry-After``).
        limit: The server's limit as measured at the last cut (``inf`` before any 429).
    """

    __slots__ = (
        "_answers",
        "_demand",
        "_held",
        "_last_cut",
        "_level",
        "_since",
        "budget",
        "floor",
        "limit",
        "paused_until",
        "probe_hold",
        "rate",
        "recovery_period",
        "recovery_step",
        "window",
    )

    def __init__(
        self,
        budget: float | None = None,
        *,
        floor: float = 1.0,
        recovery_period: float = 5.0,
        recovery_step: float = 0.1,
        window: float = 1.0,
        probe_hold: int = 6,
        demand: float = math.inf,
    ) -> None:
        self.budget = math.inf if budget is None else budget
        self.floor = min(floor, self.budget)
        self.recovery_period = recovery_period
        self.recovery_step = recovery_step
        self.window = window
        self.probe_hold = probe_hold
        self.paused_until = -math.inf
        self.limit = math.inf
        #: The controlled rate, before the demand and the budget bound it (inf: not limited).
        self._level = math.inf
        #: What the caller says could be useful (see ``on_demand``).
        self._demand = demand
        #: Start of the current quiet stretch (recovery steps are counted from it).
        self._since = -math.inf
        #: Quiet steps spent at the limit so far.
        self._held = 0
        self._last_cut = -math.inf
        self._answers: deque[float] = deque()
        self.rate = self._bounded()

    def _ceiling(self) -> float:
        return min(self.budget, max(self.floor, self._demand))

    def _bounded(self) -> float:
        return max(self.floor, min(self._level, self._ceiling()))

    def on_demand(self, now: float, demand: float) -> None:
        """The most requests per second that could be useful at ``now``.

        For the poller: pending tasks / ``min_interval``. Steps earned under the previous
        demand are applied first.
        """
        self.current_rate(now)
        self._demand = demand

    def on_answered(self, now: float) -> None:
        """A request was answered (not 429) at ``now``."""
        answers = self._answers
        answers.append(now)
        horizon = now - self.window
        while answers[0] <= horizon:
            answers.popleft()

    def served(self, now: float) -> float:
        """Requests per second the server answered over the last ``window`` seconds."""
        horizon = now - self.window
        return sum(1 for t in self._answers if t > horizon) / self.window

    def on_rate_limited(self, now: float, retry_after: float) -> None:
        """A request was answered 429: pause for ``retry_after`` seconds and cut the rate."""
        rate = self.current_rate(now)  # steps earned before this 429 still count
        self.paused_until = max(self.paused_until, now + retry_after)
        # One storm of 429s from requests already in flight counts as one signal; the first
        # 429 at the full allowance always cuts.
        if now - self._last_cut >= retry_after or rate >= self._ceiling():
            served = self.served(now)
            self.limit = max(self.floor, min(rate, served))
            self._level = max(self.floor, min(rate / 2.0, served))
            self._held = 0
            self._last_cut = now
            self.rate = self._bounded()
        self._since = now

    def current_rate(self, now: float) -> float:
        """The rate allowed at ``now``, after any recovery earned since the last change."""
        start = max(self._since, self.paused_until)
        if now > start:
            if self._level >= self._ceiling():
                self._since = now  # demand is met: no credit for growing a budget nobody uses
            else:
                steps = int((now - start) // self.recovery_period)
                if steps > 0:
                    self._since = start + steps * self.recovery_period
                    self._recover(steps)
        self.rate = self._bounded()
        return self.rate

    def _recover(self, steps: int) -> None:
        growth = 1.0 + self.recovery_step
        ceiling = self._ceiling()
        for _ in range(steps):
            level = self._level
            if level >= ceiling:
                break
            if level < self.limit:
                self._level = min(self.limit, level * growth)
            elif self._held < self.probe_hold:
                self._held += 1
            else:
                self._level = level * growth
        if self._level >= ceiling:
            # Back at the full allowance: forget the cut (the next 429 measures afresh).
            self._level = math.inf
            self.limit = math.inf
