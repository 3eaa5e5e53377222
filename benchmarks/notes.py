"""The prose of ``RESULTS.md``: how it was measured, and notes that quote the run's figures."""

from __future__ import annotations

from typing import Any

from .targets import W1_CPU_RATIO, W1_LAG, W1_QUERY_RATIO
from .variants import THREAD_WORKERS
from .workloads import LARGE_RATE

__all__ = ["SCALE_NOTE", "method_lines", "workload_notes"]


def method_lines(results: dict[str, Any], command: str) -> list[str]:
    """Where, when and how the figures were measured."""
    m = results["machine"]
    options = results["options"]
    minutes = results.get("elapsed_seconds", 0.0) / 60.0
    rounds = options["rounds"]
    sweep = options["sweep_rounds"]
    return [
        f"Measured {results['date']} on {m['nproc']} x {m['cpu']} ({m['platform']}), "
        f"{m['implementation']} {m['python']}, aiohttp {m['aiohttp']}; load average at start "
        f"{m['load_average_at_start']} (the machine is shared: expect some noise in CPU figures).",
        "",
        f"Command: `{command}` ({rounds} round{'s' * (rounds != 1)} of every table row, "
        "interleaved and rotated each round, medians reported; "
        f"{sweep} round{'s' * (sweep != 1)} of each sweep-only point; fake server seed "
        f"{options['seed']}; took {minutes:.0f} min).",
        "",
        "How: the fake API (`python -m ketchup_async.testing`) runs in its own process, fresh "
        "for every run, so the client figures are the client's alone; every variant runs in its "
        "own process (`python -m benchmarks.run_variant`). *Client CPU* is the variant "
        "process's CPU time (user + system, all threads) spent on the workload, divided by the "
        "jobs. *Queries/job* and *429s* come from the server's counters. *Lag* runs from the "
        "moment the server's task became final (`completed_at`, from `GET /_fake/tasks`) to the "
        "moment the client resolved that input (both on the host's monotonic clock). *Drain* is "
        "from the first submit to the last input resolved. Every time is in API (un-scaled) "
        "seconds; CPU and memory are real. *Lost / dup*: inputs never resolved (or resolved "
        "with an error) / inputs resolved twice, tasks created twice for one prompt (server "
        "counter) or more tasks than inputs; all must be 0.",
    ]


def _med(results: dict[str, Any], workload: str, row: str) -> dict[str, float] | None:
    entry = results["workloads"].get(workload, {}).get("rows", {}).get(row)
    return None if entry is None else entry["median"]


def _per_request(med: dict[str, float] | None) -> float:
    if med is None:
        return float("nan")
    return med["cpu_ms_per_job"] / (1.0 + med["queries_per_job"])


def _w1(results: dict[str, Any]) -> list[str]:
    jobs = results["workloads"]["W1"]["jobs"]
    notes = []
    default, large = _med(results, "W1", "ketchup"), _med(results, "W1", "ketchup-large")
    if default is not None:
        notes.append(
            f"- **The default budget binds.** `PollPolicy()` allows 10 queries/s for the whole "
            f"client (the design's polite default). With {jobs:,} jobs pending at once every job "
            f"needs at least one query, so draining takes at least {jobs / 10:,.0f} s and the "
            f"lag is set by the budget, not the schedule: {default['queries_per_job']:.2f} "
            f"queries/job, lag p50 {default['lag_p50']:.0f} s, drain {default['wall']:.0f} s. "
            "Its CPU per job is high for a related reason: at 10 queries/s each request gets "
            "a wake-up of an otherwise idle process to itself, about "
            f"{default['cpu_ms_per_job'] / (1 + default['queries_per_job']):.2f} ms per "
            "request (submits included) against "
            f"{_per_request(large):.2f} ms when requests leave in batches (next row); in "
            "absolute terms, 10 queries/s cost well under 1% of a core."
        )
    if large is not None:
        notes.append(
            f"- **`PollPolicy(rate={LARGE_RATE:.0f})`** gives the poller one query per second "
            f"per pending job: the provider's per-job ceiling, and the budget the naive client "
            f"takes for itself. The schedule then spends {large['queries_per_job']:.2f} "
            f"queries/job for a lag p50 of {large['lag_p50']:.2f} s (the sweep below shows the "
            "trade-off of the two schedule knobs at this budget)."
        )
    notes += _tradeoff(results)
    notes += _frontier(results)
    notes += [
        "- **naive asyncio** is the provider's sample code in Python: one coroutine per job, "
        "submit, then `sleep(1)` and query until final, one shared `aiohttp.ClientSession`; a "
        "non-200 answer is retried the next second.",
        f"- **threads + requests** uses a `ThreadPoolExecutor({THREAD_WORKERS})` and one "
        "keep-alive `requests.Session` per thread, each worker submitting one job and polling "
        f"it every second: only {THREAD_WORKERS} jobs are in flight, hence the drain time. One "
        f"thread per job ({jobs:,} OS threads) is not what anyone ships.",
        "- **webhooks**: the built-in `WebhookReceiver` mounted in an aiohttp app in the client "
        "process; the poller keeps only a late safety-net query per job, which fires only when "
        "a callback is lost.",
        "- *Physical limit* of client CPU: one submit plus one query, each at the cost of a "
        "bare aiohttp request measured on the same machine (see the end of this page).",
    ]
    return notes


