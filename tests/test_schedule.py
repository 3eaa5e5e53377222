"""The poll schedule and the poll queue, on a fake clock (pure)."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ketchup_async import PollPolicy
from ketchup_async._schedule import TICK_FRACTION, DurationModel, PollQueue, Schedule


def test_first_poll_near_the_prior_before_any_job_finished() -> None:
    """With no history the first poll lands at the prior's quantile, below its median."""
    schedule = Schedule(PollPolicy(expected_duration=10.0, first_poll_quantile=0.35))
    due = schedule.first_due(100.0)
    assert 100.0 + 6.0 < due < 100.0 + 10.0


def test_first_poll_follows_learned_durations() -> None:
    """After jobs take ~40 s the first poll moves just below 40 s, whatever the prior said."""
    schedule = Schedule(PollPolicy(expected_duration=10.0))
    for _ in range(200):
        schedule.model.observe(40.0)
    assert 32.0 < schedule.first_due(0.0) < 40.0


def test_model_learns_median_and_spread() -> None:
    """The model's median and sigma follow a log-normal sample."""
    model = DurationModel(1.0)
    for i in range(1, 400):
        model.observe(8.0 * math.exp(0.5 * math.sin(i)))  # spread ~0.35 around 8
    assert model.median == pytest.approx(8.0, rel=0.1)
    assert 0.2 < model.sigma < 0.5


def test_model_ignores_nonsense_durations() -> None:
    """Zero, negative and infinite durations teach nothing."""
    model = DurationModel(5.0)
    for bad in (0.0, -1.0, math.inf, math.nan):
        model.observe(bad)
    assert model.count == 0
    assert model.median == pytest.approx(5.0)


def _window_schedule(**overrides: float) -> Schedule:
    """Render times learned as log-normal, median 8 s, sigma 0.5: the window is 8 s to 8 e^0.5."""
    options = {"min_interval": 1.0, "max_interval": 4.0, "first_poll_quantile": 0.5}
    options.update(dense_until=NormalDist().cdf(1.0), backoff=1.5, **overrides)
    return Schedule(PollPolicy(**options), DurationModel(8.0, prior_sigma=0.5))


_DENSE_END = 8.0 * math.exp(0.5)


def test_window_spans_the_two_quantiles_of_the_learned_render_time() -> None:
    """The dense window runs from first_poll_quantile to dense_until of the model."""
    first, end = _window_schedule().window()
    assert first == pytest.approx(8.0, rel=1e-12)
    assert end == pytest.approx(_DENSE_END, rel=1e-9)


def test_first_poll_at_the_start_of_the_window() -> None:
    """The first query lands at the first_poll_quantile of the learned render time."""
    assert _window_schedule().first_due(100.0) == pytest.approx(108.0, rel=1e-12)


def test_inside_the_window_a_job_is_queried_every_min_interval() -> None:
    """From the window's start to its end the next query is min_interval later."""
    schedule = _window_schedule()
    assert schedule.next_due(108.0, 1, submitted_at=100.0) == pytest.approx(109.0)
    assert schedule.next_due(112.5, 5, submitted_at=100.0) == pytest.approx(113.5)
    assert schedule.next_due(100.0 + _DENSE_END, 9, submitted_at=100.0) == pytest.approx(
        101.0 + _DENSE_END
    )


def test_after_the_window_intervals_grow_by_backoff_to_the_ceiling() -> None:
    """Past the window each interval is backoff times the last, capped at max_interval."""
    schedule = _window_schedule()
    age, intervals = _DENSE_END, []
    for polls in range(1, 6):
        due = schedule.next_due(age, polls, submitted_at=0.0)
        intervals.append(due - age)
        age = due
    assert intervals == pytest.approx([1.0, 1.5, 2.25, 3.375, 4.0])


def test_a_job_queried_before_its_window_waits_for_the_window() -> None:
    """A query before the window's start (a resumed task) is followed by one at the start."""
    schedule = _window_schedule(max_interval=15.0)
    assert schedule.next_due(102.0, 1, submitted_at=100.0) == pytest.approx(108.0)


def test_a_long_wait_for_the_window_is_capped_at_max_interval() -> None:
    """Waiting for a window far ahead still queries within max_interval."""
    schedule = _window_schedule(max_interval=3.0)
    assert schedule.next_due(101.0, 1, submitted_at=100.0) == pytest.approx(104.0)


