"""``_status``: one query per task id; whole values; ``--json`` for scripts."""

from __future__ import annotations

from pathlib import Path

import pytest

from .._processes import FakeProcess
from ._helpers import (
    error_line,
    gen,
    manifest,
    run,
    write,
)


def test_status_with_a_malformed_task_id(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    """A task id with path characters is refused before any request."""
    assert run("status", "../etc") == 2
    assert "bad task id" in error_line(capsys)


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