def _frontier(results: dict[str, Any]) -> list[str]:
    entry = results["workloads"]["W1"]
    frontier = entry.get("frontier")
    naive, large = _med(results, "W1", "naive"), _med(results, "W1", "ketchup-large")
    if not frontier or naive is None or large is None:
        return []
    curve = ", ".join(
        f"{point['lag_p50']:g} s: {point['queries_per_job']:.2f}" for point in frontier
    )
    at_target = [p for p in frontier if p["lag_p50"] == W1_LAG]
    text = (
        "- **The best any schedule can do** (the dashed line in the chart). On this run's "
        "render times, an oracle that knows their distribution exactly and polls every job on "
        "the best possible schedule, with the SDK's 1 s floor and 15 s ceiling between two "
        "polls of a task, needs at least this many queries/job for a lag p50 of at most "
        f"(lag: queries) {curve} (`benchmarks/frontier.py`, exact on a 0.05 s grid)."
    )
    if at_target:
        fewest = at_target[0]["queries_per_job"]
        cost = _per_request(large)
        floor = cost * (1.0 + fewest)
        budget = W1_CPU_RATIO * naive["cpu_ms_per_job"] / (1.0 + fewest)
        text += (
            f" CPU per job is one submit plus the queries, and a request costs the SDK about "
            f"what it costs the naive client ({cost:.3f} ms against {_per_request(naive):.3f} "
            f"ms, submits included, in this run). So a lag p50 <= {W1_LAG} s costs at least "
            f"{1.0 + fewest:.2f} requests/job, {floor:.3f} ms/job, "
            f"{floor / naive['cpu_ms_per_job']:.2f}x the naive client: the W1 lag and CPU "
            f"targets can hold together only if a request costs at most {budget:.3f} ms, "
            f"{100.0 * (1.0 - budget / _per_request(naive)):.0f}% less than the naive client's "
            "own aiohttp requests."
        )
    return [text]


def _tradeoff(results: dict[str, Any]) -> list[str]:
    rows = results["workloads"]["W1"]["rows"]
    naive = rows.get("naive", {}).get("median")
    points = [row["median"] for row in rows.values() if row["in_sweep"]]
    if naive is None or not points:
        return []

    def ratio(med: dict[str, float], name: str) -> float:
        return float(med[name] / naive[name])

    fast = [p for p in points if p["lag_p50"] <= W1_LAG]
    lean = [p for p in points if ratio(p, "cpu_ms_per_job") <= W1_CPU_RATIO]
    both = [p for p in fast if p in lean and ratio(p, "queries_per_job") <= W1_QUERY_RATIO]
    text = (
        "- **Lag against CPU.** Client CPU per job is one submit plus the queries, each at "
        "about the cost of a bare aiohttp request (the poller aligns due times on a tick of "
        "`min_interval / 10` and sends what is due together, as the naive client's coroutines "
        "that wake together do), so CPU per job follows queries per job."
    )
    if fast:
        best = min(fast, key=lambda p: p["queries_per_job"])
        text += (
            f" In the sweep, a lag p50 <= {W1_LAG} s took at least "
            f"{best['queries_per_job']:.2f} queries/job, at "
            f"{ratio(best, 'cpu_ms_per_job'):.2f}x the naive client's CPU."
        )
    if lean:
        best = min(lean, key=lambda p: p["lag_p50"])
        text += (
            f" CPU <= {W1_CPU_RATIO}x naive came with a lag p50 of {best['lag_p50']:.2f} s at best."
        )
    text += " Points meeting all three W1 targets: " + (
        f"{len(both)} (see the sweep table)." if both else "none."
    )
    return [text]


