"""The ``ketchup`` command fed broken input files and flags: one clear line, nothing sent.

A fake API runs in its own process and counts requests: after every refused command its
count is unchanged and the output directory was not created.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ketchup_async.cli import main

from .._processes import FakeProcess
from ._accounting import API_KEY

URLS = [f"https://img.example.com/{i}.png" for i in range(5)]


@pytest.fixture(scope="module")
def api() -> Iterator[FakeProcess]:
    """One fake API process for the module."""
    fake = FakeProcess("--time-scale", "0.002", "--api-key", API_KEY)
    yield fake
    fake.stop()


@pytest.fixture
def env(api: FakeProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key and the fake's URL in the environment, as a user would set them."""
    monkeypatch.setenv("KETCHUP_API_KEY", API_KEY)
    monkeypatch.setenv("KETCHUP_BASE_URL", api.url)


def _run(argv: list[str]) -> int:
    """``ketchup argv`` in process; argparse's own errors exit 2 through SystemExit."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def _requests(api: FakeProcess) -> int:
    return int(api.stats()["requests_total"])


FILE_CASES = [
    ("p.jsonl", '{"prompt": "fine"}\n{"prompt": \n', "p.jsonl line 2, column 12: invalid JSON"),
    ("p.jsonl", "not json at all\n", "p.jsonl line 1, column 1: invalid JSON"),
    ("p.jsonl", '{"prompt": "a"}\n[1, 2]\n', "line 2: expected a JSON object"),
    ("p.jsonl", '{"prompt": 5}\n', "line 1: invalid prompt: must be a string"),
    ("p.jsonl", '{"prompt": null}\n', "line 1: invalid prompt"),
    ("p.jsonl", '{"id": "x"}\n', "line 1: prompt is required"),
    ("p.jsonl", '{"prompt": "a", "images": ["javascript:alert(1)"]}\n', "invalid images[0]"),
    ("p.jsonl", '{"prompt": "a", "images": ["file:///etc/passwd"]}\n', "invalid images[0]"),
    ("p.jsonl", '{"prompt": "a", "images": "https://x.io/1.png"}\n', "invalid images"),
    ("p.jsonl", json.dumps({"prompt": "a", "images": URLS}) + "\n", "5 reference images"),
    ("p.jsonl", '{"prompt": "a", "images": ["data:image/png;base64,!!"]}\n', "images[0]"),
    ("p.jsonl", '{"id": 1, "prompt": "a"}\n{"id": "1", "prompt": "b"}\n', "duplicate id"),
    ("p.txt", "fine\n" + "x" * 100_001 + "\n", "p.txt line 2: invalid prompt: is 100,001"),
    ("p.txt", "fine\nbad\x00prompt\n", "p.txt line 2: invalid prompt"),
    ("p.txt", "\n  \n\t\n", "has no prompts"),
]


@pytest.mark.parametrize(("name", "content", "message"), FILE_CASES)
def test_broken_input_file_is_one_line_and_sends_nothing(
    tmp_path: Path,
    env: None,
    api: FakeProcess,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: str,
    message: str,
) -> None:
    """A broken line is named (file and line) in one error line; no request, no directory."""
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    before = _requests(api)
    assert _run(["generate", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ketchup: error: ")
    assert message in lines[0]
    assert _requests(api) == before
    assert not (tmp_path / "out").exists()


FLAG_CASES = [
    (["--concurrency", "0"], "--concurrency"),
    (["--concurrency", "many"], "--concurrency"),
    (["--submit-rate", "-1"], "--submit-rate"),
    (["--time-scale", "nan"], "--time-scale"),
    (["--base-url", "file:///etc"], "base_url"),
    (["--base-url", "javascript:alert(1)"], "base_url"),
    (["--api-key", API_KEY], "--api-key is not accepted"),
    (["--api-key-file", "/nonexistent/key"], "cannot read the API key file"),
    (["--image", "file:///etc/passwd"], "image"),
    (["--model", "no such model"], "model"),
]


@pytest.mark.parametrize(("flags", "message"), FLAG_CASES)
def test_bad_flag_is_one_line_and_sends_nothing(
    tmp_path: Path,
    env: None,
    api: FakeProcess,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    """A bad flag value: exit 2, a line naming it, no request; a key flag is never echoed."""
    source = tmp_path / "p.txt"
    source.write_text("a red bicycle\n", encoding="utf-8")
    before = _requests(api)
    assert _run(["generate", str(source), "--out", str(tmp_path / "out"), *flags]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert message in err.strip().splitlines()[-1]
    assert API_KEY not in err
    assert _requests(api) == before


@pytest.mark.parametrize("task_id", ["", "   ", "ta\n1", "ta\x1b[2J", "x" * 257])
def test_status_with_an_unusable_task_id_sends_nothing(
    env: None, api: FakeProcess, capsys: pytest.CaptureFixture[str], task_id: str
) -> None:
    """``ketchup status`` refuses an empty, blank, control-character or over-long task id."""
    before = _requests(api)
    assert _run(["status", task_id]) == 2
    assert "task id" in capsys.readouterr().err
    assert _requests(api) == before


def test_world_readable_key_file_is_refused(
    tmp_path: Path, env: None, api: FakeProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key file other users can read is refused, and the key is not echoed."""
    key_file = tmp_path / "key"
    key_file.write_text(API_KEY + "\n", encoding="utf-8")
    os.chmod(key_file, 0o644)  # readable by others: the point
    source = tmp_path / "p.txt"
    source.write_text("a red bicycle\n", encoding="utf-8")
    before = _requests(api)
    argv = ["generate", str(source), "--out", str(tmp_path / "o"), "--api-key-file", str(key_file)]
    assert _run(argv) == 2
    err = capsys.readouterr().err
    assert "chmod 600" in err
    assert API_KEY not in err
    assert _requests(api) == before


def test_hostile_ids_never_write_outside_the_output_directory(
    tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """JSONL ids made of path syntax become plain file names inside the output directory."""
    hostile = ["../../escape", "/etc/passwd", "..", ".hidden", "CON", "a/b\\c", "%2e%2e%2f"]
    source = tmp_path / "p.jsonl"
    lines = [json.dumps({"id": key, "prompt": f"hostile {i}"}) for i, key in enumerate(hostile)]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "deep" / "out"
    assert _run(["generate", str(source), "--out", str(out), "--time-scale", "0.002"]) == 0
    capsys.readouterr()
    outside = {p for p in tmp_path.rglob("*") if out not in p.parents and p != out}
    assert outside == {source, tmp_path / "deep"}
    images = [p for p in out.iterdir() if p.suffix == ".png"]
    assert len(images) == len(hostile)
    assert all(not p.name.startswith(".") for p in images)
