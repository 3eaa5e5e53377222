"""The benchmarks' smoke mode (so they cannot rot), their figures, and the fake's task list."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from benchmarks.figures import median_figures, percentile, run_figures
from ketchup_async import KetchupClient
from ketchup_async.testing import FakeKetchupServer

from .conftest import API_KEY, SCALE

ROOT = Path(__file__).resolve().parent.parent


def _record(results: list[list[Any]], *, duplicates: int = 0) -> dict[str, Any]:
    return {
        "jobs": 3,
        "started_at": 100.0,
        "results": results,
        "duplicates": duplicates,
        "cpu_seconds": 0.03,
        "peak_rss_bytes": 50_000_000,
    }


def _stats(**overrides: Any) -> dict[str, Any]:
    stats = {
        "queries": 6,
        "rate_limited": 0,
        "duplicate_prompts": 0,
        "tasks_created": 3,
        "min_poll_gap": 0.5,
    }
    stats.update(overrides)
    return stats


TASKS = {f"t{i}": {"completed_at": 100.0 + i, "status": "success"} for i in range(3)}


def test_smoke_run_writes_results_with_nothing_lost(tmp_path: Path) -> None:
    """`python -m benchmarks --smoke` runs every workload and writes RESULTS.md, chart, JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    markdown = (tmp_path / "RESULTS.md").read_text()
    for heading in ("## Targets", "## W1", "## W2", "## W3", "*physical limit*"):
        assert heading in markdown
    assert (tmp_path / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((tmp_path / "results.json").read_text())
    rows = [row for w in results["workloads"].values() for row in w.get("rows", {}).values()]
    assert {row["variant"] for row in rows} == {"ketchup", "webhooks", "naive", "threads"}
    for row in rows:
        assert row["median"]["lost"] == 0, row["key"]
        assert row["median"]["duplicated"] == 0, row["key"]
    assert results["workloads"]["W3"]["median"]["steps"][-1]["pending"] == 2000
    frontier = results["workloads"]["W1"]["frontier"]  # the best-schedule bound, per lag
    assert [p["lag_p50"] for p in frontier] == sorted(p["lag_p50"] for p in frontier)
    assert all(p["queries_per_job"] >= 1.0 for p in frontier)
    assert "W2" in results["workloads"]
    assert "frontier" not in results["workloads"]["W2"]
    assert "| naive asyncio" in done.stdout  # the headline table


def test_lag_is_measured_from_server_completion_in_api_seconds() -> None:
    """Lag = (resolved_at - completed_at) / scale, per job."""
    record = _record([["t0", 100.5, True], ["t1", 101.5, True], ["t2", 104.0, True]])
    figures = run_figures(record, _stats(), TASKS, scale=0.5, server_cpu=0.0)
    assert figures["lag_p50"] == pytest.approx(1.0)
    assert figures["lag_max"] == pytest.approx(4.0)
    assert figures["wall"] == pytest.approx(8.0)
    assert figures["queries_per_job"] == pytest.approx(2.0)
    assert figures["cpu_ms_per_job"] == pytest.approx(10.0)


def test_unresolved_and_failed_inputs_count_as_lost() -> None:
    """An input never resolved, or resolved without a task, is lost."""
    record = _record([["t0", 100.5, True], [None, 100.2, False], [None, None, False]])
    figures = run_figures(record, _stats(tasks_created=1), TASKS, scale=1.0, server_cpu=0.0)
    assert figures["lost"] == 2
    assert figures["duplicated"] == 0


def test_duplicates_from_client_or_server_are_counted() -> None:
    """A second report, a prompt created twice or two inputs on one task are duplicates."""
    record = _record([["t0", 101, True], ["t0", 101, True], ["t2", 103, True]], duplicates=1)
    stats = _stats(duplicate_prompts=1, tasks_created=4)
    figures = run_figures(record, stats, TASKS, scale=1.0, server_cpu=0.0)
    assert figures["duplicated"] == 1 + 1 + 1 + 1


def test_medians_report_the_worst_round_for_lost_jobs() -> None:
    """Lost jobs are never hidden by a median: the worst round is reported."""
    rounds = [{"lag_p50": v, "lost": lost} for v, lost in ((1.0, 0), (3.0, 2), (2.0, 0))]
    merged = median_figures(rounds)
    assert merged["lag_p50"] == 2.0
    assert merged["lost"] == 2


def test_percentile_interpolates_and_handles_empty() -> None:
    """Linear interpolation between order statistics; nan for no values."""
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile([5.0], 99) == 5.0
    assert math.isnan(percentile([], 50))


@pytest.mark.anyio
async def test_fake_tasks_endpoint_lists_completion_times() -> None:
    """GET /_fake/tasks gives each task's completed_at (monotonic), render time and status."""
    async with FakeKetchupServer(api_keys=(API_KEY,), time_scale=SCALE, seed=2) as server:
        async with KetchupClient(api_key=API_KEY, base_url=server.base_url) as client:
            job = await client.submit("a red bicycle")
            server.complete_now(job.task_id)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{server.base_url}/_fake/tasks") as response,
        ):
            body = await response.json()
    task = body["tasks"][job.task_id]
    assert task["status"] == "success"
    assert task["completed_at"] == server.tasks[job.task_id].completed_at
    assert task["render_seconds"] == server.tasks[job.task_id].render_seconds
    assert task["completed_at"] <= body["now"]
