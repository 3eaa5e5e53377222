"""The soak benchmark, short: 1,000 jobs through the whole fault mix, every one accounted for."""

from __future__ import annotations

import asyncio
import logging

import pytest

from benchmarks.soak import SUBMIT_FAULTS, aiohttp_restart_race, ok, render, run_soak

pytestmark = pytest.mark.anyio


async def test_a_thousand_jobs_through_every_fault_are_all_accounted_for(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """500s, 502s, resets, drops after accept, latency, 429s and a restart: none lost or doubled."""
    caplog.set_level(logging.WARNING, logger="aiohttp.server")
    # 1% drops after accept (0.5% in `make soak`): about 10 in 1,000 submits, so it fires.
    rates = {**SUBMIT_FAULTS, "reset_after_accept": 0.01}
    summary = await run_soak(
        jobs=1000, scale=0.002, concurrency=300, timeout=0.3, restarts=1, submit_faults=rates
    )
    assert ok(summary), render(summary)
    assert summary["resolved_once"] == 1000
    assert summary["lost"] == summary["resolved_twice"] == summary["paid_twice"] == 0
    faults = summary["faults_injected"]
    for kind in ("error_500", "html_502", "reset", "reset_after_accept", "latency"):
        assert faults.get(kind, 0) > 0, kind
    assert faults["429_on_query"] + faults["429_on_submit"] > 0
    assert faults["server_restart"] == 1
    assert summary["outcomes"]["succeeded"] > 900
    noise = [
        r.getMessage()
        for r in caplog.records
        if r.name == "aiohttp.server" and not aiohttp_restart_race(r)
    ]
    assert noise == []  # clients giving up on slow answers leave no traceback in the fake


def test_only_aiohttp_restart_race_is_excused() -> None:
    """The excused log record is aiohttp's InvalidStateError, not an abandoned request's."""

    def record(error: BaseException) -> logging.LogRecord:
        info = (type(error), error, None)
        return logging.LogRecord("aiohttp.server", logging.ERROR, "x", 1, "m", (), info)

    assert aiohttp_restart_race(record(asyncio.InvalidStateError("invalid state")))
    assert not aiohttp_restart_race(record(ConnectionResetError("Connection lost")))
