"""The physical limit of the polling trade-off: the fewest queries per job that any polling
schedule can spend for a given lag p50, on one run's actual render times.

An oracle that knows the render-time distribution exactly (not each job's render time) picks
one schedule of poll times, counted from each job's submit, obeying the same per-task floor
(``min_interval``) and ceiling (``max_interval``) as the SDK. A job costs one query per poll
up to the first poll at or after its render time; its lag is that poll's time minus its render
time. The best schedule is found exactly on a time grid by dynamic programming on a Lagrangian
(queries minus ``price`` times jobs detected within the lag target), bisecting on ``price``
until half the jobs are detected within the target; mixing the two bracketing schedules (half
the jobs on each) gives the lower convex hull, so the result is a lower bound for every
schedule on the grid, randomised ones included.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["DEFAULT_LAGS", "fewest_queries", "poll_frontier"]

#: The lag p50 targets (seconds) the frontier is computed for.
DEFAULT_LAGS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)

_BISECTIONS = 40


def _solve(
    done_by: np.ndarray,
    jobs: int,
    price: float,
    lag_steps: int,
    floor_steps: int,
    ceiling_steps: int,
) -> tuple[float, float]:
    """The schedule minimising queries - price * detected: (queries/job, detected fraction)."""
    points = len(done_by)
    last = points - 1
    value = np.zeros(points)  # cost from a poll at grid point t onwards
    queries = np.zeros(points)
    detected = np.zeros(points)
    for t in range(last - 1, -1, -1):
        if done_by[t] >= jobs:  # every job detected: no more polls
            continue
        low = t + (floor_steps if t > 0 else 1)
        high = min(t + ceiling_steps, last)
        nxt = np.arange(low, high + 1)
        window_start = np.maximum(nxt - lag_steps, t)
        caught = done_by[nxt] - done_by[window_start]  # detected within the lag target
        running = jobs - done_by[t]  # each still-running job costs one query
        costs = running - price * caught + value[nxt]
        best = int(np.argmin(costs))
        chosen = nxt[best]
        value[t] = costs[best]
        queries[t] = running + queries[chosen]
        detected[t] = caught[best] + detected[chosen]
    return float(queries[0]) / jobs, float(detected[0]) / jobs


def fewest_queries(
    render_seconds: Sequence[float],
    lag_p50: float,
    *,
    min_interval: float = 1.0,
    max_interval: float = 15.0,
    step: float = 0.05,
) -> float:
    """The fewest queries per job with half the jobs detected within ``lag_p50`` seconds.

    Args:
        render_seconds: Every job's render time (API seconds).
        lag_p50: The lag target, seconds.
        min_interval: The per-task floor between two polls.
        max_interval: The per-task ceiling between two polls.
        step: The time grid, seconds.
    """
    renders = np.sort(np.asarray(render_seconds, dtype=float))
    jobs = len(renders)
    if jobs == 0:
        return float("nan")
    args = (
        max(1, round(lag_p50 / step)),
        max(1, round(min_interval / step)),
        max(1, round(max_interval / step)),
    )
    points = int(np.ceil(renders[-1] / step)) + args[1] + 2  # room for a last poll
    grid = np.arange(points) * step
    done_by = np.searchsorted(renders, grid + 1e-9, side="right")  # renders <= grid point
    low, high = 0.0, 64.0  # the price of one job detected within the target, in queries
    q_low, c_low = _solve(done_by, jobs, low, *args)
    q_high, c_high = _solve(done_by, jobs, high, *args)
    if c_low >= 0.5:
        return q_low
    while c_high < 0.5 and high < jobs * 64.0:
        low, q_low, c_low = high, q_high, c_high
        high *= 2.0
        q_high, c_high = _solve(done_by, jobs, high, *args)
    if c_high < 0.5:  # not reachable at all (a lag target below the grid step)
        return float("nan")
    for _ in range(_BISECTIONS):
        middle = (low + high) / 2.0
        q_mid, c_mid = _solve(done_by, jobs, middle, *args)
        if c_mid >= 0.5:
            high, q_high, c_high = middle, q_mid, c_mid
        else:
            low, q_low, c_low = middle, q_mid, c_mid
    if c_high == c_low:
        return q_high
    share = (0.5 - c_low) / (c_high - c_low)  # of the jobs on the higher schedule
    return q_low + share * (q_high - q_low)


def poll_frontier(
    render_seconds: Sequence[float],
    lags: Sequence[float] = DEFAULT_LAGS,
    **options: float,
) -> list[dict[str, float]]:
    """``[{"lag_p50": L, "queries_per_job": fewest}]`` for every lag target ``L``."""
    return [
        {"lag_p50": lag, "queries_per_job": fewest_queries(render_seconds, lag, **options)}
        for lag in lags
    ]
