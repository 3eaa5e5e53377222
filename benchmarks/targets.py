"""The targets the SDK is held to, checked against one run's medians."""

from __future__ import annotations

import itertools
import math
from typing import Any

__all__ = [
    "FLAT_RATIO",
    "FRONTIER_EXCESS",
    "W2_429_PER_JOB",
    "W3_BARE_RATIO",
    "W1_CPU_RATIO",
    "W1_LAG",
    "W1_QUERY_RATIO",
    "check_targets",
    "target_rows",
]

#: W1: the SDK's queries per job at most this times the naive client's.
W1_QUERY_RATIO = 0.35
#: W1: the SDK's lag p50 at most this, API seconds.
W1_LAG = 1.0
#: W1: the SDK's client CPU per job at most this times the naive client's.
W1_CPU_RATIO = 0.45
#: W1: the default's queries per job at most this much above the frontier at its own lag p50.
FRONTIER_EXCESS = 0.10
#: W2: 429s per job the default policy may provoke against a 10 queries/s server.
W2_429_PER_JOB = 0.02
#: W3: the poller's CPU per query at most this times a bare paced GET's.
W3_BARE_RATIO = 1.15
#: "Flat" poller CPU per query: the largest pending step costs at most this times the smallest.
FLAT_RATIO = 1.25


def _median(results: dict[str, Any], workload: str, row: str) -> dict[str, float] | None:
    entry = results["workloads"].get(workload)
    if entry is None or row not in entry.get("rows", {}):
        return None
    median: dict[str, float] = entry["rows"][row]["median"]
    return median


def check_targets(results: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """``(target, measured, met)`` for every target whose workload was run."""
    checks: list[tuple[str, str, bool]] = []
    naive = _median(results, "W1", "naive")
    for key, name in (("ketchup", "default policy"), ("ketchup-large", "larger budget")):
        sdk = _median(results, "W1", key)
        if sdk is None or naive is None:
            continue
        q_ratio = sdk["queries_per_job"] / naive["queries_per_job"]
        cpu_ratio = sdk["cpu_ms_per_job"] / naive["cpu_ms_per_job"]
        checks += [
            (
                f"W1 ({name}): queries/job <= {W1_QUERY_RATIO}x naive",
                f"{q_ratio:.2f}x ({sdk['queries_per_job']:.2f} vs {naive['queries_per_job']:.2f})",
                q_ratio <= W1_QUERY_RATIO,
            ),
            (
                f"W1 ({name}): lag p50 <= {W1_LAG} s",
                f"{sdk['lag_p50']:.2f} s",
                sdk["lag_p50"] <= W1_LAG,
            ),
            (
                f"W1 ({name}): client CPU/job <= {W1_CPU_RATIO}x naive",
                f"{cpu_ratio:.2f}x ({sdk['cpu_ms_per_job']:.3f} vs "
                f"{naive['cpu_ms_per_job']:.3f} ms)",
                cpu_ratio <= W1_CPU_RATIO,
            ),
        ]
    default = _median(results, "W1", "ketchup")
    frontier = results["workloads"].get("W1", {}).get("frontier") or []
    bound = _frontier_at(frontier, default["lag_p50"]) if default is not None else None
    if default is not None and bound is not None:
        excess = default["queries_per_job"] / bound - 1.0
        checks.append(
            (
                f"W1 (default policy): queries/job within {FRONTIER_EXCESS:.0%} of the best "
                "possible schedule at its own lag p50",
                f"{default['queries_per_job']:.2f} vs {bound:.2f} at {default['lag_p50']:.2f} s "
                f"({excess:+.0%})",
                excess <= FRONTIER_EXCESS,
            )
        )
    hooks = _median(results, "W1", "webhooks")
    if hooks is not None:
        checks += [
            (
                "W1 webhooks: <= 0.2 queries/job",
                f"{hooks['queries_per_job']:.2f}",
                hooks["queries_per_job"] <= 0.2,
            ),
            ("W1 webhooks: lag p50 <= 0.1 s", f"{hooks['lag_p50']:.3f} s", hooks["lag_p50"] <= 0.1),
        ]
    sdk2 = _median(results, "W2", "ketchup")
    if sdk2 is not None:
        naive2 = _median(results, "W2", "naive")
        contrast = "" if naive2 is None else f" (naive: {naive2['rate_limited']:,.0f})"
        per_job = sdk2["rate_limited"] / results["workloads"]["W2"]["jobs"]
        checks += [
            (
                f"W2 (default policy): <= {W2_429_PER_JOB} 429s per job",
                f"{per_job:.3f} ({sdk2['rate_limited']:.0f}{contrast})",
                per_job <= W2_429_PER_JOB,
            ),
            (
                "W2: every job resolved, none twice",
                f"lost {sdk2['lost']:.0f}, duplicated {sdk2['duplicated']:.0f}",
                sdk2["lost"] == 0 and sdk2["duplicated"] == 0,
            ),
        ]
    w3 = results["workloads"].get("W3")
    if w3 is not None:
        steps = w3["median"]["steps"]
        per_job = steps[-1]["rss_per_pending"]
        checks.append(
            (
                f"W3: <= 1 KB client memory per pending job ({steps[-1]['pending']:,} pending)",
                f"{per_job:.0f} bytes",
                per_job <= 1024,
            )
        )
        bare = w3["median"].get("bare_paced_query_cpu")
        if bare:
            worst = max(step["cpu_per_query"] for step in steps)
            checks.append(
                (
                    f"W3: poller CPU/query <= {W3_BARE_RATIO}x a bare paced GET",
                    f"{worst * 1e6:.0f} vs {bare * 1e6:.0f} µs ({worst / bare:.2f}x)",
                    worst / bare <= W3_BARE_RATIO,
                )
            )
        first, last = steps[0]["cpu_per_query"], steps[-1]["cpu_per_query"]
        ratio = last / first if first > 0 else math.nan
        checks.append(
            (
                f"W3: poller CPU/query flat from {steps[0]['pending']:,} to "
                f"{steps[-1]['pending']:,} pending (<= {FLAT_RATIO}x)",
                " -> ".join(f"{s['cpu_per_query'] * 1e6:.0f}" for s in steps)
                + f" µs ({ratio:.2f}x)",
                ratio <= FLAT_RATIO,
            )
        )
    lost = [
        f"{workload}/{key}"
        for workload, entry in results["workloads"].items()
        for key, row in entry.get("rows", {}).items()
        if row["median"]["lost"] or row["median"]["duplicated"]
    ]
    checks.append(
        ("every variant: 0 jobs lost, 0 duplicated", ", ".join(lost) or "0 / 0", not lost)
    )
    return checks


def _frontier_at(points: list[dict[str, float]], lag: float) -> float | None:
    """The frontier's queries/job at ``lag`` (linear between its points), None outside it."""
    ordered = sorted(points, key=lambda p: p["lag_p50"])
    for low, high in itertools.pairwise(ordered):
        if low["lag_p50"] <= lag <= high["lag_p50"]:
            span = high["lag_p50"] - low["lag_p50"]
            weight = 0.0 if span == 0 else (lag - low["lag_p50"]) / span
            return low["queries_per_job"] + weight * (
                high["queries_per_job"] - low["queries_per_job"]
            )
    return None


def target_rows(results: dict[str, Any]) -> list[str]:
    """The targets as a markdown table."""
    lines = ["| target | measured | met |", "|---|---|---|"]
    for target, measured, met in check_targets(results):
        lines.append(f"| {target} | {measured} | {'yes' if met else '**NO**'} |")
    return lines
