"""W3: many pending jobs in one client. Memory per pending job and poller CPU per query.

Runs inside a variant process (``python -m benchmarks.run_variant scale``) against a fake
server whose tasks never finish. Pending jobs grow in steps (e.g. 1,000 -> 10,000 ->
100,000); at each step the shared poller (``PollPolicy(rate=W3_RATE)``, time-scaled, so it is
always budget-bound and paced like the bare GET it is compared with) runs for a fixed number of
queries and its CPU time is divided by them. RSS per
pending job is the growth of resident memory from before the first submit to after the last,
divided by the jobs pending.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Sequence
from typing import Any

import psutil  # type: ignore[import-untyped]

from ketchup_async import KetchupClient, PollPolicy, RetryPolicy
from ketchup_async._jobs import Job

from .fakeproc import API_KEY
from .rawcost import paced_query_cost

__all__ = ["run_scale"]

#: Submits in flight while filling the poller (the client's own default HTTP concurrency).
SUBMIT_CONCURRENCY = 64
#: The poller's budget in W3 (queries per API second): fixed, because W3 measures the cost of
#: one query at a given pace, not how fast the adaptive default would go.
W3_RATE = 10.0


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


async def _submit(client: KetchupClient, start: int, stop: int, jobs: list[Job]) -> None:
    counter = iter(range(start, stop))

    async def worker() -> None:
        for i in counter:
            jobs.append(await client.submit(f"scale prompt {i:07d}"))

    await asyncio.gather(*(worker() for _ in range(SUBMIT_CONCURRENCY)))


async def _poller_cpu(client: KetchupClient, queries: int) -> dict[str, float]:
    """Let the poller send ``queries`` queries; return its CPU per query."""
    start_queries = client.queries_sent
    start_cpu, start_wall = time.process_time(), time.monotonic()
    # The poller exposes a counter, not an event: look at it every 50 ms.
    while client.queries_sent - start_queries < queries:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    sent = client.queries_sent - start_queries
    cpu = time.process_time() - start_cpu
    return {
        "queries": sent,
        "cpu_per_query": cpu / sent,
        "query_rate": sent / (time.monotonic() - start_wall),
    }


async def run_scale(
    base_url: str, pending: Sequence[int], scale: float, queries: int
) -> dict[str, Any]:
    """Fill the poller up to each of ``pending`` jobs and measure it at each step."""
    steps: list[dict[str, Any]] = []
    policy = PollPolicy(rate=W3_RATE).scaled(scale)
    assert policy.rate is not None
    async with KetchupClient(
        api_key=API_KEY, base_url=base_url, polling=policy, retry=RetryPolicy().scaled(scale)
    ) as client:
        jobs: list[Job] = []
        await _submit(client, 0, 1, jobs)  # warm up: session, connections, poller started
        baseline = _rss()
        submitted = len(jobs)
        for target in sorted(pending):
            started = time.monotonic()
            await _submit(client, submitted, target, jobs)
            submit_seconds = time.monotonic() - started
            submitted = target
            rss = _rss()
            step: dict[str, Any] = {
                "pending": client.pending(),
                "submit_seconds": submit_seconds,
                "rss_bytes": rss,
                "rss_per_pending": (rss - baseline) / max(1, client.pending() - 1),
            }
            step.update(await _poller_cpu(client, queries))
            steps.append(step)
        unresolved = sum(1 for job in jobs if not job.done())
    bare = await paced_query_cost(base_url, policy.rate, queries)
    return {
        "bare_paced_query_cpu": bare,
        "baseline_rss_bytes": baseline,
        "steps": steps,
        "jobs": submitted,
        "still_pending_at_close": unresolved,
        "rate_budget": policy.rate,
    }
