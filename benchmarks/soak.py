"""Soak test: tens of thousands of jobs through a fault mix, every one accounted for.

Runs N distinct prompts through ``KetchupClient.generate_many`` against an in-process
``FakeKetchupServer`` (real sockets on 127.0.0.1) that injects 500s, HTML 502 pages,
connection resets (also after a submit was accepted), latency spikes beyond the client's
timeout and 429s with ``Retry-After``, and restarts the server (every connection dropped) twice
mid-run. Then it prints the accounting table: jobs, resolved exactly once, lost, resolved
twice, paid twice, the outcomes by kind and the faults injected by kind.

Usage::

    python -m benchmarks.soak --jobs 50000
    python -m benchmarks.soak --jobs 1000 --json   # machine-readable summary

The exit code is 1 when an invariant is broken (a job lost, resolved twice or paid twice).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections import Counter
from typing import Any

from ketchup_async import (
    APIConnectionError,
    KetchupClient,
    Outcome,
    PollPolicy,
    RetryPolicy,
    __version__,
)
from ketchup_async.testing import FakeKetchupServer, Faults

API_KEY = "dk-soak0123456789abcdef"

#: The fault mix: probabilities per request, by endpoint.
SUBMIT_FAULTS = dict(error_500=0.05, html_502=0.03, reset=0.005, reset_after_accept=0.005)
QUERY_FAULTS = dict(error_500=0.10, html_502=0.05, reset=0.03)
LATENCY_RATE = 0.01  # share of requests (both endpoints) delayed beyond the client's timeout


def charge_class(outcome: Outcome) -> str:
    """``ok``, ``uncertain`` (may have been charged) or ``refused`` (the API charged nothing)."""
    error = outcome.error
    if error is None:
        return "ok"
    if isinstance(error, APIConnectionError) and error.may_have_been_processed:
        return "uncertain"
    return "refused"


def _kind(outcome: Outcome, created: int) -> str:
    error = outcome.error
    if error is None:
        return "succeeded"
    if isinstance(error, APIConnectionError) and error.may_have_been_processed:
        return "uncertain (charged)" if created else "uncertain (not charged)"
    return f"failed: {type(error).__name__}"


async def run_soak(
    *,
    jobs: int,
    scale: float = 0.001,
    concurrency: int = 1000,
    seed: int = 20261122,
    timeout: float = 1.0,
    restarts: int = 2,
    failure_rate: float = 0.02,
    query_limit: float = 3.0,
    submit_limit: float = 1.5,
    progress: bool = False,
    submit_faults: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Run the soak and return its accounting summary (see the module docstring).

    ``submit_faults`` replaces ``SUBMIT_FAULTS`` (a short run needs higher rates for every
    kind to fire).
    """
    latency = timeout * 2.0
    server = FakeKetchupServer(
        api_keys=(API_KEY,),
        time_scale=scale,
        seed=seed,
        failure_rate=failure_rate,
        query_rate_limit=query_limit,
        submit_rate_limit=submit_limit,
        retry_after=1.0,
        submit_faults=Faults(
            **(submit_faults or SUBMIT_FAULTS), latency=LATENCY_RATE, latency_seconds=latency
        ),
        query_faults=Faults(**QUERY_FAULTS, latency=LATENCY_RATE, latency_seconds=latency),
    )
    prompts = [f"soak job {i}" for i in range(jobs)]
    seen: Counter[int] = Counter()
    first: dict[int, Outcome] = {}
    restart_at = {jobs * (k + 1) // (restarts + 1) for k in range(restarts)}
    done_restarts = 0
    started = time.perf_counter()
    async with server:
        client = KetchupClient(
            api_key=API_KEY,
            base_url=server.base_url,
            polling=PollPolicy(max_in_flight=256).scaled(scale),
            # Real seconds, not scaled: a restart takes real time (~0.1 s) whatever the scale.
            retry=RetryPolicy(max_retries=10, base=0.05, cap=1.0),
            max_concurrency=512,
            submit_rate=submit_limit * 1.1 / scale,  # a little over the server's limit: 429s
            timeout=timeout,
        )
        async with client:
            async for outcome in client.generate_many(prompts, concurrency=concurrency):
                seen[outcome.index] += 1
                first.setdefault(outcome.index, outcome)
                received = sum(seen.values())
                if received in restart_at:
                    await server.restart()
                    done_restarts += 1
                if progress and received % 5000 == 0:
                    print(f"  {received:,} / {jobs:,} in {time.perf_counter() - started:.0f} s")
            queries = client.queries_sent
            pending = client.pending()
        wall = time.perf_counter() - started
        stats = server.stats
        created = stats.created_per_prompt
        kinds = Counter(_kind(o, created[prompts[i]]) for i, o in first.items())
        mismatched = sum(
            1
            for i, o in first.items()
            if o.task_id is not None and server.tasks[o.task_id].prompt != prompts[i]
        )
        refused_but_charged = sum(
            1
            for i, o in first.items()
            if o.task_id is None and charge_class(o) == "refused" and created[prompts[i]] > 0
        )
        faults = Counter(stats.faults_injected)
        faults["429_on_submit"] = stats.requests[("submit", 429)]
        faults["429_on_query"] = stats.requests[("query", 429)]
        faults["server_restart"] = done_restarts
    return {
        "version": __version__,
        "jobs": jobs,
        "resolved_once": sum(1 for n in seen.values() if n == 1),
        "lost": sum(1 for i in range(jobs) if i not in seen),
        "resolved_twice": sum(1 for n in seen.values() if n > 1),
        "paid_twice": sum(1 for p in prompts if created[p] > 1),
        "wrong_result": mismatched,
        "refused_but_charged": refused_but_charged,
        "pending_after_close": pending,
        "outcomes": dict(sorted(kinds.items())),
        "faults_injected": dict(sorted(faults.items())),
        "requests": sum(stats.requests.values()),
        "tasks_created": sum(created.values()),
        "queries_per_job": round(queries / jobs, 2) if jobs else 0.0,
        "wall_seconds": round(wall, 1),
        "settings": {
            "scale": scale,
            "concurrency": concurrency,
            "seed": seed,
            "timeout": timeout,
            "latency_seconds": latency,
            "task_failure_rate": failure_rate,
            "query_limit_per_api_s": query_limit,
            "submit_limit_per_api_s": submit_limit,
        },
    }


def aiohttp_restart_race(record: logging.LogRecord) -> bool:
    """True for aiohttp's own "Unhandled exception" (InvalidStateError in web_protocol) when a
    server restart shuts down while requests are in flight: aiohttp noise, not a finding."""
    error = record.exc_info[0] if record.exc_info else None
    return (
        record.name == "aiohttp.server"
        and error is not None
        and issubclass(error, asyncio.InvalidStateError)
    )


def ok(summary: dict[str, Any]) -> bool:
    """True when every invariant holds: all resolved once, none lost, none paid twice."""
    return bool(
        summary["resolved_once"] == summary["jobs"]
        and summary["lost"] == summary["resolved_twice"] == summary["paid_twice"] == 0
        and summary["wrong_result"] == summary["pending_after_close"] == 0
        and summary["refused_but_charged"] == 0
    )


def render(summary: dict[str, Any]) -> str:
    """The accounting table as Markdown."""
    lines = ["| Accounting | |", "|---|---:|"]
    keys = ("jobs", "resolved_once", "lost", "resolved_twice", "paid_twice", "wrong_result")
    for key in (*keys, "refused_but_charged"):
        lines.append(f"| {key.replace('_', ' ')} | {summary[key]:,} |")
    lines.append(f"| pending after close | {summary['pending_after_close']:,} |")
    lines += ["", "| Outcome | Jobs |", "|---|---:|"]
    lines += [f"| {k} | {v:,} |" for k, v in summary["outcomes"].items()]
    lines += ["", "| Fault injected | Count |", "|---|---:|"]
    lines += [f"| {k} | {v:,} |" for k, v in summary["faults_injected"].items()]
    lines += [
        "",
        f"Requests served: {summary['requests']:,}; tasks created: {summary['tasks_created']:,}; "
        f"queries per job: {summary['queries_per_job']}; wall time: {summary['wall_seconds']} s.",
        f"Settings: {json.dumps(summary['settings'])}; ketchup-async {summary['version']}.",
        "",
        "Invariants: " + ("HOLD" if ok(summary) else "BROKEN"),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the soak from the command line; exit 1 if an invariant is broken."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--jobs", type=int, default=50_000, help="jobs to run (default 50000)")
    parser.add_argument("--scale", type=float, default=0.001, help="real s per API second")
    parser.add_argument("--concurrency", type=int, default=1000, help="jobs in flight")
    parser.add_argument("--seed", type=int, default=20261122, help="the fake server's seed")
    parser.add_argument("--timeout", type=float, default=1.0, help="client timeout, seconds")
    parser.add_argument("--restarts", type=int, default=2, help="server restarts mid-run")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    logging.getLogger("aiohttp.server").addFilter(lambda r: not aiohttp_restart_race(r))
    summary = asyncio.run(
        run_soak(
            jobs=args.jobs,
            scale=args.scale,
            concurrency=args.concurrency,
            seed=args.seed,
            timeout=args.timeout,
            restarts=args.restarts,
            progress=not args.json,
        )
    )
    print(json.dumps(summary, indent=2) if args.json else render(summary))
    return 0 if ok(summary) else 1


if __name__ == "__main__":
    sys.exit(main())
