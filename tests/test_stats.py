"""``client.stats()``: a frozen snapshot of a client's counters, with or without OpenTelemetry."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
from conftest import API_KEY, SCALE, make_client

from ketchup_async import ClientStats, GenerationResult, PollPolicy, TaskFailedError
from ketchup_async.testing import FakeKetchupServer

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent


async def test_stats_before_the_client_opened() -> None:
    """A client never opened: nothing counted, no budget yet, the prior render time."""
    async with FakeKetchupServer(api_keys=(API_KEY,), time_scale=SCALE) as server:
        client = make_client(server, polling=PollPolicy(expected_duration=12.0))
        stats = client.stats()
    assert (stats.pending, stats.submitted, stats.queries, stats.rate_limited) == (0, 0, 0, 0)
    assert stats.query_budget is None
    assert stats.render_time_median == pytest.approx(12.0)
    assert stats.render_time_p90 > stats.render_time_median
    assert stats.render_times_learned == 0
    assert stats.credits_consumed == 0


async def test_stats_count_jobs_queries_429s_and_credits() -> None:
    """Submitted, succeeded, failed, queries, 429s, credits and learned render times add up."""
    async with FakeKetchupServer(
        api_keys=(API_KEY,), time_scale=SCALE, seed=3, failure_rate=0.3, query_rate_limit=0.5
    ) as server:
        async with make_client(server) as client:
            jobs = [await client.submit(f"prompt {i}") for i in range(12)]
            during = client.stats()
            outcomes = await asyncio.gather(*(job.wait(60) for job in jobs), return_exceptions=True)
            stats = client.stats()
            queries = client.queries_sent
    assert during.pending == 12
    results = [o for o in outcomes if isinstance(o, GenerationResult)]
    failures = [o for o in outcomes if isinstance(o, TaskFailedError)]
    assert len(results) + len(failures) == 12
    assert (stats.submitted, stats.succeeded, stats.failed, stats.pending) == (
        12,
        len(results),
        len(failures),
        0,
    )
    assert stats.queries == queries > 0
    assert stats.rate_limited == server.stats.rate_limited > 0
    assert stats.query_budget is not None
    # adaptive: never above one query per pending task (12 at most) per min_interval
    assert stats.query_budget <= 12 / PollPolicy().scaled(SCALE).min_interval
    spent = sum((r.consumed or Decimal(0) for r in results), Decimal(0))
    spent += sum((f.consumed for f in failures if isinstance(f.consumed, Decimal)), Decimal(0))
    assert stats.credits_consumed == spent > 0
    assert stats.render_times_learned == 12


async def test_stats_count_cancelled_and_tracked_jobs(server: FakeKetchupServer) -> None:
    """``Job.cancel()`` counts as cancelled; ``track()`` as tracked, not submitted."""
    async with make_client(server) as client:
        job = await client.submit("a red bicycle")
        job.cancel()
        tracked = client.track(job.task_id)
        await tracked.wait(30)
        stats = client.stats()
    assert (stats.submitted, stats.tracked, stats.cancelled, stats.succeeded) == (1, 1, 1, 1)
    assert stats.render_times_learned == 0  # a resumed task's render time is unknown


def test_stats_are_frozen_and_json_able() -> None:
    """A snapshot cannot change, and ``as_dict()`` is JSON (credits as an exact string)."""
    stats = ClientStats(
        pending=1,
        submitted=2,
        tracked=0,
        succeeded=1,
        failed=0,
        cancelled=0,
        queries=3,
        rate_limited=0,
        query_budget=10.0,
        render_time_median=8.0,
        render_time_p90=14.0,
        render_times_learned=1,
        credits_consumed=Decimal("0.5"),
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        stats.pending = 0  # type: ignore[misc]
    assert json.loads(json.dumps(stats.as_dict()))["credits_consumed"] == "0.5"


WITHOUT_OTEL = """
import asyncio, sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError("blocked: " + name)

sys.meta_path.insert(0, Block())
import ketchup_async
from ketchup_async import KetchupClient, PollPolicy, RetryPolicy, Telemetry
from ketchup_async.testing import FakeKetchupServer

async def main():
    async with FakeKetchupServer(api_keys=("dk-test0123456789",), time_scale=0.01) as server:
        async with KetchupClient(
            api_key="dk-test0123456789",
            base_url=server.base_url,
            polling=PollPolicy().scaled(0.01),
            retry=RetryPolicy().scaled(0.01),
            telemetry=Telemetry(record_prompts=True),
        ) as client:
            await client.generate("a red bicycle", timeout=30)
            stats = client.stats()
    assert not any(m.startswith("opentelemetry") for m in sys.modules), "imported"
    print(stats.submitted, stats.succeeded, stats.queries > 0)

asyncio.run(main())
"""


def test_the_sdk_works_without_opentelemetry() -> None:
    """With ``opentelemetry`` impossible to import, the SDK imports, runs a job and counts it."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_OTEL],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1", "True"]
