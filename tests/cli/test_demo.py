"""``_demo``: the bundled prompts through an in-process fake API."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._helpers import (
    error_line,
    manifest,
    run,
    write,
)


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
