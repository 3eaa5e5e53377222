"""The durable bulk run (``ketchup generate``) SIGKILLed at random moments under faults.

A fake API in its own process injects 500s, HTML 502s, resets and drops after accept; the CLI
is killed with SIGKILL four times at seeded random points of its progress, then ``ketchup
resume`` finishes. Every input must end final exactly once, nothing may be paid twice, and
the key must be in none of the files the run wrote.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .._processes import PAST_QUEUED, FakeProcess, cli_process, journal_count
from ._accounting import API_KEY

SCALE = "0.01"
N = 200
FINAL = {"succeeded", "failed", "uncertain"}
FAULT_FLAGS = (
    "--error-500-rate",
    "0.1",
    "--html-502-rate",
    "0.05",
    "--reset-rate",
    "0.03",
    "--reset-after-accept-rate",
    "0.03",
    "--failure-rate",
    "0.02",
    "--seed",
    "11",
)


@pytest.fixture
def faulty_api() -> Iterator[FakeProcess]:
    """A faulty fake API process (its tasks survive the CLI's deaths)."""
    fake = FakeProcess("--time-scale", SCALE, "--api-key", API_KEY, *FAULT_FLAGS)
    yield fake
    fake.stop()


def _cli(*argv: str, base_url: str) -> subprocess.Popen[str]:
    return cli_process(*argv, base_url=base_url, api_key=API_KEY)


def _progressed(journal: Path) -> int:
    """Inputs past ``queued`` (read from another process while the run writes, WAL)."""
    return journal_count(journal, PAST_QUEUED)


def _kill_when(proc: subprocess.Popen[str], journal: Path, threshold: int, extra: float) -> bool:
    """SIGKILL ``proc`` once ``threshold`` inputs progressed, plus ``extra`` seconds."""
    deadline = time.monotonic() + 60.0
    while _progressed(journal) < threshold:
        if proc.poll() is not None:
            return False  # it finished first: nothing to kill
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.002)
    time.sleep(extra)
    proc.kill()
    proc.communicate(timeout=30)
    return proc.returncode == -signal.SIGKILL


def _journal_rows(journal: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as conn:
        return conn.execute(
            "SELECT key, state, task_id, request FROM inputs ORDER BY seq"
        ).fetchall()


def test_sigkill_at_random_moments_under_faults_never_loses_or_pays_twice(
    tmp_path: Path, faulty_api: FakeProcess
) -> None:
    """Killed 4 times at random points, then resumed: each input final once, none paid twice."""
    prompts = [f"kill under faults {i}" for i in range(N)]
    source = tmp_path / "prompts.txt"
    source.write_text("\n".join(prompts) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    journal = out / ".ketchup" / "journal.sqlite3"
    argv = ("generate", str(source), "--out", str(out), "--concurrency", "25")
    rng = random.Random(20261122)
    kills = 0
    for _ in range(4):
        proc = _cli(*argv, "--time-scale", SCALE, base_url=faulty_api.url)
        threshold = min(N - 10, max(0, _progressed(journal)) + rng.randint(1, N // 5))
        kills += _kill_when(proc, journal, threshold, rng.uniform(0.0, 0.05))
    assert kills >= 3, "the runs ended before they could be killed"
    final = _cli("resume", str(out), "--time-scale", SCALE, base_url=faulty_api.url)
    stdout, stderr = final.communicate(timeout=120)
    assert final.returncode in (0, 1), stderr

    rows = _journal_rows(journal)
    assert len(rows) == N
    assert len({key for key, *_ in rows}) == N
    assert {state for _, state, *_ in rows} <= FINAL
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(entry["prompt"] for entry in manifest) == sorted(prompts)
    assert {entry["status"] for entry in manifest} <= FINAL
    created: dict[str, int] = faulty_api.stats()["created_per_prompt"]
    assert all(count <= 1 for count in created.values()), "a prompt was paid twice"
    for entry in manifest:
        if entry["status"] == "succeeded":
            assert entry["files"]
            assert all((out / name).is_file() for name in entry["files"])
            assert created.get(entry["prompt"]) == 1
        elif entry["status"] == "failed" and entry["task_id"] is None:
            assert created.get(entry["prompt"], 0) == 0, "a refused submit was charged"
    uncertain = sum(1 for entry in manifest if entry["status"] == "uncertain")
    assert final.returncode == (
        1 if uncertain or any(e["status"] == "failed" for e in manifest) else 0
    )

    written = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name.startswith("journal") for p in written)
    assert not [p for p in written if p.name.endswith(".part")], "stale partial files remain"
    assert not (out / ".ketchup" / "tmp").exists()
    for path in written:  # the journal (and its WAL), the manifest, the images
        assert API_KEY.encode() not in path.read_bytes(), path
    assert API_KEY not in stdout + stderr
