"""Durable runs under adversity: a full disk, colliding names, foreign files, damaged journals."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from ketchup_async import (
    BulkError,
    BulkInput,
    GenerateRequest,
    JournalCorruptError,
    UnjournaledTasksError,
)
from ketchup_async.bulk import _runner, _sql
from ketchup_async.bulk._journal import Journal, journal_path
from ketchup_async.bulk._outdir import RECOVERY_FILE, run_dir
from ketchup_async.bulk._run import request_json, resume_bulk, run_bulk
from ketchup_async.bulk._states import State
from ketchup_async.testing import FakeKetchupServer

from ..conftest import make_client

pytestmark = pytest.mark.anyio


def _rows(out: Path) -> dict[str, tuple[str, str | None, str | None]]:
    """key -> (state, task_id, files) read straight from the journal file."""
    with sqlite3.connect(journal_path(out)) as conn:
        query = "SELECT key, state, task_id, files FROM inputs"
        return {k: (s, t, f) for k, s, t, f in conn.execute(query)}


def _disk_full_after(monkeypatch: pytest.MonkeyPatch, good: int) -> None:
    """Task id writes fail as on a full disk after ``good`` of them succeeded."""
    real = _sql.transition
    seen = [0]

    def transition(conn: sqlite3.Connection, seq: int, target: State, *args: Any) -> None:
        if target is State.SUBMITTED:
            seen[0] += 1
            if seen[0] > good:
                raise sqlite3.OperationalError("database or disk is full")
        real(conn, seq, target, *args)

    monkeypatch.setattr(_sql, "transition", transition)
    monkeypatch.setattr(_runner, "TASK_ID_RETRY_DELAYS", (0.0, 0.01))


async def test_a_task_id_the_journal_cannot_write_is_never_lost(
    server: FakeKetchupServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Disk full after a submit: the id is logged, saved to the recovery file, and raised."""
    _disk_full_after(monkeypatch, good=3)
    prompts = [f"full disk {i}" for i in range(12)]
    caplog.set_level(logging.ERROR, logger="ketchup_async")
    async with make_client(server) as client:
        with pytest.raises(UnjournaledTasksError) as info:
            await run_bulk(client, prompts, tmp_path, concurrency=4)
    journaled = {t for _, t, _ in _rows(tmp_path).values() if t}
    saved = set(info.value.task_ids.values())
    assert saved
    assert set(server.tasks) == journaled | saved  # every paid task is somewhere
    recovery = run_dir(tmp_path) / RECOVERY_FILE
    assert info.value.recovery_file == str(recovery)
    assert all(task_id in recovery.read_text() for task_id in saved)
    assert all(any(t in r.getMessage() for r in caplog.records) for t in saved)