def test_a_query_just_before_the_window_still_waits_min_interval() -> None:
    """Answered 0.3 s before the window opens, the next query is min_interval later, not at it."""
    schedule = _window_schedule(max_interval=15.0)
    assert schedule.next_due(107.7, 1, submitted_at=100.0) == pytest.approx(108.7)


def test_the_window_follows_each_learning_step() -> None:
    """One finished job moves the window at once (the cached offsets are refreshed)."""
    schedule = _window_schedule()
    assert schedule.first_due(0.0) == pytest.approx(8.0)
    schedule.model.observe(8.0 * math.e)  # weight 5: the log-mean moves by 1/5
    assert schedule.first_due(0.0) == pytest.approx(8.0 * math.exp(0.2), rel=1e-12)
    # ... and its spread too: variance (1 - 1/5) * (0.25 + 1/5) = 0.36, sigma 0.6.
    assert schedule.window()[1] == pytest.approx(8.0 * math.exp(0.2 + 0.6), rel=1e-9)


def test_default_policy_window() -> None:
    """The defaults: first query at the 0.3 quantile, every second up to the 0.95, then x1.5."""
    policy = PollPolicy()
    assert (policy.first_poll_quantile, policy.dense_until, policy.backoff) == (0.3, 0.95, 1.5)
    assert (policy.min_interval, policy.max_interval) == (1.0, 15.0)


def test_first_poll_never_before_min_interval() -> None:
    """Even with tiny learned durations the first poll waits min_interval."""
    schedule = Schedule(PollPolicy(min_interval=1.0))
    for _ in range(100):
        schedule.model.observe(0.01)
    assert schedule.first_due(50.0) == pytest.approx(51.0)


def test_floor_keeps_min_interval_between_two_polls() -> None:
    """A due time closer than min_interval to the last poll is pushed back."""
    schedule = Schedule(PollPolicy(min_interval=1.0))
    assert schedule.floor(10.0, 10.2) == pytest.approx(11.0)
    assert schedule.floor(10.0, 12.0) == 12.0
    assert schedule.floor(None, 3.0) == 3.0


def test_errors_back_off_exponentially() -> None:
    """Consecutive transient errors double the retry interval up to max_interval."""
    schedule = Schedule(PollPolicy(min_interval=1.0, max_interval=8.0))
    assert [schedule.retry_due(0.0, n) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 8.0, 8.0]


def test_callback_jobs_get_a_late_safety_net() -> None:
    """Jobs with a callback are first polled well after their expected completion."""
    policy = PollPolicy(expected_duration=10.0, callback_grace=30.0, max_interval=15.0)
    schedule = Schedule(policy)
    plain = schedule.first_due(0.0)
    net = schedule.first_due(0.0, has_callback=True)
    assert net > schedule.model.quantile(0.99) + 29.0 > plain
    later = schedule.next_due(0.0, 1, submitted_at=0.0, has_callback=True)
    assert later > schedule.next_due(0.0, 1, submitted_at=0.0)


def test_queue_gives_most_overdue_first() -> None:
    """Among due items the earliest-due comes first; future items wait."""
    queue: PollQueue[str] = PollQueue(lambda item, due: True)
    for due, item in [(5.0, "c"), (1.0, "a"), (3.0, "b"), (9.0, "late")]:
        queue.push(due, item)
    assert [queue.pop_due(6.0) for _ in range(4)] == ["a", "b", "c", None]
    assert queue.next_due() == 9.0


def test_queue_drops_stale_entries() -> None:
    """Entries whose item was rescheduled or finished are skipped."""
    current = {"a": 2.0, "b": 1.0}
    queue: PollQueue[str] = PollQueue(lambda item, due: current.get(item) == due)
    queue.push(1.0, "a")  # stale: "a" was rescheduled to 2.0
    queue.push(2.0, "a")
    queue.push(1.0, "b")
    del current["b"]  # finished
    assert queue.next_due() == 2.0
    assert queue.pop_due(5.0) == "a"
    assert queue.pop_due(5.0) is None


