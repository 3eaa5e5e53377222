"""The ``ketchup`` process with spend control: --max-credits, --price, --reuse (fake API)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from ketchup_async.cli import main

from .._processes import FakeProcess, cli_process
from ..conftest import API_KEY

SCALE = "0.002"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api() -> Iterator[FakeProcess]:
    """A fast fake API process (0.5 credits per image, one image per task)."""
    fake = FakeProcess("--time-scale", SCALE, "--api-key", API_KEY)
    yield fake
    fake.stop()


def ketchup(api: FakeProcess, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run the real ``ketchup`` process to the end."""
    proc = cli_process(*argv, "--time-scale", SCALE, base_url=api.url, api_key=API_KEY)
    out, err = proc.communicate(timeout=240)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def prompts_file(path: Path, prompts: list[str]) -> Path:
    path.write_text("".join(f"{p}\n" for p in prompts), encoding="utf-8")
    return path


def manifest(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def spent(out: Path) -> Decimal:
    return sum(
        (Decimal(str(line["consumed"])) for line in manifest(out) if line["consumed"]), Decimal(0)
    )


def test_a_budget_stops_at_max_credits_and_resume_finishes_without_paying_twice(
    tmp_path: Path, api: FakeProcess
) -> None:
    """100 prompts at 0.5, --max-credits 10: <= 10 spent, rest queued, exit 5; a resume with
    more budget finishes them, one task per prompt."""
    prompts = [f"budget cat {i}" for i in range(100)]
    source, out = prompts_file(tmp_path / "p.txt", prompts), tmp_path / "out"

    first = ketchup(api, "generate", str(source), "--out", str(out), "--max-credits", "10")
    assert first.returncode == 5, first.stderr
    assert spent(out) <= 10
    lines = manifest(out)
    queued = [line for line in lines if line["status"] == "queued"]
    assert len(queued) == 100 - sum(1 for line in lines if line["status"] == "succeeded")
    assert len(queued) >= 80
    assert {line["error"] for line in queued} == {"budget"}
    assert "credit budget" in first.stdout
    assert "10.00" in first.stdout
    assert f"ketchup resume {out} --max-credits M" in first.stdout

    second = ketchup(api, "resume", str(out), "--max-credits", "60")
    assert second.returncode == 0, second.stderr
    assert {line["status"] for line in manifest(out)} == {"succeeded"}
    assert spent(out) == 50
    assert "spent before this run" in second.stdout
    assert all(api.created(p) == 1 for p in prompts)
    assert len(list(out.glob("*.png"))) == 100


def test_reuse_pays_only_for_new_prompts(tmp_path: Path, api: FakeProcess) -> None:
    """B = 40 prompts of A + 10 new with --reuse A: exactly 10 tasks, all 50 files."""
    old = [f"reuse dog {i}" for i in range(40)]
    new = [f"fresh dog {i}" for i in range(10)]
    a, b = tmp_path / "a", tmp_path / "b"
    run_a = ketchup(api, "generate", str(prompts_file(tmp_path / "a.txt", old)), "--out", str(a))
    assert run_a.returncode == 0, run_a.stderr
    created = api.stats()["tasks_created"]

    source = prompts_file(tmp_path / "b.txt", [*old, *new])
    run_b = ketchup(api, "generate", str(source), "--out", str(b), "--reuse", str(a))
    assert run_b.returncode == 0, run_b.stderr
    assert api.stats()["tasks_created"] - created == 10
    assert all(api.created(p) == 1 for p in [*old, *new])
    assert len(list(b.glob("*.png"))) == 50
    statuses = [line["status"] for line in manifest(b)]
    assert statuses.count("reused") == 40
    assert "credits saved by reuse" in run_b.stdout


def test_help_names_the_flags_and_the_budget_exit_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``generate --help`` documents --max-credits, --price, --reuse and exit status 5."""
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--max-credits N", "--price P", "--reuse DIR", "5 the credit budget"):
        assert flag in text


def test_a_negative_budget_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """--max-credits -1: exit 2 with one line."""
    with pytest.raises(SystemExit) as info:
        main(["generate", "p.txt", "--out", "o", "--max-credits", "-1"])
    assert info.value.code == 2
    assert "--max-credits" in capsys.readouterr().err
