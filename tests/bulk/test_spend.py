"""Spend control of durable runs: the credit budget and content-addressed reuse (fake server)."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from ketchup_async import BulkOptions, PollPolicy, RetryPolicy, ValidationError
from ketchup_async.bulk._journal import Journal, journal_path
from ketchup_async.bulk._run import BulkError, BulkProgress, resume_bulk, run_bulk
from ketchup_async.testing import FakeKetchupServer

from ..conftest import API_KEY, make_client

pytestmark = pytest.mark.anyio

FAST = 0.002


def _prompts(n: int, tag: str) -> list[str]:
    return [f"{tag} prompt {i}" for i in range(n)]


def _manifest(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture
async def fake() -> AsyncIterator[FakeKetchupServer]:
    """A fast fake API (0.5 credits a job)."""
    async with FakeKetchupServer(api_keys=(API_KEY,), time_scale=FAST, seed=5) as server:
        yield server


def _client(server: FakeKetchupServer):  # type: ignore[no-untyped-def]
    return make_client(server, polling=PollPolicy().scaled(FAST), retry=RetryPolicy().scaled(FAST))


def _created(server: FakeKetchupServer) -> int:
    return sum(server.stats.created_per_prompt.values())


# -- budget ---------------------------------------------------------------------------------


async def test_a_budget_caps_spend_and_leaves_the_rest_queued(
    fake: FakeKetchupServer, tmp_path: Path
) -> None:
    """max_credits=3 at 0.5 a job: 6 jobs, the rest queued with the reason 'budget'."""
    async with _client(fake) as client:
        summary = await run_bulk(client, _prompts(20, "cap"), tmp_path, max_credits=3)
    assert summary.consumed == Decimal(3)
    assert (summary.succeeded, summary.pending, summary.budget_reached) == (6, 14, True)
    assert not summary.ok
    assert _created(fake) == 6
    queued = [line for line in _manifest(tmp_path) if line["status"] == "queued"]
    assert len(queued) == 14
    assert {line["error"] for line in queued} == {"budget"}


async def test_resume_counts_earlier_spend_and_pays_nothing_twice(
    fake: FakeKetchupServer, tmp_path: Path
) -> None:
    """A resume with a larger budget counts what was spent and finishes the rest once each."""
    prompts = _prompts(10, "resume")
    async with _client(fake) as client:
        first = await run_bulk(client, prompts, tmp_path, max_credits=2)
        second = await resume_bulk(client, tmp_path, max_credits="4")
        third = await resume_bulk(client, tmp_path, max_credits=100)
    assert (first.succeeded, second.succeeded, third.succeeded) == (4, 8, 10)
    assert (second.spent_before, second.spent, second.consumed) == (2, 2, 4)
    assert third.ok
    assert not third.budget_reached
    assert set(fake.stats.created_per_prompt.values()) == {1}


async def test_a_budget_of_zero_sends_nothing(fake: FakeKetchupServer, tmp_path: Path) -> None:
    """max_credits=0: no submit at all."""
    async with _client(fake) as client:
        summary = await run_bulk(client, _prompts(3, "zero"), tmp_path, max_credits=0)
    assert (_created(fake), summary.pending, summary.budget_reached) == (0, 3, True)


async def test_a_price_lets_jobs_run_concurrently_from_the_start(
    fake: FakeKetchupServer, tmp_path: Path
) -> None:
    """With price=0.5 the first jobs go together, and spend still stops at the budget."""
    seen: list[BulkProgress] = []
    async with _client(fake) as client:
        summary = await run_bulk(
            client,
            _prompts(12, "price"),
            tmp_path,
            max_credits=2,
            price="0.5",
            progress=seen.append,
            progress_interval=0.001,
        )
    assert summary.consumed == Decimal(2)
    assert max(p.in_flight for p in seen) > 1
    assert seen[-1].max_credits == Decimal(2)


async def test_an_underestimated_price_never_sends_past_the_budget(
    fake: FakeKetchupServer, tmp_path: Path
) -> None:
    """A job costs more than its given price: the budget counts it; nothing sent once past."""
    async with _client(fake) as client:
        summary = await run_bulk(client, _prompts(8, "under"), tmp_path, max_credits=1, price=0.25)
    assert summary.consumed <= Decimal(2)  # 4 jobs were admitted at 0.25 each: 0.5 charged each
    assert summary.budget_reached


@pytest.mark.parametrize(
    ("name", "value"), [("max_credits", -1), ("price", "lots"), ("reuse", "some/dir")]
)
def test_bad_spend_options_name_their_field(name: str, value: object) -> None:
    """A bad budget, price or reuse list is a ValidationError naming it."""
    with pytest.raises(ValidationError) as info:
        BulkOptions(**{name: value})  # type: ignore[arg-type]
    assert info.value.field == name


# -- reuse ----------------------------------------------------------------------------------


async def test_reuse_submits_only_new_requests_and_copies_verified_files(
    fake: FakeKetchupServer, tmp_path: Path
) -> None:
    """B = 8 prompts of A + 2 new, reusing A: 2 tasks, 10 files, 8 marked reused."""
    a, b = tmp_path / "a", tmp_path / "b"
    old = _prompts(8, "reuse")
    async with _client(fake) as client:
        await run_bulk(client, old, a)
        before = _created(fake)
        summary = await run_bulk(client, [*old, "new one", "new two"], b, reuse=[a])
    assert _created(fake) - before == 2
    assert summary.ok
    assert (summary.reused, summary.reused_now, summary.saved) == (8, 8, Decimal(4))
    assert summary.consumed == Decimal(1)
    lines = _manifest(b)
    assert len(list(b.glob("*.png"))) == 10
    reused = [line for line in lines if line["status"] == "reused"]
    assert len(reused) == 8
    source = {str(line["id"]): line for line in _manifest(a)}
    for line in reused:
        origin = line["reused_from"]
        assert isinstance(origin, dict)
        assert origin["run"] == str(a)
        assert line["task_id"] == origin["task_id"] == source[origin["id"]]["task_id"]
        assert line["saved"] == source[origin["id"]]["consumed"]
        assert line["consumed"] is None


async def test_a_changed_source_file_is_not_reused(fake: FakeKetchupServer, tmp_path: Path) -> None:
    """A source file whose bytes changed since its run: the input is generated instead."""
    a, b = tmp_path / "a", tmp_path / "b"
    async with _client(fake) as client:
        await run_bulk(client, ["changed cat", "same cat"], a)
        (a / "1.png").write_bytes(b"not the image")
        summary = await run_bulk(client, ["changed cat", "same cat"], b, reuse=[a])
    assert (summary.reused, summary.submitted) == (1, 1)
    assert fake.stats.created_per_prompt["changed cat"] == 2


async def test_reading_a_reused_run_changes_nothing_in_it(
    fake: FakeKetchupServer, tmp_path: Path
) -> None:
    """The reused run's directory is byte for byte the same after, and not locked."""
    a, b = tmp_path / "a", tmp_path / "b"
    async with _client(fake) as client:
        await run_bulk(client, _prompts(3, "ro"), a)

        def snapshot() -> dict[str, str]:
            return {
                str(p.relative_to(a)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(a.rglob("*"))
                if p.is_file() and p.name != "lock"
            }

        before = snapshot()
        journal = await Journal.open(journal_path(a))  # A is in use by another run meanwhile
        try:
            await run_bulk(client, _prompts(3, "ro"), b, reuse=[a])
        finally:
            await journal.close()
        await run_bulk(client, _prompts(3, "ro"), tmp_path / "c", reuse=[os.fspath(a)])
    assert snapshot() == before
    assert len(_manifest(tmp_path / "c")) == 3


async def test_reuse_of_a_directory_without_a_run_is_refused(
    fake: FakeKetchupServer, tmp_path: Path
) -> None:
    """--reuse of a directory that holds no run: one BulkError, nothing sent."""
    async with _client(fake) as client:
        with pytest.raises(BulkError, match="no ketchup run"):
            await run_bulk(client, ["x"], tmp_path / "b", reuse=[tmp_path / "nothing"])
    assert _created(fake) == 0


async def test_a_version_1_journal_is_upgraded_in_place(tmp_path: Path) -> None:
    """A journal without the checksum and reuse columns gets them on open; its rows stay."""
    path = journal_path(tmp_path)
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema', '1');"
        "CREATE TABLE inputs (seq INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, request TEXT "
        "NOT NULL, state TEXT NOT NULL, task_id TEXT, images TEXT, files TEXT, consumed TEXT, "
        "error TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL);"
        "INSERT INTO inputs (key, request, state, consumed, created_at, updated_at) VALUES "
        """('1', '{"model":"google/gempix2","prompt":"old"}', 'failed', '0.5', 0, 0);"""
    )
    conn.commit()
    conn.close()
    journal = await Journal.open(path)
    try:
        row = await journal.row("1")
        assert row is not None
        assert (row.prompt, row.checksums, row.reused_from) == ("old", (), None)
        assert await journal.get_meta("schema") == "2"
    finally:
        await journal.close()