def test_censored_learning_recovers_the_true_median() -> None:
    """Learning from brackets (finished by the first, overdue poll) finds the true median."""
    import random

    rng = random.Random(4)
    model = DurationModel(10.0)
    biased = DurationModel(10.0)
    for _ in range(3000):
        render = 8.0 * math.exp(0.5 * rng.gauss(0.0, 1.0))
        first = 12.0 + rng.uniform(0.0, 3.0)  # an overdue first poll, independent of the render
        polls = [first + 2.0 * k for k in range(200)]
        k = next(k for k, t in enumerate(polls) if t >= render)
        model.observe_between(0.0 if k == 0 else polls[k - 1], polls[k])
        biased.observe(polls[k])
    assert model.median == pytest.approx(8.0, rel=0.12)
    assert 0.35 < model.sigma < 0.65
    assert biased.median > 11.0  # what taking the detection time as render time learns


def test_bracket_in_a_far_tail_still_teaches() -> None:
    """A bracket far outside the fit falls back to its middle instead of dividing by ~0."""
    model = DurationModel(1.0, prior_sigma=0.1)
    model.observe_between(1000.0, 1100.0)
    assert model.count == 1
    assert model.median > 1.0


@given(
    polls=st.integers(min_value=1, max_value=200),
    now=st.floats(min_value=0, max_value=1e6),
    last=st.floats(min_value=0, max_value=1e6),
    min_interval=st.floats(min_value=0.01, max_value=10),
    extra=st.floats(min_value=0, max_value=100),
    callback=st.booleans(),
    age=st.floats(min_value=0, max_value=1e4),
)
def test_schedule_invariants(
    polls: int,
    now: float,
    last: float,
    min_interval: float,
    extra: float,
    callback: bool,
    age: float,
) -> None:
    """Every due time is in the future, after the floor, and within max_interval (no callback)."""
    policy = PollPolicy(min_interval=min_interval, max_interval=min_interval + extra)
    schedule = Schedule(policy)
    nxt = schedule.next_due(now, polls, submitted_at=now - age, has_callback=callback)
    due = schedule.floor(last, nxt)
    assert due >= last + min_interval - 1e-9
    assert due >= now + min_interval - 1e-9
    if not callback:
        assert nxt <= now + policy.max_interval + 1e-9


@given(
    due=st.floats(min_value=0, max_value=1e7),
    min_interval=st.floats(min_value=0.01, max_value=10),
)
def test_align_never_moves_a_due_time_earlier_nor_by_more_than_a_tick(
    due: float, min_interval: float
) -> None:
    """Aligning to the tick grid delays a due time by at most one tick."""
    schedule = Schedule(PollPolicy(min_interval=min_interval))
    aligned = schedule.align(due)
    assert due <= aligned <= due + schedule.tick * 1.001


def test_due_times_within_one_tick_share_one_aligned_time() -> None:
    """Queries due within the same tick are released together (one wake-up for the batch)."""
    schedule = Schedule(PollPolicy(min_interval=1.0))
    assert schedule.tick == pytest.approx(0.1)
    assert schedule.align(1234.51) == schedule.align(1234.55) == schedule.align(1234.6)
    assert schedule.align(1234.6) == pytest.approx(1234.6)
    assert schedule.align(math.inf) == math.inf


@given(now=st.floats(min_value=0, max_value=1e7), min_interval=st.floats(0.01, 10))
def test_next_tick_is_the_next_grid_point(now: float, min_interval: float) -> None:
    """next_tick is strictly after now, at most one tick later, and on the grid."""
    schedule = Schedule(PollPolicy(min_interval=min_interval))
    tick = schedule.next_tick(now)
    assert now < tick <= now + schedule.tick * 1.001
    assert schedule.align(tick) == pytest.approx(tick)


# Exact formulas (each pins one operator of the pure schedule).

PHI = NormalDist()


def _model(median: float = 1.0, sigma: float = 1.0, weight: float = 4.0) -> DurationModel:
    return DurationModel(median, prior_sigma=sigma, prior_weight=weight)


def test_model_starts_at_its_prior() -> None:
    """Before any observation the fit is exactly the prior."""
    model = DurationModel(7.0, prior_sigma=0.3)
    assert (model.median, model.sigma, model.count) == (pytest.approx(7.0), 0.3, 0)
    assert DurationModel(7.0).sigma == 0.5
    assert DurationModel(7.0).max_weight == 500.0


def test_one_observation_moves_the_fit_by_one_over_the_weight() -> None:
    """The prior weighs prior_weight observations: one more moves the mean by 1/(w+1)."""
    model = _model(median=1.0, sigma=1.0, weight=4.0)
    model.observe(math.e**2)  # delta = 2 in log space; alpha = 1/5
    assert model.count == 1
    assert math.log(model.median) == pytest.approx(0.4, rel=1e-12)
    assert model.sigma == pytest.approx(math.sqrt(0.8 * (1.0 + 0.2 * 4.0)), rel=1e-12)


