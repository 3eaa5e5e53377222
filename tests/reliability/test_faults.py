"""The fault matrix: N jobs through one injected fault each, every job accounted for.

Each test runs a few hundred distinct prompts through ``generate_many`` against a seeded,
time-scaled ``FakeKetchupServer`` over real sockets and checks the ledger (see
``_accounting``): resolved exactly once, none lost, none paid twice, nothing left running.
"""

from __future__ import annotations

import anyio
import pytest
from aiohttp import web

from ketchup_async import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    RateLimitError,
    RetryPolicy,
)
from ketchup_async.testing import FakeKetchupServer, Faults
from ketchup_async.webhooks import WebhookReceiver

from ._accounting import (
    API_KEY,
    Ledger,
    check_closed_clean,
    client_for,
    fake_server,
    run_many,
)

pytestmark = pytest.mark.anyio

SCALE = 0.005
N = 300
DEADLINE = 30.0  # real seconds: a hang is a failure, not a stuck suite


async def _run(server: FakeKetchupServer, n: int = N, **kwargs: object) -> Ledger:
    on_outcome = kwargs.pop("on_outcome", None)
    client = client_for(server, SCALE, **kwargs)  # type: ignore[arg-type]
    try:
        with anyio.fail_after(DEADLINE):
            ledger = await run_many(client, n, on_outcome=on_outcome)  # type: ignore[arg-type]
        assert client.pending() == 0
    finally:
        await check_closed_clean(client)
    return ledger


async def test_500s_on_a_fifth_of_queries_fail_no_job() -> None:
    """20% HTTP 500 on queries: every job still succeeds, each paid once."""
    async with fake_server(SCALE, query_faults=Faults(error_500=0.2)) as server:
        ledger = await _run(server)
        ledger.check(server)
        assert server.stats.faults_injected["error_500"] > 0


async def test_html_502_pages_on_queries_fail_no_job() -> None:
    """10% HTML 502 pages from a proxy on queries: a GET retries, so every job succeeds."""
    async with fake_server(SCALE, query_faults=Faults(html_502=0.1)) as server:
        ledger = await _run(server)
        ledger.check(server)
        assert server.stats.requests[("query", 502)] > 0


async def test_html_502_pages_on_submits_are_ambiguous_never_resent() -> None:
    """10% HTML 502 pages on submits: the task may exist, so those inputs are reported as
    maybe-processed and never sent twice; every other input succeeds."""
    async with fake_server(SCALE, submit_faults=Faults(html_502=0.1)) as server:
        ledger = await _run(server)
        ledger.check(server, allowed=(APIConnectionError,))
        failed = [o for o in ledger.outcomes() if not o.ok]
        assert len(failed) == server.stats.requests[("submit", 502)] > 0
        for outcome in failed:
            assert isinstance(outcome.error, APIConnectionError)
            assert outcome.error.may_have_been_processed
        assert all(n == 1 for n in server.stats.created_per_prompt.values())


async def test_connection_resets_on_queries_fail_no_job() -> None:
    """5% of queries answered by a connection reset: every job still succeeds."""
    async with fake_server(SCALE, query_faults=Faults(reset=0.05)) as server:
        ledger = await _run(server)
        ledger.check(server)
        assert server.stats.faults_injected["reset"] > 0


async def test_query_latency_beyond_the_timeout_fails_no_job() -> None:
    """10% of queries slower than the client's timeout: they time out and are asked again."""
    # A timeout a loaded machine never reaches by itself (a submit timing out would be
    # ambiguous, rightly), and query latency well past it.
    faults = Faults(latency=0.1, latency_seconds=2.0)
    async with fake_server(SCALE, query_faults=faults) as server:
        ledger = await _run(server, timeout=1.0)
        ledger.check(server)
        assert server.stats.faults_injected["latency"] > 0


async def test_submit_latency_beyond_the_timeout_is_uncertain_never_resent() -> None:
    """A submit that times out after sending is reported as maybe-paid and never resent."""
    faults = Faults(latency=0.1, latency_seconds=0.4)
    async with fake_server(SCALE, submit_faults=faults) as server:
        ledger = await _run(server, timeout=0.2)
        ledger.check(server, allowed=(APITimeoutError,))
        timeouts = [o for o in ledger.outcomes() if o.error is not None]
        assert timeouts, "no submit timed out: the fault did not fire"
        for outcome in timeouts:
            assert isinstance(outcome.error, APITimeoutError)
            assert outcome.error.may_have_been_processed
            assert outcome.task_id is None
        assert len(timeouts) >= server.stats.faults_injected["latency"]  # (+ any slow box)


async def test_429_storm_with_retry_after() -> None:
    """Both endpoints rate limited with Retry-After: the client waits it out, nothing doubles."""
    async with fake_server(
        SCALE, query_rate_limit=4.0, submit_rate_limit=10.0, retry_after=2.0
    ) as server:
        ledger = await _run(server, max_retries=10)
        ledger.check(server, allowed=(RateLimitError,))
        assert server.stats.requests[("query", 429)] > 0
        # The submit controller's slow start finds the submit limit with few 429s, if any.
        assert server.stats.requests[("submit", 429)] <= N * 0.1
        assert ledger.kinds()["ok"] == N