def _w2(results: dict[str, Any]) -> list[str]:
    notes = [
        "- The server answers `429` with `Retry-After: 1` above 10 queries per API second; "
        "the SDK's default budget is 10 queries/s, and its poller pauses and cuts its rate on "
        "a 429.",
        "- The limit also bounds the lag of any client that polls: the physical-limit row "
        "gives the lag of an oracle that queries each task once, the instant it completes, "
        "within 10 queries/s (computed from this run's completion times). Webhooks are not "
        "bound by it (their limit is 0).",
    ]
    naive = _med(results, "W2", "naive")
    if naive is not None:
        notes.append(
            f"- The naive client provoked {naive['rate_limited']:,.0f} 429s "
            f"({naive['rate_limited'] / naive['jobs']:.1f} per job) and still waited "
            f"{naive['lag_p50']:.1f} s (lag p50): the limit, not the polling, sets the pace."
        )
    large = _med(results, "W2", "ketchup-large")
    if large is not None:
        notes.append(
            f"- With `PollPolicy(rate={LARGE_RATE:.0f})` (200 times the server's limit) the "
            f"poller provoked {large['rate_limited']:,.0f} 429s "
            f"({large['rate_limited'] / large['jobs']:.2f} per job), for a lag p50 of "
            f"{large['lag_p50']:.1f} s. Its rate controller pauses for `Retry-After` and, once "
            "per storm of 429s (the queries already in flight, up to `max_in_flight`, come "
            "back 429 together), cuts the rate to at most half and at most what the server "
            f"answered over the last second: it comes down from {LARGE_RATE:.0f} q/s to the "
            "server's 10 in its first storm, then grows the rate by 10% every 5 quiet seconds "
            "and touches the limit again about every half minute (the sawtooth of "
            "additive-increase, multiplicative-decrease control). That is what a larger default "
            "budget would cost against a rate-limited API."
        )
    return notes


def _w3(results: dict[str, Any]) -> list[str]:
    return [
        "- *RSS per pending job*: the client process's resident memory after submitting, "
        "minus before the first submit, over the jobs pending (each job: its `Job`, future, "
        "`GenerateRequest` with its prompt, heap entry and index entry; the caller's list of "
        "jobs included).",
        "- *Poller CPU per query*: the default `PollPolicy`, time-scaled, is always "
        "budget-bound here (more jobs are due than its budget allows), so each step runs the "
        "poller at the same query rate for a fixed number of queries; its CPU over them is "
        "divided by the queries. At this rate each query is a wake-up of its own, which costs "
        "more than a request in a batch: the last line is the same bare aiohttp GET, sent one "
        "per wake-up at the same rate from the same process. The heap is O(log n) per query, "
        "so the cost per query must not grow with the jobs pending.",
        "- The naive client is not run here: 100,000 coroutines polling every second would "
        "send 100,000 requests per API second.",
    ]


def _w4(results: dict[str, Any]) -> list[str]:
    rows = results["workloads"]["W4"]["rows"]
    notes = []
    for key in ("ketchup", "naive"):
        median = rows.get(key, {}).get("median")
        if median is None:
            continue
        jobs = median["jobs"]
        notes.append(
            f"- {rows[key]['label']}: {median['submit_rate_limited']:,.0f} submit 429s "
            f"({median['submit_rate_limited'] / jobs:.2f} per job), "
            f"{median['failed']:.0f} failed, wall {median['wall']:,.0f} API s "
            f"(the server's limit alone needs {jobs / 10:,.0f} s)."
        )
    notes.append(
        "- The client's submit controller starts with a few submits on the wire, pauses every "
        "submit for `Retry-After` on a 429, cuts its rate to what the server accepted and "
        "recovers additively; a refused submit waits for it instead of using up its retries."
    )
    return notes


def workload_notes(key: str, results: dict[str, Any]) -> list[str]:
    """The notes under one workload's table."""
    if key not in results["workloads"]:
        return []
    return {"W1": _w1, "W2": _w2, "W3": _w3, "W4": _w4}[key](results)


SCALE_NOTE = [
    "The fake server runs the render clock faster than real time (`--time-scale`), and every "
    "figure is converted back to API seconds. The scale must leave the machine idle enough "
    "that the figures describe the clients, not the machine. At 1/20, the naive client of W1 "
    "would have to send 2,000 / 0.05 = 40,000 requests per real second, and this machine's "
    "fake server answers about 11,000: in a trial run at 1/20 the naive client reached only "
    "2.8 queries/job, with a 9.6 s lag p50, instead of the 9.3 and 0.5 s it shows in real "
    "time. W1 therefore runs at 1/2 (its naive client peaks near 4,000 requests per real "
    "second), W2 at 1/4 (most of the naive client's requests are cheap 429s) and W3, which "
    "measures client memory and CPU only, at 1/20.",
]