def test_the_default_prior_weighs_four_observations() -> None:
    """DurationModel's default prior_weight is 4."""
    model = DurationModel(1.0)
    model.observe(math.e)
    assert math.log(model.median) == pytest.approx(0.2, rel=1e-12)


def test_the_weight_stops_at_max_weight() -> None:
    """Past max_weight every observation counts as 1/max_weight."""
    model = DurationModel(1.0, prior_sigma=1.0, prior_weight=10.0, max_weight=10.0)
    model.observe(math.e)
    assert math.log(model.median) == pytest.approx(0.1, rel=1e-12)
    assert model.sigma == pytest.approx(math.sqrt(0.9 * (1.0 + 0.1)), rel=1e-12)


def test_sigma_is_floored_at_five_hundredths() -> None:
    """A collapsed spread is floored at 0.05; anything above is kept."""
    assert _model(sigma=0.001).sigma == 0.05
    assert _model(sigma=0.05).sigma == 0.05
    assert _model(sigma=0.051).sigma == pytest.approx(0.051)


def test_quantile_is_the_log_normal_quantile() -> None:
    """quantile(q) is exp(mean + sigma * z_q)."""
    model = _model(median=10.0, sigma=0.5)
    assert model.quantile(0.5) == pytest.approx(10.0, rel=1e-12)
    assert model.quantile(0.9) == pytest.approx(10.0 * math.exp(0.5 * PHI.inv_cdf(0.9)))


def _truncated(a: float, b: float) -> tuple[float, float]:
    """Mean and second moment of a standard normal truncated to [a, b]."""
    pdf_a = 0.0 if a == -math.inf else PHI.pdf(a)
    a_pdf_a = 0.0 if a == -math.inf else a * PHI.pdf(a)
    mass = PHI.cdf(b) - (0.0 if a == -math.inf else PHI.cdf(a))
    mean = (pdf_a - PHI.pdf(b)) / mass
    return mean, 1.0 + (a_pdf_a - b * PHI.pdf(b)) / mass


@pytest.mark.parametrize(
    ("low", "high", "a", "b"),
    [
        (0.0, 1.0, -math.inf, 0.0),  # finished by the first poll: below the median
        (1.0, math.e, 0.0, 1.0),  # between the median and one sigma above it
        (math.exp(-1.0), math.e, -1.0, 1.0),  # symmetric: no shift, a narrower spread
        (math.exp(0.5), math.exp(2.0), 0.5, 2.0),
        (math.exp(-2.0), math.exp(-0.5), -2.0, -0.5),
    ],
)
def test_bracket_update_is_the_truncated_normal_em_step(
    low: float, high: float, a: float, b: float
) -> None:
    """observe_between updates with the exact truncated-normal moments of the bracket."""
    model = _model(median=1.0, sigma=1.0, weight=4.0)
    model.observe_between(low, high)
    delta, square = _truncated(a, b)
    assert model.count == 1
    assert math.log(model.median) == pytest.approx(0.2 * delta, rel=1e-9, abs=1e-12)
    assert model.sigma**2 == pytest.approx(0.8 * (1.0 + 0.2 * square), rel=1e-9)


def test_bracket_update_scales_with_sigma_and_mean() -> None:
    """The bracket is read in units of the current fit (mean 1, sigma 2 in log space)."""
    model = _model(median=math.e, sigma=2.0, weight=4.0)
    model.observe_between(math.e, math.e**3)  # a = 0, b = 1
    delta, square = _truncated(0.0, 1.0)
    assert math.log(model.median) == pytest.approx(1.0 + 0.2 * 2.0 * delta, rel=1e-9)
    assert model.sigma**2 == pytest.approx(0.8 * (4.0 + 0.2 * 4.0 * square), rel=1e-9)


@pytest.mark.parametrize(
    ("low", "high"),
    [
        (0.0, 0.0),
        (-1.0, 0.0),
        (1.0, -1.0),
        (0.0, math.inf),
        (0.0, math.nan),
        (2.0, 2.0),
        (3.0, 2.0),
    ],
)
def test_a_bracket_that_is_not_one_teaches_nothing(low: float, high: float) -> None:
    """An empty, inverted, infinite or non-positive bracket is ignored."""
    model = _model()
    model.observe_between(low, high)
    assert (model.count, model.median, model.sigma) == (0, 1.0, 1.0)