async def test_server_restart_mid_run_loses_nothing() -> None:
    """The server drops every connection mid-run: queries resume, no submit is resent."""
    restarted = False

    async def restart_once(ledger: Ledger) -> None:
        nonlocal restarted
        if not restarted and ledger.received >= N // 3:
            restarted = True
            await server.restart()

    async with fake_server(SCALE) as server:
        ledger = await _run(server, on_outcome=restart_once)
        assert restarted
        ledger.check(server, allowed=(APIConnectionError,))
        for outcome in ledger.outcomes():
            if outcome.error is not None:  # only a submit caught on the wire may fail
                assert isinstance(outcome.error, APIConnectionError)
                assert outcome.task_id is None


async def test_revoked_key_fails_every_pending_job_and_nothing_hangs() -> None:
    """The key is revoked mid-run: every unresolved job fails with AuthenticationError."""

    async def revoke(ledger: Ledger) -> None:
        if ledger.received == N // 4:
            server.revoke_key(API_KEY)

    async with fake_server(SCALE) as server:
        ledger = await _run(server, on_outcome=revoke)
        ledger.check(server, allowed=(AuthenticationError,))
        kinds = ledger.kinds()
        assert kinds["ok"] >= N // 4
        assert kinds["AuthenticationError"] > 0
        assert kinds["ok"] + kinds["AuthenticationError"] == N
        tracked = [o for o in ledger.outcomes() if o.task_id is not None and not o.ok]
        assert tracked, "no pending job was failed by the poller"


async def test_connection_dropped_after_accept_is_uncertain_never_resent() -> None:
    """A submit whose connection drops after the task was created: maybe-paid, sent once."""
    async with fake_server(SCALE, submit_faults=Faults(reset_after_accept=0.1)) as server:
        ledger = await _run(server)
        ledger.check(server, allowed=(APIConnectionError,))
        dropped = [o for o in ledger.outcomes() if o.error is not None]
        assert len(dropped) == server.stats.faults_injected["reset_after_accept"] > 0
        for outcome in dropped:
            error = outcome.error
            assert isinstance(error, APIConnectionError)
            assert error.may_have_been_processed
            assert "may have been processed" in str(error)
            assert outcome.request is not None
            assert server.stats.created_per_prompt[outcome.request.prompt] == 1


async def test_persistent_429s_on_submits_delay_inputs_but_never_fail_them() -> None:
    """A server accepting 2 submits per API second: refused submits wait for the controller,
    not for their own retry count, so every input succeeds even with no retries at all."""
    async with fake_server(SCALE, submit_rate_limit=2.0, retry_after=1.0) as server:
        client = client_for(server, SCALE, retry=RetryPolicy(max_retries=0).scaled(SCALE))
        try:
            with anyio.fail_after(DEADLINE):
                ledger = await run_many(client, 200, concurrency=32)
        finally:
            await check_closed_clean(client)
        ledger.check(server)
        assert server.stats.requests[("submit", 429)] > 0
        assert ledger.kinds()["ok"] == 200


async def test_lost_and_duplicated_callbacks_resolve_every_job_once() -> None:
    """20% of callbacks lost, 20% sent twice: the safety-net poll and dedup keep the count."""
    async with (
        fake_server(SCALE, callback_drop_rate=0.2, callback_duplicate_rate=0.2) as server,
        client_for(server, SCALE) as client,
    ):
        receiver = WebhookReceiver(client)
        app = web.Application()
        receiver.add_to(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            url = receiver.callback_url(f"http://127.0.0.1:{runner.addresses[0][1]}")
            with anyio.fail_after(DEADLINE):
                ledger = await run_many(client, 200, callback_url=url)
            assert client.pending() == 0
        finally:
            await runner.cleanup()
        await check_closed_clean(client)
    ledger.check(server)
    assert server.stats.callbacks_dropped > 0
    assert receiver.stats.delivered > 0
    assert receiver.stats.duplicate + receiver.stats.unknown > 0
    polled = {task_id for task_id, n in server.stats.polls.items() if n}
    assert len(polled) < 200  # most jobs were resolved by their callback, not by a query


@pytest.mark.own_money_check
async def test_charged_then_500_is_paid_twice_the_one_documented_assumption() -> None:
    """A 500 after the task was created is retried (the guide says so): the ledger shows it."""
    async with fake_server(SCALE, submit_faults=Faults(error_500_after_accept=0.2)) as server:
        ledger = await _run(server, n=100)
        hidden = server.ledger.hidden()
        assert hidden, "the fault did not fire"
        assert all(entry.answer == "error_500_after_accept" for entry in hidden)
        doubled = [p for p in ledger.prompts if len(server.ledger.for_prompt(p)) > 1]
        assert len(doubled) == len({entry.prompt for entry in hidden})  # each one paid again