async def test_resume_reattaches_the_recovered_task_ids(
    server: FakeKetchupServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the disk has room, resume tracks the saved ids: nothing is paid twice."""
    _disk_full_after(monkeypatch, good=2)
    prompts = [f"recovered {i}" for i in range(8)]
    async with make_client(server) as client:
        with pytest.raises(UnjournaledTasksError):
            await run_bulk(client, prompts, tmp_path, concurrency=4)
    monkeypatch.undo()
    async with make_client(server) as client:
        summary = await resume_bulk(client, tmp_path)
    assert summary.ok
    assert summary.uncertain == 0
    assert max(server.stats.created_per_prompt.values()) == 1
    assert not (run_dir(tmp_path) / RECOVERY_FILE).exists()


async def test_a_task_id_write_that_fails_once_is_retried(
    server: FakeKetchupServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task id write that fails once then works ends the run normally."""
    real = _sql.transition
    failed: list[int] = []

    def flaky(conn: sqlite3.Connection, seq: int, target: State, *args: Any) -> None:
        if target is State.SUBMITTED and seq not in failed:
            failed.append(seq)
            raise sqlite3.OperationalError("database or disk is full")
        real(conn, seq, target, *args)

    monkeypatch.setattr(_sql, "transition", flaky)
    monkeypatch.setattr(_runner, "TASK_ID_RETRY_DELAYS", (0.0,))
    async with make_client(server) as client:
        summary = await run_bulk(client, ["a", "b", "c"], tmp_path)
    assert summary.ok
    assert sorted(failed) == [1, 2, 3]


async def test_ids_that_name_the_same_file_get_different_files(
    server: FakeKetchupServer, tmp_path: Path
) -> None:
    """Ids `cat`, `cat.png`, `CAT`, `manifest.jsonl` share no path with each other or the run."""
    keys = ["cat", "cat.png", "CAT", "manifest.jsonl", "1.5"]
    inputs = [BulkInput(k, GenerateRequest(f"picture {k}")) for k in keys]
    async with make_client(server) as client:
        summary = await run_bulk(client, inputs, tmp_path)
    assert summary.ok
    files = [f for _, _, f in _rows(tmp_path).values()]
    names = [name for f in files for name in json.loads(f or "[]")]
    assert len(names) == len(keys)
    assert len({n.lower() for n in names}) == len(keys)
    assert all(n.endswith(".png") and n != "manifest.jsonl" for n in names)
    assert len((tmp_path / "manifest.jsonl").read_text().splitlines()) == len(keys)


async def test_a_foreign_folder_is_refused(server: FakeKetchupServer, tmp_path: Path) -> None:
    """A non-empty folder that is not a ketchup run: one-line BulkError, nothing touched."""
    (tmp_path / "1.png").write_bytes(b"someone's picture")
    (tmp_path / "manifest.jsonl").write_text("mine\n")
    async with make_client(server) as client:
        with pytest.raises(BulkError, match="not empty and holds no ketchup run") as info:
            await run_bulk(client, ["a red bicycle"], tmp_path)
    assert "\n" not in str(info.value)
    assert (tmp_path / "1.png").read_bytes() == b"someone's picture"
    assert (tmp_path / "manifest.jsonl").read_text() == "mine\n"
    assert not (tmp_path / ".ketchup").exists()
    assert sum(server.stats.created_per_prompt.values()) == 0


async def test_a_file_the_run_did_not_write_is_never_replaced(
    server: FakeKetchupServer, tmp_path: Path
) -> None:
    """A file dropped where a download would go keeps its bytes; the image goes beside it."""
    async with make_client(server) as client:
        await run_bulk(client, ["a red bicycle"], tmp_path, download=False)
        (tmp_path / "1.png").write_bytes(b"not yours")
        summary = await resume_bulk(client, tmp_path)
    assert summary.ok
    assert (tmp_path / "1.png").read_bytes() == b"not yours"
    (_, _, files) = _rows(tmp_path)["1"]
    assert files is not None
    assert "1.png" not in files
    assert (tmp_path / json.loads(files)[0]).read_bytes().startswith(b"\x89PNG")


async def test_resume_deletes_stale_partial_files(
    server: FakeKetchupServer, tmp_path: Path
) -> None:
    """Partial downloads left by a SIGKILL are deleted by the next run."""
    async with make_client(server) as client:
        await run_bulk(client, ["a red bicycle"], tmp_path)
        staged = run_dir(tmp_path) / "tmp"
        staged.mkdir(exist_ok=True)
        (staged / ".ketchup-0123456789abcdef.123.cafebabe.part").write_bytes(b"half")
        (tmp_path / ".1.png.4242.deadbeef.part").write_bytes(b"half")
        await resume_bulk(client, tmp_path)
    assert not staged.exists()
    assert not (tmp_path / ".1.png.4242.deadbeef.part").exists()


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("request", "{not json", "row #2: column 'request'"),
        ("state", "weird", "unknown state 'weird'"),
    ],
)
async def test_a_damaged_row_is_one_clear_error(
    server: FakeKetchupServer, tmp_path: Path, column: str, value: str, problem: str
) -> None:
    """A damaged journal row: JournalCorruptError naming the file and the row, no traceback."""
    journal = await Journal.open(journal_path(tmp_path))
    await journal.set_meta("base_url", server.base_url)
    body = request_json(GenerateRequest("p"), default_model="google/gempix2")
    await journal.add_inputs([("1", body), ("2", body.replace('"p"', '"q"'))])
    await journal.close()
    with sqlite3.connect(journal_path(tmp_path)) as conn:
        conn.execute(f"UPDATE inputs SET {column} = ? WHERE seq = 2", (value,))
    async with make_client(server) as client:
        with pytest.raises(JournalCorruptError, match=problem) as info:
            await resume_bulk(client, tmp_path)
    assert str(journal_path(tmp_path)) in str(info.value)


async def test_a_damaged_journal_file_is_one_clear_error(
    server: FakeKetchupServer, tmp_path: Path
) -> None:
    """A journal file that is not SQLite: JournalCorruptError with its path."""
    path = journal_path(tmp_path)
    path.parent.mkdir()
    path.write_bytes(b"this is not a database at all " * 100)
    async with make_client(server) as client:
        with pytest.raises(JournalCorruptError, match="damaged") as info:
            await resume_bulk(client, tmp_path)
    assert info.value.path == str(path)


async def test_journal_and_manifest_are_private(server: FakeKetchupServer, tmp_path: Path) -> None:
    """The journal (and its WAL) and the manifest are 0600, the run's folder 0700."""
    old = os.umask(0o022)
    try:
        async with make_client(server) as client:
            await run_bulk(client, ["a red bicycle"], tmp_path)
    finally:
        os.umask(old)
    private = [tmp_path / "manifest.jsonl", *run_dir(tmp_path).iterdir()]
    assert journal_path(tmp_path) in private
    for path in private:
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(run_dir(tmp_path).stat().st_mode) == 0o700


async def test_the_callback_token_is_never_journaled(
    server: FakeKetchupServer, tmp_path: Path
) -> None:
    """The callback URL is sent with every submit but stored in no file of the run."""
    token = "Zs3cr3tT0kenZs3cr3tT0kenZs3cr3t"
    url = f"http://127.0.0.1:9/ketchup/callback/{token}"
    async with make_client(server) as client:
        summary = await run_bulk(client, ["a", "b"], tmp_path, callback_url=url)
    assert summary.ok
    assert {task.callback_url for task in server.tasks.values()} == {url}
    assert not _files_holding(tmp_path, token.encode())


def _files_holding(out: Path, secret: bytes) -> list[Path]:
    """The files of the run (top level and ``.ketchup/``) whose bytes contain ``secret``."""
    paths = [*out.iterdir(), *run_dir(out).iterdir()]
    return [p for p in paths if p.is_file() and secret in p.read_bytes()]


async def test_an_input_with_its_own_callback_url_is_refused(
    server: FakeKetchupServer, tmp_path: Path
) -> None:
    """Per-input callback URLs would put their token in the journal: a clear BulkError."""
    request = GenerateRequest("p", callback_url="https://hooks.example/cb/secret")
    async with make_client(server) as client:
        with pytest.raises(BulkError, match=r"BulkOptions\(callback_url=...\)"):
            await run_bulk(client, [request], tmp_path)