def test_a_far_tail_bracket_learns_its_geometric_middle() -> None:
    """A bracket where the fit has no mass teaches sqrt(low * high) as a render time."""
    model, twin = _model(sigma=0.1), _model(sigma=0.1)
    model.observe_between(1000.0, 1100.0)
    twin.observe(math.sqrt(1000.0 * 1100.0))
    assert (model.median, model.sigma, model.count) == (twin.median, twin.sigma, 1)


def test_a_far_tail_bracket_below_one_learns_its_geometric_middle() -> None:
    """The geometric middle is used for any positive low, below 1 s too."""
    model, twin = _model(median=1000.0, sigma=0.1), _model(median=1000.0, sigma=0.1)
    model.observe_between(0.5, 0.9)
    twin.observe(math.sqrt(0.5 * 0.9))
    assert (model.median, model.sigma, model.count) == (twin.median, twin.sigma, 1)


def test_a_far_tail_bracket_from_zero_learns_its_top() -> None:
    """A bracket from 0 far below the fit teaches its top as a render time."""
    model, twin = _model(median=1000.0, sigma=0.1), _model(median=1000.0, sigma=0.1)
    model.observe_between(0.0, 1.0)
    twin.observe(1.0)
    assert (model.median, model.sigma, model.count) == (twin.median, twin.sigma, 1)


def test_tick_is_a_tenth_of_min_interval() -> None:
    """The alignment grid is min_interval * TICK_FRACTION (0.1)."""
    assert TICK_FRACTION == 0.1
    assert Schedule(PollPolicy(min_interval=2.0)).tick == pytest.approx(0.2)


def test_first_due_is_exactly_the_quantile_and_follows_learning() -> None:
    """The first poll is at the first_poll_quantile of the fit, recomputed after learning."""
    policy = PollPolicy(expected_duration=10.0, first_poll_quantile=0.35, min_interval=0.5)
    schedule = Schedule(policy)
    assert schedule.first_due(100.0) == pytest.approx(100.0 + schedule.model.quantile(0.35))
    schedule.model.observe(100.0)
    assert schedule.first_due(0.0) == pytest.approx(schedule.model.quantile(0.35))
    schedule.model.observe(100.0)
    assert schedule.first_due(0.0) == pytest.approx(schedule.model.quantile(0.35))


def test_first_due_of_a_callback_job_is_exact() -> None:
    """With a callback: the 0.99 quantile plus callback_grace."""
    schedule = Schedule(PollPolicy(expected_duration=10.0, callback_grace=30.0))
    assert schedule.first_due(5.0, has_callback=True) == pytest.approx(
        5.0 + schedule.model.quantile(0.99) + 30.0
    )


def test_a_given_model_is_used() -> None:
    """A model passed in is the schedule's model."""
    model = DurationModel(3.0)
    assert Schedule(PollPolicy(), model).model is model


@pytest.mark.parametrize("learned", [1, 2])
def test_a_model_that_already_learned_sets_the_first_window(learned: int) -> None:
    """The window comes from a given model at once, whatever it learned before."""
    model = DurationModel(3.0)
    for _ in range(learned):
        model.observe(30.0)
    schedule = Schedule(PollPolicy(min_interval=0.5, first_poll_quantile=0.3), model)
    assert schedule.first_due(0.0) == pytest.approx(model.quantile(0.3), rel=1e-12)
    assert schedule.window()[1] == pytest.approx(model.quantile(0.95), rel=1e-12)


def test_callback_backoff_exponent_is_bounded() -> None:
    """A huge poll count of a callback job neither overflows nor exceeds backoff**32."""
    schedule = Schedule(PollPolicy(min_interval=1.0, max_interval=1e290, backoff=2.0))
    for polls in (32, 33, 10**9):
        due = schedule.next_due(0.0, polls, submitted_at=0.0, has_callback=True)
        assert due == 1e290 * 2.0**32


def test_callback_polls_back_off_from_max_interval() -> None:
    """With a callback, poll n waits max_interval * backoff**n."""
    schedule = Schedule(PollPolicy(min_interval=1.0, max_interval=4.0, backoff=3.0))
    waits = [
        schedule.next_due(1.0, n, submitted_at=0.0, has_callback=True) - 1.0 for n in (0, 1, 2)
    ]
    assert waits == [4.0, 12.0, 36.0]


