"""Submits find the server's limit, as queries do (issue 17): no 429 storm, no failed input."""

from __future__ import annotations

import anyio
import pytest

from ._accounting import check_closed_clean, client_for, fake_server, run_many

pytestmark = pytest.mark.anyio

#: Real seconds per API second: 5 submits per API second is 50 per real second here.
SCALE = 0.1
N = 400


@pytest.mark.slow
async def test_400_prompts_at_once_against_5_submits_per_second() -> None:
    """400 prompts at once, default client, a 5 submits/s server: <= 0.1 submit 429s per job,
    every input submitted exactly once, none failed."""
    async with fake_server(
        SCALE, submit_rate_limit=5.0, retry_after=1.0, render_time=1.0
    ) as server:
        client = client_for(server, SCALE, max_retries=3)
        try:
            with anyio.fail_after(60.0):
                ledger = await run_many(client, N, concurrency=N)
        finally:
            await check_closed_clean(client)
        ledger.check(server)
        refused = server.stats.requests[("submit", 429)]
        assert refused <= 0.1 * N, refused
        assert ledger.kinds()["ok"] == N
        assert sorted(server.stats.created_per_prompt.values()) == [1] * N
