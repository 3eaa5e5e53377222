"""The best-schedule bound of the benchmark report (benchmarks/frontier.py)."""

from __future__ import annotations

import bisect
import math
import random

from benchmarks.frontier import fewest_queries, poll_frontier


def _lognormal(count: int, seed: int = 3) -> list[float]:
    rng = random.Random(seed)
    return [8.0 * math.exp(0.5 * rng.gauss(0.0, 1.0)) for _ in range(count)]


def _cost(polls: list[float], renders: list[float], lag: float) -> tuple[float, float]:
    """Queries per job and the share of jobs detected within ``lag`` for a fixed schedule."""
    queries = within = 0
    for render in renders:
        index = bisect.bisect_left(polls, render - 1e-9)
        queries += index + 1
        within += polls[index] - render <= lag + 1e-9
    return queries / len(renders), within / len(renders)


def test_identical_render_times_need_one_query() -> None:
    """When every job takes 5 s, one poll at 5 s detects all of them at once."""
    assert fewest_queries([5.0] * 50, 0.5) == 1.0


def test_bound_is_below_every_schedule_meeting_the_target() -> None:
    """No fixed schedule that meets the lag p50 target spends fewer queries than the bound."""
    renders = _lognormal(400)
    bound = fewest_queries(renders, 1.0)
    schedules = [
        [1.0 * k for k in range(1, 80)],  # the naive client: every second from the start
        [6.0 + 1.0 * k for k in range(0, 75)],
        [7.5 + 1.2 * k for k in range(0, 62)],
    ]
    checked = 0
    for polls in schedules:
        queries, within = _cost(polls, renders, 1.0)
        if within >= 0.5:
            checked += 1
            assert bound <= queries + 1e-9
    assert checked >= 2
    assert 1.0 < bound < _cost(schedules[0], renders, 1.0)[0]


def test_tighter_lag_needs_more_queries() -> None:
    """The frontier falls as the lag target loosens."""
    frontier = poll_frontier(_lognormal(300), lags=(0.5, 1.0, 2.0, 4.0))
    queries = [point["queries_per_job"] for point in frontier]
    assert queries == sorted(queries, reverse=True)
    assert queries[0] > queries[-1]


def test_per_task_floor_is_respected() -> None:
    """Jobs spread over 0.4 s cannot be caught within 0.1 s by polls 1 s apart."""
    renders = [5.0 + 0.004 * i for i in range(100)]
    assert math.isnan(fewest_queries(renders, 0.1, min_interval=1.0))
    assert fewest_queries(renders, 0.1, min_interval=0.1) > 1.0


def test_no_jobs_has_no_bound() -> None:
    """An empty run gives nan, not an error."""
    assert math.isnan(fewest_queries([], 1.0))
