"""The money invariant itself can fail: an unreported task, a task paid twice, a pending job."""

from __future__ import annotations

import aiohttp
import pytest

from ketchup_async.testing import Report

from ._accounting import API_KEY, client_for, fake_server
from ._invariant import Capture, capture_reports

pytestmark = pytest.mark.anyio

SCALE = 0.01
BODY = {"model": "google/gempix2", "prompt": "behind the SDK's back"}


async def _raw_submit(url: str) -> str:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/api/image/gen", json=BODY, headers=headers) as r,
    ):
        task_id: str = (await r.json())["data"]["task_id"]
        return task_id


@pytest.mark.own_money_check
async def test_a_task_nobody_was_told_about_is_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    """A task created by a submit the caller never heard of breaks the invariant."""
    with capture_reports(monkeypatch) as capture:
        async with fake_server(SCALE) as server:
            task_id = await _raw_submit(server.base_url)
    (problem,) = capture.violations()
    assert task_id in problem
    assert "never reported" in problem
    assert capture.violations(extra=[Report(prompt=BODY["prompt"], uncertain=True)]) == []


async def test_jobs_and_outcomes_are_reports(money_invariant: Capture) -> None:
    """submit() and generate_many() report what they hand the caller; the autouse check holds."""
    async with fake_server(SCALE) as server, client_for(server, SCALE) as client:
        job = await client.submit("one")
        await job
        outcomes = [o async for o in client.generate_many(["two", "three"])]
    assert {r.task_id for r in money_invariant.reports} == {
        job.task_id,
        *(o.task_id for o in outcomes),
    }
    assert money_invariant.violations() == []


@pytest.mark.own_money_check
async def test_a_job_left_pending_is_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    """A job handed to the caller and never resolved means a caller waits forever."""
    with capture_reports(monkeypatch) as capture:
        async with fake_server(SCALE, render_time=1000.0) as server:
            client = client_for(server, SCALE)
            job = await client.submit("slow")
            problems = capture.violations()
            await client.aclose()
    assert problems == [f"job {job.task_id} is still pending after the test"]
    assert capture.violations() == []


@pytest.mark.own_money_check
async def test_two_tasks_for_one_input_is_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same input charged twice (one reported, one resent behind its back) is flagged."""
    with capture_reports(monkeypatch) as capture:
        async with fake_server(SCALE) as server, client_for(server, SCALE) as client:
            await _raw_submit(server.base_url)
            job = await client.submit(BODY["prompt"])
            await job
    problems = capture.violations()
    assert any("2 tasks created for 1" in p for p in problems)
