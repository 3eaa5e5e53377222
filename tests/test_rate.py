"""The adaptive rate controller on a fake clock (pure): exact figures, not loose bounds."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ketchup_async._rate import RateController

EXACT = 1e-12


def _answered(rate: RateController, count: int, start: float, end: float) -> None:
    """``count`` answers evenly spread over ``[start, end)``."""
    for i in range(count):
        rate.on_answered(start + (end - start) * i / count)


def _adaptive(**kwargs: float) -> RateController:
    """An adaptive controller (no budget) with a window != 1 and a floor != 1."""
    options: dict[str, float] = {"floor": 0.5, "window": 2.0, "recovery_period": 5.0}
    options.update(kwargs)
    return RateController(None, **options)  # type: ignore[arg-type]


def test_defaults_are_pinned() -> None:
    """The defaults: no budget, floor 1/s, 10% per 5 s, 1 s window, hold 6 steps, no pause."""
    rate = RateController()
    assert rate.budget == math.inf
    assert rate.floor == 1.0
    assert rate.recovery_period == 5.0
    assert rate.recovery_step == 0.1
    assert rate.window == 1.0
    assert rate.probe_hold == 6
    assert rate.paused_until == -math.inf
    assert rate.limit == math.inf
    assert rate.rate == math.inf  # no budget and no demand known: not a bound


def test_floor_never_exceeds_the_budget() -> None:
    """A budget below the floor lowers the floor to it."""
    assert RateController(0.25, floor=1.0).floor == 0.25


def test_follows_demand_before_any_429() -> None:
    """Until the server refuses, the rate is the demand, neither more nor less."""
    rate = _adaptive(demand=0.0)
    assert rate.rate == 0.5  # no demand: the floor
    rate.on_demand(0.0, 300.0)
    assert rate.current_rate(0.0) == 300.0
    rate.on_demand(1.0, 2000.0)
    assert rate.current_rate(1.0) == 2000.0
    rate.on_demand(2.0, 0.1)
    assert rate.current_rate(2.0) == 0.5  # never below the floor


def test_an_explicit_budget_is_a_hard_ceiling() -> None:
    """``budget`` bounds the rate whatever the demand."""
    rate = RateController(40.0, demand=0.0)
    rate.on_demand(0.0, 1000.0)
    assert rate.current_rate(0.0) == 40.0
    rate.on_demand(1.0, 30.0)
    assert rate.current_rate(1.0) == 30.0


def test_served_divides_by_the_window() -> None:
    """``served`` counts answers strictly inside the last window, per second."""
    rate = _adaptive()
    for t in (0.5, 1.0, 2.0, 2.5):
        rate.on_answered(t)
    assert rate.served(2.5) == pytest.approx(3 / 2.0, rel=EXACT)  # 0.5 is on the horizon
    assert rate.served(10.0) == 0.0


def test_first_429_cuts_to_what_the_server_served() -> None:
    """A 1,000/s allowance meeting a 10/s server comes down to 10/s and remembers it."""
    rate = _adaptive(demand=1000.0)
    _answered(rate, 20, 8.05, 10.0)  # 20 answers over the 2 s window: 10/s
    rate.on_rate_limited(10.0, 1.0)
    assert rate.paused_until == 11.0
    assert rate.rate == pytest.approx(10.0, rel=EXACT)
    assert rate.limit == pytest.approx(10.0, rel=EXACT)


def test_429_cuts_to_at_most_half() -> None:
    """When the server served the whole rate, a 429 halves it."""
    rate = RateController(8.0, window=2.0)
    _answered(rate, 16, 8.05, 10.0)  # 8/s: the whole budget
    rate.on_rate_limited(10.0, 1.0)
    assert rate.rate == pytest.approx(4.0, rel=EXACT)
    assert rate.limit == pytest.approx(8.0, rel=EXACT)


def test_429_cuts_below_an_explicit_budget() -> None:
    """An explicit budget is a ceiling, not a promise: a 429 still cuts below it."""
    rate = RateController(40.0, window=2.0)
    _answered(rate, 6, 8.5, 10.0)
    rate.on_rate_limited(10.0, 1.0)
    assert rate.rate == pytest.approx(3.0, rel=EXACT)


def test_429_after_silence_drops_to_the_floor() -> None:
    """Refused with nothing answered in the window: the rate falls to the floor at once."""
    rate = _adaptive(demand=500.0)
    rate.on_rate_limited(50.0, 1.0)
    assert rate.rate == 0.5
    assert rate.limit == 0.5


def test_rate_floor_is_absolute() -> None:
    """However many 429s, the rate never goes below the floor."""
    rate = _adaptive(demand=2000.0)
    for i in range(50):
        rate.on_rate_limited(i * 10.0, 1.0)
        assert rate.rate >= 0.5
    assert rate.rate == 0.5


def test_a_storm_of_429s_counts_once() -> None:
    """429s from queries already in flight within Retry-After halve the rate once."""
    rate = RateController(16.0)
    _answered(rate, 16, 9.0, 10.0)
    rate.on_rate_limited(10.0, 1.0)
    rate.on_rate_limited(10.1, 1.0)
    rate.on_rate_limited(10.9, 1.0)
    assert rate.rate == 8.0
    assert rate.paused_until == pytest.approx(11.9, rel=EXACT)
    _answered(rate, 8, 10.5, 11.5)
    rate.on_rate_limited(11.9, 1.0)  # Retry-After has passed since the cut: a new signal
    assert rate.rate == 4.0


def test_recovery_over_several_steps() -> None:
    """Quiet steps (counted from the pause's end) add 10% each, exactly, up to the limit."""
    rate = RateController(10.0, recovery_period=5.0, recovery_step=0.1)
    _answered(rate, 10, 99.05, 100.0)  # the server was answering the full budget
    rate.on_rate_limited(100.0, 2.0)
    assert rate.current_rate(101.0) == 5.0  # paused until 102
    assert rate.current_rate(106.9) == 5.0  # only 4.9 s quiet since the pause ended
    expected = [5.5, 6.05, 6.655, 7.3205, 8.05255, 8.857805, 9.7435855, 10.0]
    for step, value in enumerate(expected, start=1):
        assert rate.current_rate(102.0 + 5.0 * step) == pytest.approx(value, rel=EXACT)
    assert rate.limit == math.inf  # back at the full budget: the cut is forgotten


def test_recovery_keeps_the_remainder_of_a_step() -> None:
    """Looking in the middle of a step does not restart the step's clock."""
    rate = RateController(10.0, recovery_period=5.0, recovery_step=0.25)
    _answered(rate, 10, 99.05, 100.0)
    rate.on_rate_limited(100.0, 2.0)
    assert rate.current_rate(109.5) == pytest.approx(6.25, rel=EXACT)  # 1 step + 2.5 s
    assert rate.current_rate(112.0) == pytest.approx(7.8125, rel=EXACT)  # the 2nd step
    assert rate.current_rate(118.0) == pytest.approx(9.765625, rel=EXACT)  # 3 steps, +1 s


def test_several_steps_at_once() -> None:
    """A long quiet stretch earns all its steps in one look."""
    rate = RateController(10.0, recovery_period=5.0, recovery_step=0.1)
    _answered(rate, 10, 99.05, 100.0)
    rate.on_rate_limited(100.0, 2.0)
    assert rate.current_rate(102.0 + 5.0 * 3 + 4.0) == pytest.approx(6.655, rel=EXACT)


def test_holds_at_the_limit_then_probes_upward_under_unmet_demand() -> None:
    """At the measured limit the rate holds ``probe_hold`` steps, then grows 10% a step."""
    rate = _adaptive(demand=1000.0)
    _answered(rate, 20, 8.05, 10.0)
    rate.on_rate_limited(10.0, 1.0)  # cut to 10/s, quiet from 11
    assert rate.current_rate(11.0 + 5.0 * 6) == pytest.approx(10.0, rel=EXACT)  # 6 held
    assert rate.current_rate(11.0 + 5.0 * 7) == pytest.approx(11.0, rel=EXACT)
    assert rate.current_rate(11.0 + 5.0 * 8) == pytest.approx(12.1, rel=EXACT)
    assert rate.current_rate(11.0 + 5.0 * 9) == pytest.approx(13.31, rel=EXACT)


def test_probe_hold_is_configurable() -> None:
    """``probe_hold=2`` probes after two steps at the limit."""
    rate = _adaptive(demand=1000.0, probe_hold=2)
    _answered(rate, 20, 8.05, 10.0)
    rate.on_rate_limited(10.0, 1.0)
    assert rate.current_rate(11.0 + 5.0 * 2) == pytest.approx(10.0, rel=EXACT)
    assert rate.current_rate(11.0 + 5.0 * 3) == pytest.approx(11.0, rel=EXACT)


def test_a_failed_probe_restarts_the_hold() -> None:
    """A 429 while probing cuts (to half) and the next climb holds at the new limit again."""
    rate = _adaptive(demand=1000.0, probe_hold=1)
    _answered(rate, 20, 8.05, 10.0)
    rate.on_rate_limited(10.0, 1.0)
    assert rate.current_rate(11.0 + 5.0 * 2) == pytest.approx(11.0, rel=EXACT)
    _answered(rate, 22, 19.02, 21.0)  # 11/s answered, then refused
    rate.on_rate_limited(21.0, 1.0)
    assert rate.rate == pytest.approx(5.5, rel=EXACT)
    assert rate.limit == pytest.approx(11.0, rel=EXACT)
    assert rate.current_rate(22.0 + 5.0 * 7) == pytest.approx(10.7179440500, rel=EXACT)
    assert rate.current_rate(22.0 + 5.0 * 9) == pytest.approx(11.0, rel=EXACT)  # up, 1 held
    assert rate.current_rate(22.0 + 5.0 * 10) == pytest.approx(12.1, rel=EXACT)


def test_no_growth_while_demand_is_met() -> None:
    """A budget nobody needs is not grown: quiet time with demand below the rate earns nothing."""
    rate = _adaptive(demand=1000.0, probe_hold=0)
    _answered(rate, 20, 8.05, 10.0)
    rate.on_rate_limited(10.0, 1.0)  # 10/s
    rate.on_demand(12.0, 8.0)
    assert rate.current_rate(500.0) == 8.0  # the demand, not more
    rate.on_demand(500.0, 1000.0)
    assert rate.current_rate(504.9) == pytest.approx(10.0, rel=EXACT)  # no credit from idling
    assert rate.current_rate(505.0) == pytest.approx(11.0, rel=EXACT)


def test_never_above_the_demand_while_recovering() -> None:
    """Recovery stops at the demand (one query per pending task per min_interval)."""
    rate = _adaptive(demand=1000.0, probe_hold=0)
    _answered(rate, 20, 8.05, 10.0)
    rate.on_rate_limited(10.0, 1.0)
    rate.on_demand(11.0, 10.5)
    assert rate.current_rate(11.0 + 5.0) == 10.5  # 11.0 earned, 10.5 allowed


def test_probing_up_to_the_whole_demand_forgets_the_limit() -> None:
    """Once the server accepted the whole demand, the next demand is followed at once."""
    rate = _adaptive(demand=1000.0, probe_hold=0)
    _answered(rate, 20, 8.05, 10.0)
    rate.on_rate_limited(10.0, 1.0)
    rate.on_demand(11.0, 10.5)
    rate.current_rate(16.0)
    assert rate.limit == math.inf
    rate.on_demand(16.0, 900.0)
    assert rate.current_rate(16.0) == 900.0


def test_no_recovery_during_a_pause() -> None:
    """Steps count from the end of the pause, not from the 429."""
    rate = _adaptive(demand=1000.0, probe_hold=0)
    _answered(rate, 20, 8.05, 10.0)
    rate.on_rate_limited(10.0, 7.0)  # paused until 17
    assert rate.current_rate(21.9) == pytest.approx(10.0, rel=EXACT)
    assert rate.current_rate(22.0) == pytest.approx(11.0, rel=EXACT)


_EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["answer", "429", "demand", "look"]),
        st.floats(0.0, 3.0),  # time step
        st.floats(0.0, 5000.0),  # demand or Retry-After
    ),
    max_size=60,
)


