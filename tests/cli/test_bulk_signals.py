"""``_bulk`` in real processes: Ctrl-C, SIGTERM and SIGKILL never lose or double-pay a task."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from .._processes import FakeProcess, cli_process, journal_count
from ._helpers import (
    API_KEY,
    FINAL,
    manifest,
    write,
)


def _cli(*argv: str, base_url: str) -> subprocess.Popen[str]:
    return cli_process(*argv, base_url=base_url, api_key=API_KEY)


def _wait_for(condition: object, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert proc.poll() is None, "the run ended before the kill point"
        assert time.monotonic() < deadline, "kill point not reached"
        time.sleep(0.005)


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
