"""Tests of the SQLite journal of bulk runs (``ketchup_async._journal``)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from ketchup_async.bulk._journal import (
    Journal,
    JournalError,
    JournalLockedError,
    JournalMismatchError,
    journal_path,
)
from ketchup_async.bulk._states import InvalidTransitionError, State

pytestmark = pytest.mark.anyio

REQ = '{"model":"google/gempix2","prompt":"%s"}'


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    """A fresh journal with three queued inputs a, b, c (seq 1, 2, 3)."""
    opened = await Journal.open(journal_path(tmp_path))
    await opened.add_inputs([(k, REQ % k) for k in "abc"])
    yield opened
    await opened.close()


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def _submitted(journal: Journal, seq: int, task_id: str) -> None:
    await journal.mark_submitting(seq)
    await journal.mark_submitted(seq, task_id)


async def test_new_inputs_are_queued_in_order(journal: Journal) -> None:
    """Inputs are stored as queued, with their request, in input order."""
    rows = await journal.rows()
    assert [(r.seq, r.key, r.state, r.prompt) for r in rows] == [
        (1, "a", State.QUEUED, "a"),
        (2, "b", State.QUEUED, "b"),
        (3, "c", State.QUEUED, "c"),
    ]


async def test_adding_the_same_inputs_again_adds_nothing(journal: Journal) -> None:
    """A re-run with the same inputs leaves the journal as it is."""
    await _submitted(journal, 1, "ta1")
    assert await journal.add_inputs([(k, REQ % k) for k in "abcd"]) == 1
    row = await journal.row("a")
    assert row is not None
    assert row.state is State.SUBMITTED


async def test_a_changed_request_is_refused_and_its_batch_not_added(journal: Journal) -> None:
    """A key with another request raises, and nothing of that batch is stored."""
    with pytest.raises(JournalMismatchError, match="'b'") as info:
        await journal.add_inputs([("d", REQ % "d"), ("b", REQ % "changed")])
    assert info.value.key == "b"
    assert await journal.row("d") is None


async def test_a_task_id_is_stored_with_the_submitted_state(journal: Journal) -> None:
    """submitting then submitted records the task id."""
    await _submitted(journal, 2, "ta-two")
    row = await journal.row("b")
    assert row is not None
    assert (row.state, row.task_id) == (State.SUBMITTED, "ta-two")


async def test_success_records_images_and_credits(journal: Journal) -> None:
    """succeeded keeps the result images and the credits consumed."""
    await _submitted(journal, 1, "ta1")
    await journal.mark_succeeded(1, ["https://cdn/x.png"], "0.500000")
    row = await journal.row("a")
    assert row is not None
    assert (row.state, row.images, row.consumed) == (
        State.SUCCEEDED,
        ("https://cdn/x.png",),
        "0.500000",
    )
    assert await journal.consumed_total() == Decimal("0.5")


async def test_a_forbidden_transition_changes_nothing(journal: Journal) -> None:
    """A submitted input cannot be marked submitting again."""
    await _submitted(journal, 1, "ta1")
    with pytest.raises(InvalidTransitionError, match="'submitted' to 'submitting'"):
        await journal.mark_submitting(1)
    row = await journal.row("a")
    assert row is not None
    assert (row.state, row.task_id) == (State.SUBMITTED, "ta1")


async def test_a_refused_write_does_not_undo_its_neighbours(journal: Journal) -> None:
    """Writes committed in the same transaction survive one refused write."""
    results = await asyncio.gather(
        journal.mark_submitting(1),
        journal.mark_succeeded(2, [], None),  # b is queued: refused
        journal.mark_submitting(3),
        return_exceptions=True,
    )
    assert results[0] is None
    assert results[2] is None
    assert isinstance(results[1], InvalidTransitionError)
    counts = await journal.counts()
    assert (counts[State.SUBMITTING], counts[State.QUEUED]) == (2, 1)


async def test_requeue_is_only_from_submitting(journal: Journal) -> None:
    """A refused submit goes back to queued; a queued input cannot be 're-queued'."""
    await journal.mark_submitting(1)
    await journal.mark_requeued(1, "HTTP 503")
    row = await journal.row("a")
    assert row is not None
    assert (row.state, row.error) == (State.QUEUED, "HTTP 503")
    with pytest.raises(InvalidTransitionError):
        await journal.mark_requeued(2, "nope")


async def test_recover_makes_interrupted_submits_uncertain(journal: Journal) -> None:
    """An input left in submitting by a dead run becomes uncertain, not queued."""
    await journal.mark_submitting(1)
    await _submitted(journal, 2, "ta2")
    assert await journal.recover(resubmit_uncertain=False) == (1, 0)
    counts = await journal.counts()
    assert (counts[State.UNCERTAIN], counts[State.SUBMITTED], counts[State.QUEUED]) == (1, 1, 1)


async def test_recover_can_requeue_uncertain_inputs(journal: Journal) -> None:
    """With resubmit_uncertain, uncertain inputs go back to queued (and only those)."""
    await journal.mark_submitting(1)
    await journal.mark_uncertain(1, "timed out")
    await _submitted(journal, 2, "ta2")
    assert await journal.recover(resubmit_uncertain=True) == (0, 1)
    row = await journal.row("a")
    assert row is not None
    assert (row.state, row.error) == (State.QUEUED, None)
    other = await journal.row("b")
    assert other is not None
    assert other.state is State.SUBMITTED


async def test_files_are_only_recorded_for_successes(journal: Journal) -> None:
    """set_files refuses an input that has not succeeded."""
    with pytest.raises(JournalError, match="has not succeeded"):
        await journal.set_files(1, ["a.png"])


async def test_missing_files_counts_successes_without_all_files(journal: Journal) -> None:
    """A success with fewer files than images is missing files."""
    for seq in (1, 2):
        await _submitted(journal, seq, f"ta{seq}")
        await journal.mark_succeeded(seq, ["u1", "u2"], "1")
    await journal.set_files(1, ["a.png", "a-2.png"])
    await journal.set_files(2, ["b.png"], "image 2: HTTP 403")
    assert await journal.missing_files() == 1


async def test_names_are_unique_ignoring_case(journal: Journal) -> None:
    """Two inputs whose names sanitise alike get different stems, stable per input."""
    first = await journal.claim_names(1, "Cat", 2)
    second = await journal.claim_names(2, "cat", 1)
    assert first == ["Cat", "Cat-2"]
    assert second[0].lower() != "cat"
    assert second[0].startswith("cat-")
    assert await journal.claim_names(1, "ignored", 2) == first


async def test_manifest_has_one_line_per_input(journal: Journal, tmp_path: Path) -> None:
    """The manifest is written atomically from the journal: id, prompt, status, files..."""
    await _submitted(journal, 1, "ta1")
    await journal.mark_succeeded(1, ["u"], "0.5")
    await journal.set_files(1, ["a.png"])
    dest = tmp_path / "manifest.jsonl"
    assert await journal.write_manifest(dest) == 3
    lines = [json.loads(line) for line in dest.read_text().splitlines()]
    assert lines[0] == {
        "id": "a",
        "prompt": "a",
        "task_id": "ta1",
        "status": "succeeded",
        "files": ["a.png"],
        "consumed": "0.5",
        "error": None,
    }
    assert [line["status"] for line in lines[1:]] == ["queued", "queued"]
    assert _names(tmp_path) == [".ketchup", "manifest.jsonl"]


async def test_concurrent_writes_share_commits(journal: Journal) -> None:
    """Writes queued while a commit runs go into the next transaction together."""
    await journal.add_inputs([(f"k{i}", REQ % i) for i in range(300)])
    before = journal.commits
    rows = await journal.rows(State.QUEUED, limit=1000)
    await asyncio.gather(*(journal.mark_submitting(r.seq) for r in rows))
    assert (await journal.counts())[State.SUBMITTING] == 303
    assert journal.commits - before < 30


async def test_sqlite_runs_on_the_journal_thread(journal: Journal) -> None:
    """The connection is used by one dedicated thread, never the event loop's."""
    name = await journal._submit(lambda conn: threading.current_thread().name)
    assert name.startswith("ketchup-journal")
    assert name != threading.current_thread().name


