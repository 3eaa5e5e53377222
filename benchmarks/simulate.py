"""The poll schedule in a pure simulation: queries/job and lag against the frontier, in seconds.

No server and no event loop: render times are drawn from the fake server's distribution
(log-normal, median 8 API seconds, sigma 0.5, as ``benchmarks.workloads`` runs it), every job
is submitted at once (W1) or spread over a window, and each job is polled exactly as the shared
poller would: ``Schedule.first_due`` at submit, ``Schedule.next_due`` after each "still
running", the per-task floor counted from the answer, due times aligned to the tick grid, and
the ``DurationModel`` learning from every job it sees finish (so W1's first polls use the
prior). A query takes ``latency`` seconds; the server reads the status half-way. The budget is
unconstrained (the adaptive default follows demand in W1).

Then ``benchmarks.frontier`` gives, on the same render times, the fewest queries/job any
schedule needs for the lag p50 each row reached.

    python -m benchmarks.simulate                  # the default policy and a sweep, W1
    python -m benchmarks.simulate --spread 600     # jobs submitted over 10 minutes
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
from collections.abc import Sequence
from typing import Any

import attrs

from ketchup_async import PollPolicy
from ketchup_async._schedule import Schedule

from .frontier import fewest_queries

__all__ = ["draw_renders", "main", "simulate"]

#: The fake server's render-time distribution in the benchmarks (``workloads._RENDER``).
RENDER_MEDIAN = 8.0
RENDER_SIGMA = 0.5


def draw_renders(jobs: int, seed: int) -> list[float]:
    """``jobs`` render times drawn as ``FakeKetchupServer`` draws them."""
    rng = random.Random(seed)
    return [RENDER_MEDIAN * math.exp(RENDER_SIGMA * rng.gauss(0.0, 1.0)) for _ in range(jobs)]


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def simulate(
    policy: PollPolicy,
    renders: Sequence[float],
    *,
    spread: float = 0.0,
    latency: float = 0.02,
) -> dict[str, float]:
    """Poll jobs with these render times under ``policy``; return queries/job and lag."""
    schedule = Schedule(policy)
    model = schedule.model
    count = len(renders)
    submitted = [spread * i / count for i in range(count)]
    done_at = [submitted[i] + renders[i] for i in range(count)]
    polls = [0] * count
    last_poll: list[float | None] = [None] * count
    last_running: list[float | None] = [None] * count
    heap: list[tuple[float, int]] = []

    def push(job: int, due: float) -> None:
        heapq.heappush(heap, (schedule.align(schedule.floor(last_poll[job], due)), job))

    arrivals = sorted(range(count), key=lambda i: submitted[i])
    lags: list[float] = []
    queries = 0
    next_arrival = 0
    while heap or next_arrival < count:
        if next_arrival < count and (not heap or submitted[arrivals[next_arrival]] <= heap[0][0]):
            job = arrivals[next_arrival]
            next_arrival += 1
            push(job, schedule.first_due(submitted[job]))
            continue
        sent, job = heapq.heappop(heap)
        queries += 1
        polls[job] += 1
        answered = sent + latency
        last_poll[job] = answered
        if done_at[job] <= sent + latency / 2:
            lags.append(answered - done_at[job])
            running = last_running[job]
            low = 0.0 if running is None else running - submitted[job]
            model.observe_between(low, answered - submitted[job])
        else:
            last_running[job] = answered
            push(job, schedule.next_due(answered, polls[job], submitted_at=submitted[job]))
    return {
        "queries_per_job": queries / count,
        "lag_p50": _percentile(lags, 0.5),
        "lag_p99": _percentile(lags, 0.99),
    }


def _row(
    label: str, policy: PollPolicy, renders: Sequence[float], **options: Any
) -> dict[str, Any]:
    figures: dict[str, Any] = {"label": label, **simulate(policy, renders, **options)}
    bound = fewest_queries(
        renders,
        figures["lag_p50"],
        min_interval=policy.min_interval,
        max_interval=policy.max_interval,
    )
    figures["bound"] = bound
    figures["excess"] = figures["queries_per_job"] / bound - 1.0
    return figures


def main(argv: list[str] | None = None) -> int:
    """Print the table: each policy's queries/job and lag against the frontier bound."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.simulate")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--spread", type=float, default=0.0, help="submit window, API seconds")
    parser.add_argument("--latency", type=float, default=0.02, help="query round trip, seconds")
    parser.add_argument("--sweep", action="store_true", help="also the knobs around the default")
    args = parser.parse_args(argv)
    renders = draw_renders(args.jobs, args.seed)
    options = {"spread": args.spread, "latency": args.latency}
    default = PollPolicy()
    rows = [_row("default `PollPolicy()`", default, renders, **options)]
    if args.sweep:
        for low in (0.25, 0.3, 0.35):
            for high in (0.9, 0.95, 0.99):
                for backoff in (1.25, 1.5):
                    policy = attrs.evolve(
                        default, first_poll_quantile=low, dense_until=high, backoff=backoff
                    )
                    label = f"q={low}, dense_until={high}, backoff={backoff}"
                    rows.append(_row(label, policy, renders, **options))
    print(
        f"{args.jobs} jobs, render times log-normal (median {RENDER_MEDIAN} s, sigma "
        f"{RENDER_SIGMA}), seed {args.seed}, submitted over {args.spread} s, "
        f"latency {args.latency} s\n"
    )
    print("| schedule | queries/job | lag p50 (s) | lag p99 (s) | bound at that lag p50 | excess |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['label']} | {row['queries_per_job']:.2f} | {row['lag_p50']:.2f} | "
            f"{row['lag_p99']:.2f} | {row['bound']:.2f} | {row['excess']:+.1%} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
