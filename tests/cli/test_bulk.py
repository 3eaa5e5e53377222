"""``_bulk``: ``generate`` and ``resume`` against a fake API: files, summary, errors."""

from __future__ import annotations

import re
import sqlite3
import sys
from pathlib import Path

import pytest

from .._processes import FakeProcess
from ._helpers import (
    SCALE,
    error_line,
    gen,
    manifest,
    run,
    write,
)


def test_an_unwritable_output_directory(
    tmp_path: Path, env: None, api: FakeProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out under a regular file cannot be created: one line, nothing sent."""
    blocker = write(tmp_path / "file", "x")
    assert gen(api, write(tmp_path / "p.txt", "unwritable dir cat\n"), blocker / "out") == 2
    assert "cannot create the output directory" in error_line(capsys)
    assert api.created("unwritable dir cat") == 0


def test_resume_without_a_run(
    tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Resuming a directory that holds no run says so."""
    assert run("resume", str(tmp_path)) == 2
    assert "there is no bulk run to resume" in error_line(capsys)


def test_a_directory_in_use_is_refused(
    tmp_path: Path, env: None, api: FakeProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second run on a directory whose journal is locked: one line, exit 4, nothing sent."""
    import fcntl

    lock = tmp_path / ".ketchup" / "lock"
    lock.parent.mkdir()
    with open(lock, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        assert gen(api, write(tmp_path / "p.txt", "locked cat\n"), tmp_path) == 4
    line = error_line(capsys)
    assert "another ketchup run is using" in line
    assert f"ketchup resume {tmp_path}" in line
    assert api.created("locked cat") == 0


def test_generate_writes_files_manifest_and_progress(
    tmp_path: Path, env: None, api: FakeProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    """A .txt run: a file per prompt, a manifest, a final progress line and a summary."""
    source = write(tmp_path / "p.txt", "gen cat\n\ngen dog\ngen owl\n")
    out = tmp_path / "out"
    assert gen(api, source, out) == 0
    lines = manifest(out)
    assert [(line["id"], line["status"], line["files"]) for line in lines] == [
        ("1", "succeeded", ["1.png"]),
        ("3", "succeeded", ["3.png"]),
        ("4", "succeeded", ["4.png"]),
    ]
    output = capsys.readouterr().out
    assert re.search(r"\[\s*\d+\.\ds\] 3/3 done \| ok 3  failed 0  uncertain 0", output)
    assert "credits consumed" in output
    assert "1.50" in output


def test_the_same_command_again_submits_nothing(
    tmp_path: Path, env: None, api: FakeProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    """Running generate twice resumes: no new task, nothing re-downloaded."""
    source = write(tmp_path / "p.txt", "again cat\nagain dog\n")
    out = tmp_path / "out"
    assert gen(api, source, out) == 0
    tasks = api.stats()["tasks"]
    assert gen(api, source, out) == 0
    assert api.stats()["tasks"] == tasks
    assert re.search(r"submitted \(this run\)\s*│\s*0", capsys.readouterr().out)


def test_generate_from_jsonl_names_files_by_id(tmp_path: Path, env: None, api: FakeProcess) -> None:
    """JSONL ids become file names (sanitised), models and images are honoured."""
    source = write(
        tmp_path / "p.jsonl",
        '{"id": "hero/shot", "prompt": "jsonl cat"}\n'
        '{"id": 7, "prompt": "jsonl dog", "model": "google/gemini-2.5-flash-image"}\n',
    )
    out = tmp_path / "out"
    assert gen(api, source, out) == 0
    assert [line["files"] for line in manifest(out)] == [["hero_shot.png"], ["7.png"]]


def test_generate_from_stdin(
    tmp_path: Path, env: None, api: FakeProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """INPUT '-' reads prompts from stdin."""
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("stdin cat\nstdin dog\n"))
    out = tmp_path / "out"
    assert gen(api, "-", out) == 0
    assert [line["prompt"] for line in manifest(out)] == ["stdin cat", "stdin dog"]


def test_a_failed_input_makes_the_exit_status_1(
    tmp_path: Path, env: None, api: FakeProcess
) -> None:
    """A model the API refuses fails its input; the others succeed; exit 1."""
    source = write(
        tmp_path / "p.jsonl",
        '{"prompt": "refused cat", "model": "acme/unknown"}\n{"prompt": "fine cat"}\n',
    )
    out = tmp_path / "out"
    assert gen(api, source, out) == 1
    assert [line["status"] for line in manifest(out)] == ["failed", "succeeded"]


def test_resume_leaves_uncertain_inputs_unless_asked(
    tmp_path: Path, env: None, api: FakeProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    """An input that died mid-submit stays uncertain (exit 1, with a hint) until asked."""
    out = tmp_path / "out"
    assert (
        gen(api, write(tmp_path / "p.txt", "uncertain cat\nsure dog\n"), out, "--no-download") == 0
    )
    with sqlite3.connect(out / ".ketchup" / "journal.sqlite3") as conn:  # a run that died
        conn.execute("UPDATE inputs SET state = 'submitting', task_id = NULL WHERE key = '1'")
    capsys.readouterr()
    assert run("resume", str(out), "--base-url", api.url, "--time-scale", SCALE) == 1
    output = capsys.readouterr().out
    assert "1 input is uncertain" in output
    assert "--resubmit-uncertain" in output
    assert api.created("uncertain cat") == 1
    assert (
        run(
            "resume", str(out), "--base-url", api.url, "--time-scale", SCALE, "--resubmit-uncertain"
        )
        == 0
    )
    assert api.created("uncertain cat") == 2
    assert {line["status"] for line in manifest(out)} == {"succeeded"}