@given(events=_EVENTS, budget=st.one_of(st.none(), st.floats(0.1, 3000.0)))
def test_rate_stays_between_the_floor_and_the_demand(
    events: list[tuple[str, float, float]], budget: float | None
) -> None:
    """Whatever happens: floor <= rate <= max(floor, min(budget, demand))."""
    rate = RateController(budget, floor=0.5, window=2.0, demand=0.0)
    now, demand = 0.0, 0.0
    for kind, step, value in events:
        now += step
        if kind == "answer":
            rate.on_answered(now)
        elif kind == "429":
            rate.on_rate_limited(now, value / 1000.0)
        elif kind == "demand":
            demand = value
            rate.on_demand(now, demand)
        current = rate.current_rate(now)
        ceiling = max(rate.floor, min(rate.budget, demand))
        assert rate.floor <= current <= ceiling


def test_an_answer_exactly_one_window_old_is_not_counted() -> None:
    """served() counts answers strictly after now - window, also when asked later."""
    rate = _adaptive()
    rate.on_answered(0.5)
    rate.on_answered(1.0)
    assert rate.served(2.5) == pytest.approx(1 / 2.0, rel=EXACT)


def _cut_at_ten() -> RateController:
    """Demand 1,000/s meets a 10/s server: cut at t=10 to level 10, limit 10."""
    rate = _adaptive(demand=1000.0)
    _answered(rate, 20, 8.05, 10.0)
    rate.on_rate_limited(10.0, 1.0)
    return rate


