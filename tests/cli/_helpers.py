"""Helpers of the ``ketchup`` command's tests: in-process runs and real ``ketchup`` processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ketchup_async.cli import main

from .._processes import FakeProcess
from ..conftest import API_KEY

__all__ = [
    "API_KEY",
    "FINAL",
    "SCALE",
    "error_line",
    "error_line_of",
    "gen",
    "ketchup",
    "manifest",
    "run",
    "write",
]

SCALE = "0.002"
FINAL = {"succeeded", "failed", "uncertain"}


def run(*argv: str) -> int:
    """Run ``ketchup`` in this process."""
    return main(list(argv))


def ketchup(
    *argv: str,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    columns: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real ``ketchup`` command in a child process; its output is piped (no tty)."""
    environ = {**os.environ, "KETCHUP_API_KEY": API_KEY}
    environ.pop("KETCHUP_BASE_URL", None)
    if columns is not None:
        environ["COLUMNS"] = str(columns)
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "ketchup_async.cli", *argv],
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def error_line_of(err: str) -> str:
    """The one line of ``err`` (asserting there is exactly one, and no traceback)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ketchup: error: ")
    return lines[0]


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path``; return ``path``."""
    path.write_text(text, encoding="utf-8")
    return path


def manifest(out: Path) -> list[dict[str, object]]:
    """The manifest's lines."""
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def gen(api: FakeProcess, source: Path | str, out: Path, *extra: str) -> int:
    """``ketchup generate SOURCE --out OUT`` in process, against ``api``."""
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


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line printed on stderr by an in-process run."""
    return error_line_of(capsys.readouterr().err)
