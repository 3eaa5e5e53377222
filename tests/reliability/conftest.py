"""The money invariant runs after every reliability test (see ``_invariant``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ._invariant import JOURNAL, Capture, capture_reports

SELF_TEST = "own_money_check"


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker of tests the autouse check leaves alone."""
    config.addinivalue_line(
        "markers",
        f"{SELF_TEST}: the test checks the money invariant itself (or breaks it on purpose)",
    )


@pytest.fixture(autouse=True)
def money_invariant(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Capture]:
    """Record what each test's SDK reported; afterwards audit every fake server's ledger."""
    with capture_reports(monkeypatch) as capture:
        yield capture
    if request.node.get_closest_marker(SELF_TEST) is not None:
        return
    capture.journals.extend(p.parent.parent for p in tmp_path.rglob(JOURNAL.name))
    problems = capture.violations()
    assert not problems, "money invariant broken:\n" + "\n".join(problems)