def test_retry_interval_doubles_from_min_interval() -> None:
    """Error n waits min_interval * 2**(n-1), clamped; the exponent is bounded at 32."""
    schedule = Schedule(PollPolicy(min_interval=0.5, max_interval=3.0))
    assert [schedule.retry_due(1.0, n) - 1.0 for n in (0, 1, 2, 3, 4)] == [
        0.5,
        0.5,
        1.0,
        2.0,
        3.0,
    ]
    big = Schedule(PollPolicy(min_interval=1.0, max_interval=1e300))
    assert big.retry_due(0.0, 33) == 2.0**32
    assert big.retry_due(0.0, 10**9) == 2.0**32


def test_floor_at_exactly_min_interval() -> None:
    """A due time exactly min_interval after the last poll is kept."""
    schedule = Schedule(PollPolicy(min_interval=2.0))
    assert schedule.floor(10.0, 12.0) == 12.0
    assert schedule.floor(10.0, 11.0) == 12.0


def test_align_exact_points() -> None:
    """On the grid a due time stays; just past a grid point (float noise) it stays too."""
    schedule = Schedule(PollPolicy(min_interval=1.0))
    assert schedule.align(1.0) == 1.0
    assert schedule.align(1.0 + 1e-9) == 1.0 + 1e-9
    assert schedule.align(1.01) == pytest.approx(1.1)
    assert schedule.align(-math.inf) == -math.inf
    assert math.isnan(schedule.align(math.nan))


def test_next_tick_exact_points() -> None:
    """next_tick is the next grid point, even where float rounding lands on now itself."""
    schedule = Schedule(PollPolicy(min_interval=1.0))
    assert schedule.next_tick(1.0) == pytest.approx(1.1)
    assert schedule.next_tick(1.05) == pytest.approx(1.1)
    assert schedule.next_tick(541.4) == pytest.approx(541.5)
    assert schedule.next_tick(541.4) > 541.4


def test_an_empty_queue() -> None:
    """An empty queue has no due time, pops nothing and has length 0."""
    queue: PollQueue[str] = PollQueue(lambda item, due: True)
    assert (queue.next_due(), queue.pop_due(1e9), len(queue)) == (None, None, 0)


def test_pop_due_at_exactly_the_due_time() -> None:
    """An item is due at its due time, not a moment before."""
    queue: PollQueue[str] = PollQueue(lambda item, due: True)
    queue.push(5.0, "a")
    assert queue.pop_due(4.999) is None
    assert len(queue) == 1
    assert queue.pop_due(5.0) == "a"
    assert len(queue) == 0


def test_equal_due_times_leave_in_push_order() -> None:
    """Items due at the same time come out first in, first out."""
    queue: PollQueue[str] = PollQueue(lambda item, due: True)
    for item in "cab":
        queue.push(1.0, item)
    assert [queue.pop_due(1.0) for _ in range(3)] == ["c", "a", "b"]


def test_is_live_is_asked_with_the_item_and_its_due_time() -> None:
    """Liveness is judged on (item, due)."""
    asked: list[tuple[str, float]] = []
    queue: PollQueue[str] = PollQueue(lambda item, due: asked.append((item, due)) is None)
    queue.push(3.0, "a")
    assert queue.next_due() == 3.0
    assert asked == [("a", 3.0)]


def test_compact_drops_every_stale_entry_and_keeps_the_order() -> None:
    """compact removes stale entries anywhere in the heap; the live ones keep their order."""
    live = {"a": 1.0, "c": 3.0, "e": 5.0, "d": 9.0}  # "d" was rescheduled, "b" finished
    queue: PollQueue[str] = PollQueue(lambda item, due: live.get(item) == due)
    for due, item in [(5.0, "e"), (2.0, "b"), (1.0, "a"), (4.0, "d"), (3.0, "c")]:
        queue.push(due, item)
    assert len(queue) == 5
    queue.compact()
    assert len(queue) == 3
    assert [queue.pop_due(10.0) for _ in range(4)] == ["a", "c", "e", None]


def test_clear_empties_the_queue() -> None:
    """clear drops every entry."""
    queue: PollQueue[str] = PollQueue(lambda item, due: True)
    queue.push(1.0, "a")
    queue.push(2.0, "b")
    queue.clear()
    assert (len(queue), queue.next_due()) == (0, None)
