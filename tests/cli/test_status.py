"""``_status``: one query per task id; whole values; ``--json`` for scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .._processes import FakeProcess
from ._helpers import (
    SCALE,
    error_line,
    gen,
    ketchup,
    manifest,
    run,
    write,
)


def test_status_with_a_malformed_task_id(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    """A task id with control characters is refused before any request."""
    assert run("status", "ta\n1") == 2
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


@pytest.fixture(scope="module")
def long_ids(api: FakeProcess, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Two finished tasks of the fake API (ids and image URLs longer than a narrow terminal)."""
    tmp_path = tmp_path_factory.mktemp("status")
    source = write(tmp_path / "p.txt", "status long cat\nstatus long dog\n")
    out = tmp_path / "out"
    done = ketchup(
        "generate", str(source), "--out", str(out), "--no-download",
        "--base-url", api.url, "--time-scale", SCALE,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [str(line["task_id"]) for line in manifest(out)]


def test_status_json_is_one_object_per_task(api: FakeProcess, long_ids: list[str]) -> None:
    """--json: one JSON object per id, in order, with every field, for scripts."""
    done = ketchup("status", *long_ids, "ta-unknown", "--json", "--base-url", api.url)
    assert done.returncode == 1, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["task_id"] for r in records] == [*long_ids, "ta-unknown"]
    assert [r["status"] for r in records] == ["success", "success", "not found"]
    assert all(r["images"][0].startswith("http") for r in records[:2])
    assert records[0]["consumed"] == "0.500000"
    assert records[2]["error"]
    assert records[2]["images"] == []


def test_status_never_cuts_ids_or_urls(api: FakeProcess, long_ids: list[str]) -> None:
    """Piped into a narrow terminal's width: every id and image URL is printed whole."""
    as_json = ketchup("status", *long_ids, "--json", "--base-url", api.url)
    urls = [url for line in as_json.stdout.splitlines() for url in json.loads(line)["images"]]
    done = ketchup("status", *long_ids, "--base-url", api.url, columns=30)
    assert done.returncode == 0, done.stderr
    for value in [*long_ids, *urls]:
        assert any(value in line for line in done.stdout.splitlines()), (value, done.stdout)


def test_global_flags_after_the_command(api: FakeProcess, long_ids: list[str]) -> None:
    """-v and --base-url work after the command as before it."""
    after = ketchup("status", long_ids[0], "-v", "--base-url", api.url)
    assert after.returncode == 0, after.stderr
    assert "ketchup: debug: GET /api/task/query" in after.stderr
    before = ketchup("-v", "--base-url", api.url, "status", long_ids[0])
    assert before.returncode == 0, before.stderr
    assert "ketchup: debug:" in before.stderr
    quiet = ketchup("--base-url", api.url, "status", long_ids[0])
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
