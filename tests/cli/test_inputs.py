"""``_inputs``: every INPUT mistake is one line naming the file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._helpers import (
    error_line,
    error_line_of,
    ketchup,
    run,
    write,
)


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
        (
            "p.jsonl",
            '{"prompt": "a cat"}\n{"prompt": \n',
            "p.jsonl line 2, column 12: invalid JSON (Expecting value)",
        ),
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


def test_an_unknown_model_format(
    tmp_path: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """--model must look like owner/name."""
    source = write(tmp_path / "p.txt", "a cat\n")
    assert run("generate", str(source), "--out", str(tmp_path), "--model", "gempix 2") == 2
    assert "--model: unknown model format 'gempix 2'" in error_line(capsys)


def test_a_jsonl_error_names_the_files_line_and_column(tmp_path: Path) -> None:
    """The position is the file's (line 3, column 16), not the parser's within the line."""
    source = write(
        tmp_path / "bad3.jsonl", '{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": "c" "x"}\n'
    )
    done = ketchup("generate", str(source), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert error_line_of(done.stderr) == (
        "ketchup: error: bad3.jsonl line 3, column 16: invalid JSON (Expecting ',' delimiter)"
    )
