"""Tests of the ``ketchup`` command: user errors, runs, resume, Ctrl-C and SIGKILL."""

from __future__ import annotations

import json
import re
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ketchup_async.cli import main

from ._processes import BANNER, FakeProcess, cli_process, journal_count
from .conftest import API_KEY

SCALE = "0.002"
FINAL = {"succeeded", "failed", "uncertain"}


def _fake_api(time_scale: str) -> FakeProcess:
    """A fake Ketchup API in its own process, accepting the tests' key."""
    return FakeProcess("--time-scale", time_scale, "--api-key", API_KEY)


@pytest.fixture(scope="module")
def api() -> Iterator[FakeProcess]:
    """One fast fake API process for the module (prompts are unique per test)."""
    fake = _fake_api(SCALE)
    yield fake
    fake.stop()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API key in the environment, no base URL."""
    monkeypatch.setenv("KETCHUP_API_KEY", API_KEY)
    monkeypatch.delenv("KETCHUP_BASE_URL", raising=False)


def run(*argv: str) -> int:
    """Run ``ketchup`` in this process."""
    return main(list(argv))


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line printed on stderr (asserting there is exactly one, and no traceback)."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ketchup: error: ")
    return lines[0]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def manifest(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def gen(api: FakeProcess, source: Path | str, out: Path, *extra: str) -> int:
    return run(
        "generate",
        str(source),
        "--out",
        str(out),
        "--base-url",
        api.url,
        "--time-scale",
        SCALE,
        *extra,
    )


# -- user errors: one line on stderr, exit 2 --------------------------------------------------


def test_no_api_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without KETCHUP_API_KEY or --api-key-file: one clear line."""
    monkeypatch.delenv("KETCHUP_API_KEY", raising=False)
    assert run("generate", str(write(tmp_path / "p.txt", "a cat\n")), "--out", str(tmp_path)) == 2
    assert error_line(capsys) == (
        "ketchup: error: no API key: set KETCHUP_API_KEY or use --api-key-file FILE"
    )


def test_a_key_on_the_command_line_is_refused(
    tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """--api-key VALUE is refused (it would leak into history and ps)."""
    assert run("generate", "p.txt", "--out", str(tmp_path), "--api-key", "dk-secret") == 2
    line = error_line(capsys)
    assert "--api-key is not accepted" in line
    assert "dk-secret" not in line


@pytest.mark.parametrize(
    ("content", "mode", "message"),
    [
        ("", 0o600, "is empty"),
        ("  \n", 0o600, "is empty"),
        ("dk-a dk-b\n", 0o600, "one key and nothing else"),
        (API_KEY, 0o644, "accessible by other users: chmod 600"),
    ],
)
def test_a_bad_api_key_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: str,
    mode: int,
    message: str,
) -> None:
    """Empty, several tokens, or readable by others: refused with the reason."""
    monkeypatch.delenv("KETCHUP_API_KEY", raising=False)
    key_file = write(tmp_path / "key", content)
    key_file.chmod(mode)
    assert run("status", "ta1", "--api-key-file", str(key_file)) == 2
    assert message in error_line(capsys)


def test_a_missing_api_key_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unreadable key file says why."""
    assert run("status", "ta1", "--api-key-file", str(tmp_path / "nope")) == 2
    assert "cannot read the API key file" in error_line(capsys)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("p.csv", "a,b\n", "cannot tell the format of"),
        ("p.txt", "", "has no prompts"),
        (
            "p.txt",
            "a cat\n\na dog\nbad\x00prompt\n",
            "p.txt line 4: invalid prompt: must not contain NUL",
        ),
        ("p.jsonl", '{"prompt": "a cat"}\n{"prompt": \n', "p.jsonl line 2: invalid JSON"),
        ("p.jsonl", '["a cat"]\n', "p.jsonl line 1: expected a JSON object, got list"),
        ("p.jsonl", '{"id": "x"}\n', "p.jsonl line 1: prompt is required"),
        ("p.jsonl", '{"prompt": "  "}\n', "p.jsonl line 1: invalid prompt: must not be empty"),
        (
            "p.jsonl",
            '{"prompt": "a", "images": ["file:///etc/passwd"]}\n',
            "line 1: invalid images[0]",
        ),
        (
            "p.jsonl",
            '{"prompt": "a", "model": "no model"}\n',
            "line 1: model: unknown model format",
        ),
        (
            "p.jsonl",
            '{"id": 1, "prompt": "a"}\n{"id": "1", "prompt": "b"}\n',
            "line 2: duplicate id '1'",
        ),
        ("p.jsonl", '{"id": true, "prompt": "a"}\n', "line 1: id must be"),
        ("p.txt", "ok\n\udcff\n", "p.txt line 2: not valid UTF-8"),
    ],
)
def test_bad_input_files(
    tmp_path: Path,
    env: None,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: str,
    message: str,
) -> None:
    """Every input mistake is one line naming the file and line; nothing is journaled."""
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    out = tmp_path / "out"
    assert run("generate", str(path), "--out", str(out)) == 2
    assert message in error_line(capsys)
    assert not out.exists()


def test_an_unreadable_input(tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing input file: one line with the OS's reason."""
    assert run("generate", str(tmp_path / "missing.txt"), "--out", str(tmp_path)) == 2
    assert "cannot read" in (line := error_line(capsys))
    assert "No such file" in line


