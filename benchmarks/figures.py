"""Figures of one run (client record + server counters) and their medians over rounds.

Times are converted to API (un-scaled) seconds. Lag is the time from the server's
``completed_at`` (when the task became final, on the host's monotonic clock) to the moment
the client resolved that input.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "COUNT_FIGURES",
    "Figures",
    "lag_floor",
    "median_figures",
    "percentile",
    "run_figures",
]

Figures = dict[str, float]

#: Figures that must be the same in every round (reported as the worst round, not a median).
COUNT_FIGURES = ("lost", "duplicated", "failed")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` by linear interpolation (nan if empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def lag_floor(completed_at: Sequence[float], query_limit: float | None) -> list[float]:
    """Lags of an oracle that queries each task once, the moment it completes, within the
    server's query limit (queries per second of ``completed_at``'s clock); 0 without one."""
    if not query_limit:
        return [0.0] * len(completed_at)
    gap = 1.0 / query_limit
    lags, previous = [], -math.inf
    for done in sorted(completed_at):
        previous = max(done, previous + gap)
        lags.append(previous - done)
    return lags


def run_figures(
    record: Mapping[str, Any],
    stats: Mapping[str, Any],
    tasks: Mapping[str, Mapping[str, Any]],
    *,
    scale: float,
    server_cpu: float,
    query_limit: float | None = None,
) -> Figures:
    """Figures of one variant run.

    Args:
        record: The variant process's JSON (``benchmarks.run_variant``).
        stats: The fake server's ``/_fake/stats``.
        tasks: The fake server's ``/_fake/tasks``.
        scale: Real seconds per API second.
        server_cpu: CPU seconds the server process used.
        query_limit: The server's query limit, queries per API second (None: unlimited).
    """
    jobs = int(record["jobs"])
    results: list[list[Any]] = record["results"]
    lags: list[float] = []
    resolved_ok = 0
    failed = 0
    last_resolved = record["started_at"]
    task_ids: set[str] = set()
    for task_id, resolved_at, ok in results:
        if resolved_at is None or task_id is None:
            continue
        last_resolved = max(last_resolved, resolved_at)
        task_ids.add(task_id)
        if not ok:
            failed += 1
            continue
        resolved_ok += 1
        task = tasks.get(task_id)
        if task is not None:
            lags.append((resolved_at - task["completed_at"]) / scale)
    wall = (last_resolved - record["started_at"]) / scale
    real_limit = query_limit / scale if query_limit else None
    floor = [
        lag / scale for lag in lag_floor([t["completed_at"] for t in tasks.values()], real_limit)
    ]
    queries = float(stats["queries"])
    duplicated = (
        int(record["duplicates"])
        + int(stats["duplicate_prompts"])
        + max(0, int(stats["tasks_created"]) - jobs)
        + (resolved_ok + failed - len(task_ids))  # two inputs resolved with one task
    )
    return {
        "jobs": float(jobs),
        "queries_per_job": queries / jobs,
        "lag_p50": percentile(lags, 50),
        "lag_p99": percentile(lags, 99),
        "lag_max": max(lags, default=math.nan),
        "lag_floor_p50": percentile(floor, 50),
        "lag_floor_p99": percentile(floor, 99),
        "rate_limited": float(stats["rate_limited"]),
        "submit_rate_limited": float(stats.get("requests", {}).get("submit:429", 0)),
        "cpu_ms_per_job": 1000.0 * float(record["cpu_seconds"]) / jobs,
        "server_cpu_ms_per_job": 1000.0 * server_cpu / jobs,
        "wall": wall,
        "query_rate": queries / wall if wall > 0 else math.nan,
        "peak_rss_mb": float(record["peak_rss_bytes"]) / 1e6,
        "lost": float(jobs - resolved_ok - failed),
        "duplicated": float(duplicated),
        "failed": float(failed),
        "min_poll_gap": (
            float(stats["min_poll_gap"]) / scale
            if stats.get("min_poll_gap") is not None
            else math.nan
        ),
    }


def median_figures(rounds: Sequence[Figures]) -> Figures:
    """Per-figure medians over rounds; counts that must be zero report the worst round."""
    if not rounds:
        return {}
    merged: Figures = {}
    for name in rounds[0]:
        values = [r[name] for r in rounds if not math.isnan(r[name])]
        if not values:
            merged[name] = math.nan
        elif name in COUNT_FIGURES:
            merged[name] = max(values)
        elif name == "min_poll_gap":
            merged[name] = min(values)
        else:
            merged[name] = statistics.median(values)
    merged["rounds"] = float(len(rounds))
    return merged
