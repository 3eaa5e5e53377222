"""The money invariant runs after every reliability test (see ``_invariant``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ._invariant import JOURNAL, Capture, capture_reports

SELF_TEST = "breaks_money_invariant"


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker of the invariant's own tests (they break it on purpose)."""
    config.addinivalue_line(
        "markers", f"{SELF_TEST}: the test breaks the money invariant on purpose (not checked)"
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
