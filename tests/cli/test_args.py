"""``_args``: flags, help texts, global flags before or after the command."""

from __future__ import annotations

import pytest

from ._helpers import (
    run,
)


def test_a_bad_flag_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse refuses --concurrency 0 with status 2."""
    with pytest.raises(SystemExit) as info:
        run("generate", "p.txt", "--out", "x", "--concurrency", "0")
    assert info.value.code == 2
    assert "must be a positive integer" in capsys.readouterr().err