def test_an_unwritable_output_directory(
    tmp_path: Path, env: None, api: FakeProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out under a regular file cannot be created: one line, nothing sent."""
    blocker = write(tmp_path / "file", "x")
    assert gen(api, write(tmp_path / "p.txt", "unwritable dir cat\n"), blocker / "out") == 2
    assert "cannot create the output directory" in error_line(capsys)
    assert api.created("unwritable dir cat") == 0


def test_an_unknown_model_format(
    tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """--model must look like owner/name."""
    source = write(tmp_path / "p.txt", "a cat\n")
    assert run("generate", str(source), "--out", str(tmp_path), "--model", "gempix 2") == 2
    assert "--model: unknown model format 'gempix 2'" in error_line(capsys)


def test_resume_without_a_run(
    tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Resuming a directory that holds no run says so."""
    assert run("resume", str(tmp_path)) == 2
    assert "there is no bulk run to resume" in error_line(capsys)


def test_a_directory_in_use_is_refused(
    tmp_path: Path, env: None, api: FakeProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second run on a directory whose journal is locked: one line, nothing sent."""
    import fcntl

    lock = tmp_path / ".ketchup" / "lock"
    lock.parent.mkdir()
    with open(lock, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        assert gen(api, write(tmp_path / "p.txt", "locked cat\n"), tmp_path) == 2
    assert "another ketchup run is using" in error_line(capsys)
    assert api.created("locked cat") == 0


def test_status_with_a_malformed_task_id(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    """A task id with control characters is refused before any request."""
    assert run("status", "ta\n1") == 2
    assert "bad task id" in error_line(capsys)


def test_a_bad_flag_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse refuses --concurrency 0 with status 2."""
    with pytest.raises(SystemExit) as info:
        run("generate", "p.txt", "--out", "x", "--concurrency", "0")
    assert info.value.code == 2
    assert "must be a positive integer" in capsys.readouterr().err


# -- runs against the fake API ----------------------------------------------------------------


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


def test_status_shows_a_table(
    env: None, api: FakeProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """status queries each id; an unknown id makes the exit status 1."""
    out = tmp_path / "out"
    assert gen(api, write(tmp_path / "p.txt", "status cat\n"), out, "--no-download") == 0
    task_id = str(manifest(out)[0]["task_id"])
    capsys.readouterr()
    assert run("status", task_id, "--base-url", api.url) == 0
    assert "success" in capsys.readouterr().out
    assert run("status", task_id, "ta-unknown", "--base-url", api.url) == 1
    assert "not found" in capsys.readouterr().out


def test_demo_leaves_pngs_and_a_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo needs no key and writes real PNG files."""
    out = tmp_path / "demo"
    assert run("demo", "--count", "5", "--out", str(out), "--time-scale", "0.005") == 0
    assert len(manifest(out)) == 5
    assert all((out / f"{i}.png").read_bytes()[:4] == b"\x89PNG" for i in range(1, 6))
    assert run("demo", "--count", "3", "--out", str(out), "--time-scale", "0.005") == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["1.png", "2.png", "3.png"]


def test_demo_refuses_a_directory_it_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo never clears a directory that is not its own."""
    write(tmp_path / "precious.txt", "x")
    assert run("demo", "--out", str(tmp_path)) == 2
    assert "is not a ketchup demo directory" in error_line(capsys)
    assert (tmp_path / "precious.txt").exists()


# -- real processes: Ctrl-C and SIGKILL -------------------------------------------------------


def _cli(*argv: str, base_url: str) -> subprocess.Popen[str]:
    return cli_process(*argv, base_url=base_url, api_key=API_KEY)


def _wait_for(condition: object, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert proc.poll() is None, "the run ended before the kill point"
        assert time.monotonic() < deadline, "kill point not reached"
        time.sleep(0.005)


@pytest.fixture
def slow_api() -> Iterator[FakeProcess]:
    """A fake API whose renders take ~0.16 s, so runs can be stopped mid-way."""
    fake = _fake_api("0.02")
    yield fake
    fake.stop()


def test_sigkill_at_any_point_never_pays_twice(tmp_path: Path, slow_api: FakeProcess) -> None:
    """Killed with SIGKILL at several points then resumed: every input final, none paid twice."""
    prompts = [f"kill prompt {i}" for i in range(150)]
    source = write(tmp_path / "p.txt", "\n".join(prompts) + "\n")
    out = tmp_path / "out"
    journal = out / ".ketchup" / "journal.sqlite3"
    argv = (
        "generate",
        str(source),
        "--out",
        str(out),
        "--concurrency",
        "25",
        "--time-scale",
        "0.02",
    )
    # Kill points: as soon as the journal exists, after 10 task ids, after 60 successes.
    points = [
        lambda: journal_count(journal, ("queued",)) > 0,
        lambda: journal_count(journal, ("submitted", "succeeded")) >= 10,
        lambda: journal_count(journal, ("succeeded",)) >= 60,
    ]
    for point in points:
        proc = _cli(*argv, base_url=slow_api.url)
        _wait_for(point, proc)
        proc.kill()
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    final = _cli(*argv, base_url=slow_api.url)
    _stdout, stderr = final.communicate(timeout=60)
    assert final.returncode in (0, 1), stderr
    lines = manifest(out)
    assert len(lines) == 150
    assert {str(line["status"]) for line in lines} <= FINAL
    for line in lines:
        if line["status"] == "succeeded":
            assert all((out / name).is_file() for name in line["files"])  # type: ignore[attr-defined]
    created = slow_api.stats()["created_per_prompt"]
    assert max(created.values()) == 1  # type: ignore[attr-defined]
    uncertain = sum(1 for line in lines if line["status"] == "uncertain")
    assert final.returncode == (1 if uncertain else 0)
    print(f"\nSIGKILL x3 then resume: 150 inputs, {uncertain} uncertain, 0 paid twice")


@pytest.mark.parametrize(
    ("stop", "code", "what"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
)
def test_signal_stops_cleanly_and_resume_finishes(
    tmp_path: Path, slow_api: FakeProcess, stop: signal.Signals, code: int, what: str
) -> None:
    """SIGINT or SIGTERM: 128 + signal, a resume hint, nothing mid-submit; resume finishes."""
    source = write(tmp_path / "p.txt", "\n".join(f"sigint {i}" for i in range(100)) + "\n")
    out = tmp_path / "out"
    journal = out / ".ketchup" / "journal.sqlite3"
    proc = _cli(
        "generate",
        str(source),
        "--out",
        str(out),
        "--concurrency",
        "20",
        "--time-scale",
        "0.02",
        base_url=slow_api.url,
    )
    _wait_for(lambda: journal_count(journal, ("succeeded",)) >= 10, proc)
    proc.send_signal(stop)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code, stderr
    assert f"ketchup: {what}; the journal is intact" in stderr
    assert f"ketchup resume {out}" in stderr
    assert "Traceback" not in stderr
    assert journal_count(journal, ("submitting",)) == 0
    assert len(manifest(out)) == 100
    resume = _cli("resume", str(out), "--time-scale", "0.02", base_url=slow_api.url)
    _, stderr = resume.communicate(timeout=60)
    assert resume.returncode == 0, stderr
    assert max(slow_api.stats()["created_per_prompt"].values()) == 1  # type: ignore[attr-defined]


def test_fake_server_subcommand(tmp_path: Path) -> None:
    """`ketchup fake-server` serves until SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ketchup_async.cli", "fake-server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20.0)
        assert ready
        assert BANNER.match(proc.stdout.readline())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_main_restores_the_library_log_level() -> None:
    """Running the CLI in process leaves the ketchup_async logger's level as it found it."""
    import logging

    from ketchup_async.cli import main

    logger = logging.getLogger("ketchup_async")
    before = logger.level
    logger.setLevel(logging.INFO)
    try:
        main(["status", "../not-a-task-id"])
        assert logger.level == logging.INFO
    finally:
        logger.setLevel(before)
