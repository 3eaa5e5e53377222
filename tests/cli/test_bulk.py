"""``_bulk``: ``generate`` and ``resume`` against a fake API: files, summary, errors."""

from __future__ import annotations

import re
import select
import signal
import socket
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from .._processes import FakeProcess, cli_process, journal_count
from ._helpers import (
    API_KEY,
    SCALE,
    error_line,
    error_line_of,
    gen,
    ketchup,
    manifest,
    run,
    write,
)
from .conftest import fake_api


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


def test_verbose_adds_the_clients_stats_to_the_summary(
    tmp_path: Path, env: None, api: FakeProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    """``-v``: the summary shows 429s, the query budget and the learned render times."""
    source = write(tmp_path / "p.txt", "verbose cat\nverbose dog\n")
    assert gen(api, source, tmp_path / "quiet") == 0
    assert "render time p50 / p90" not in capsys.readouterr().out
    assert gen(api, source, tmp_path / "loud", "-v") == 0
    output = capsys.readouterr().out
    assert re.search(r"429 answers\s*│\s*0", output)
    assert re.search(r"query budget \(now\)\s*│\s*\d+\.\d/s", output)
    assert re.search(r"render time p50 / p90\s*│\s*\d+\.\ds / \d+\.\ds", output)


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


# -- the API as a user meets it: wrong URL, wrong key, gone mid-run (real processes) ------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_wrong_base_url_prints_the_connection_error(tmp_path: Path) -> None:
    """Nothing listening: the terminal says so in one line, with the resume hint; exit 1."""
    url = f"http://127.0.0.1:{_free_port()}"
    source = write(tmp_path / "p.txt", "a cat\na dog\n")
    out = tmp_path / "wb1"
    done = ketchup(
        "generate", str(source), "--out", str(out), "--base-url", url, "--time-scale", SCALE
    )
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("ketchup: error:")]
    assert errors == [f"ketchup: error: cannot reach the API at {url}: connection refused"]
    assert f"2 inputs are not finished: ketchup resume {out}" in done.stdout
    assert "Traceback" not in done.stderr


def test_a_wrong_key_prints_no_progress_line(tmp_path: Path, api: FakeProcess) -> None:
    """A refused key: one error line, no "0/3 done" line before it; exit 2."""
    source = write(tmp_path / "p.txt", "wrong key cat\nwrong key dog\nwrong key owl\n")
    argv = ("generate", str(source), "--out", str(tmp_path / "o"), "--base-url", api.url)
    done = ketchup(*argv, "--time-scale", SCALE, env={"KETCHUP_API_KEY": "dk-wrong0000"})
    assert done.returncode == 2, done.stderr
    assert "done |" not in done.stdout
    assert "the API refused the key" in error_line_of(done.stderr)


@pytest.mark.slow
def test_the_api_gone_mid_run_is_said_within_seconds(tmp_path: Path) -> None:
    """The fake killed mid-run: failed requests on the progress line and one warning on stderr
    within ~10 s; SIGTERM then stops the run cleanly."""
    fake = fake_api("0.02", "--render-time", "5000")  # renders outlive the test
    source = write(tmp_path / "p.txt", "\n".join(f"gone {i}" for i in range(40)) + "\n")
    out = tmp_path / "out"
    journal = out / ".ketchup" / "journal.sqlite3"
    proc = cli_process(
        "generate", str(source), "--out", str(out), "--time-scale", "0.02",
        base_url=fake.url, api_key=API_KEY,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while journal_count(journal, ("submitted",)) < 40:
            assert time.monotonic() < deadline, "the tasks were not submitted"
            time.sleep(0.02)
        fake.stop()
        gone = time.monotonic()
        assert proc.stderr is not None
        warning = ""
        while not warning:
            ready, _, _ = select.select([proc.stderr], [], [], 1.0)
            if ready:
                warning = proc.stderr.readline()
            assert time.monotonic() - gone < 15, "no warning 15 s after the API went away"
        assert warning.startswith("ketchup: warning: API unreachable for ")
        assert "connection refused; still retrying; Ctrl-C then `ketchup resume" in warning
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143, stderr
    assert re.search(r"0/40 done .* \| \d+ failed requests?$", stdout.splitlines()[-1])