def test_a_429_exactly_retry_after_past_the_last_cut_cuts_again() -> None:
    """The storm window ends at retry_after: a 429 then is a new signal."""
    rate = _cut_at_ten()
    rate.on_rate_limited(11.0, 1.0)  # 10 answers in (9, 11]: 5/s
    assert (rate.rate, rate.limit) == (pytest.approx(5.0), pytest.approx(5.0))


def test_a_429_at_the_full_allowance_cuts_even_within_a_storm() -> None:
    """Within retry_after of a cut, a 429 still cuts if the rate is back at the ceiling."""
    rate = _cut_at_ten()
    rate.on_demand(10.5, 10.0)  # the ceiling is now the rate itself
    rate.on_rate_limited(10.5, 1.0)  # 15 answers in (8.5, 10.5]: 7.5/s
    assert (rate.rate, rate.limit) == (pytest.approx(5.0), pytest.approx(7.5))


def test_the_limit_is_kept_while_demand_is_met() -> None:
    """At a level equal to the demand nothing grows and the measured limit is remembered."""
    rate = _cut_at_ten()
    rate.on_demand(10.5, 10.0)
    assert rate.current_rate(30.0) == pytest.approx(10.0)
    assert rate.limit == pytest.approx(10.0)


def test_recovering_to_the_budget_in_one_jump_forgets_the_limit() -> None:
    """Many steps at once: back at the budget, the cut is forgotten (limit inf)."""
    rate = RateController(8.0, window=2.0)
    _answered(rate, 16, 8.05, 10.0)
    rate.on_rate_limited(10.0, 1.0)
    assert (rate.rate, rate.limit) == (pytest.approx(4.0), pytest.approx(8.0))
    assert rate.current_rate(11.0 + 5.0 * 20) == 8.0
    assert rate.limit == math.inf
