"""``_runtime``: the API key (never from argv), the logging a run leaves behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._helpers import (
    API_KEY,
    error_line,
    error_line_of,
    ketchup,
    run,
    write,
)


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


def test_a_corrupt_journal_is_one_line_and_exit_4(tmp_path: Path) -> None:
    """A journal that is not SQLite: one line naming it, exit 4 (the journal cannot be used)."""
    journal = tmp_path / ".ketchup" / "journal.sqlite3"
    journal.parent.mkdir()
    journal.write_bytes(b"this is not a database" * 100)
    done = ketchup("resume", str(tmp_path), "--base-url", "http://127.0.0.1:9")
    assert done.returncode == 4, done.stderr
    assert "journal" in error_line_of(done.stderr)