async def test_the_journal_is_wal_with_full_sync(journal: Journal) -> None:
    """WAL mode and synchronous=FULL (2) on the journal's connection."""
    mode = await journal._submit(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
    sync = await journal._submit(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
    assert (mode, sync) == ("wal", 2)


async def test_a_second_run_on_the_same_directory_is_refused(
    journal: Journal, tmp_path: Path
) -> None:
    """The journal's lock keeps a second process (or opener) out until it is closed."""
    with pytest.raises(JournalLockedError, match="another ketchup run"):
        await Journal.open(journal_path(tmp_path))
    await journal.close()
    reopened = await Journal.open(journal_path(tmp_path))
    assert len(await reopened.rows()) == 3
    await reopened.close()


async def test_a_closed_journal_refuses_writes(journal: Journal) -> None:
    """Writing after close is a clear error, not a crash in another thread."""
    await journal.close()
    with pytest.raises(JournalError, match="closed"):
        journal.mark_submitting(1)


async def test_a_file_that_is_not_a_journal_is_refused(tmp_path: Path) -> None:
    """Garbage at the journal's path is a JournalError naming the file."""
    path = journal_path(tmp_path)
    path.parent.mkdir()
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(JournalError, match="not a usable journal"):
        await Journal.open(path)


async def test_a_journal_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    """A schema version above ours is refused with a hint to upgrade."""
    path = journal_path(tmp_path)
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO meta VALUES ('schema', '99')")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="upgrade"):
        await Journal.open(path)


async def test_resume_without_a_journal_is_refused(tmp_path: Path) -> None:
    """Opening with create=False where there is no journal says so."""
    with pytest.raises(JournalError, match="no journal"):
        await Journal.open(journal_path(tmp_path), create=False)


KILL_SCRIPT = """
import asyncio, os, signal, sys
from ketchup_async.bulk._journal import Journal

async def main():
    journal = await Journal.open(sys.argv[1])
    await journal.add_inputs([("a", '{"prompt":"a"}'), ("b", '{"prompt":"b"}')])
    await journal.mark_submitting(1)
    await journal.mark_submitted(1, "ta-committed")
    await journal.mark_submitting(2)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


def test_a_committed_task_id_survives_sigkill(tmp_path: Path) -> None:
    """SIGKILL right after the commit: the task id is there, the other input is submitting."""
    path = journal_path(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(path)], capture_output=True, timeout=60
    )
    assert proc.returncode == -9, proc.stderr.decode()
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT state, task_id FROM inputs ORDER BY seq").fetchall()
    assert rows == [("submitted", "ta-committed"), ("submitting", None)]
