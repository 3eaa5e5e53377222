"""The runner's submit hooks: what the journal says while a submit is refused and retried."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ketchup_async import GenerateRequest, Outcome, SubmitHooks
from ketchup_async.bulk._journal import Journal, journal_path
from ketchup_async.bulk._run import run_bulk
from ketchup_async.bulk._states import State

pytestmark = pytest.mark.anyio


class OutageClient:
    """The public surface a bulk run uses, answering every submit attempt like a 503 outage.

    Each input's hooks see ``on_send`` then ``on_refused``, as the client does before it sleeps
    ``Retry-After`` (here: an hour) and tries again.
    """

    base_url = "https://outage.test"
    model = "google/gempix2"
    max_images = 4
    queries_sent = 0
    closed = False

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.states: list[str] = []
        self.waiting = asyncio.Event()

    def track(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("nothing to re-attach")

    async def generate_many(
        self,
        inputs: AsyncIterator[GenerateRequest],
        *,
        concurrency: int,
        hooks: Callable[[int, GenerateRequest], SubmitHooks],
    ) -> AsyncIterator[Outcome]:
        request = await inputs.__anext__()
        submit = hooks(0, request)
        assert submit.on_send is not None
        assert submit.on_refused is not None
        for _ in range(self.refusals):
            await submit.on_send()
            await submit.on_refused()
        self.waiting.set()
        await asyncio.sleep(3600)  # the Retry-After wait, where Ctrl-C lands
        yield Outcome(request, None)  # pragma: no cover


async def _until_waiting(client: OutageClient, run: asyncio.Future[Any]) -> None:
    """Wait until the client sleeps in its retry wait (or the run ended: then raise its error)."""
    waiting = asyncio.ensure_future(client.waiting.wait())
    await asyncio.wait([waiting, run], timeout=10, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if run.done():
        run.result()
    assert client.waiting.is_set()


def _state(out: Path) -> str:
    with sqlite3.connect(journal_path(out)) as conn:
        return str(conn.execute("SELECT state FROM inputs WHERE key = '1'").fetchone()[0])


async def test_a_refused_attempt_puts_the_input_back_to_queued(tmp_path: Path) -> None:
    """After on_refused the input is `queued` in the journal: nothing was charged."""
    client = OutageClient(refusals=2)
    run = asyncio.ensure_future(run_bulk(client, ["a red bicycle"], tmp_path))  # type: ignore[arg-type]
    await _until_waiting(client, run)
    assert _state(tmp_path) == State.QUEUED.value
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run


async def test_stopping_during_an_outage_leaves_inputs_queued_not_uncertain(
    tmp_path: Path,
) -> None:
    """Ctrl-C during a Retry-After wait ends at once; a resume finds the input `queued`."""
    client = OutageClient(refusals=1)
    run = asyncio.ensure_future(run_bulk(client, ["a red bicycle"], tmp_path))  # type: ignore[arg-type]
    await _until_waiting(client, run)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(run, timeout=5)
    journal = await Journal.open(journal_path(tmp_path), create=False)
    try:
        assert await journal.recover(resubmit_uncertain=False) == (0, 0)
        row = await journal.row("1")
    finally:
        await journal.close()
    assert row is not None
    assert row.state is State.QUEUED
