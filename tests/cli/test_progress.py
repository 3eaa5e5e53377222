"""``_progress``: plain lines, the final line once, nothing after a failed start."""

from __future__ import annotations

import io
from decimal import Decimal

from ketchup_async import BulkProgress
from ketchup_async.bulk import State
from ketchup_async.cli._health import ApiHealth
from ketchup_async.cli._progress import PlainProgress, format_line


def snapshot(done: int, elapsed: float) -> BulkProgress:
    """A snapshot of a 3-input run with ``done`` successes."""
    counts = dict.fromkeys(State, 0)
    counts[State.SUCCEEDED] = done
    counts[State.QUEUED] = 3 - done
    return BulkProgress(
        total=3,
        counts=counts,
        consumed=Decimal(done) / 2,
        finished=done,
        downloading=0,
        files_written=done,
        elapsed=elapsed,
    )


class Clock:
    """A fake clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def reporter(stream: io.StringIO, clock: Clock) -> PlainProgress:
    return PlainProgress(stream, health=ApiHealth(), out_dir="out", clock=clock)


def test_the_final_line_is_printed_once() -> None:
    """The run's last report, printed on its interval, is not printed again at the end."""
    stream, clock = io.StringIO(), Clock()
    with reporter(stream, clock) as progress:
        progress(snapshot(0, 0.0))
        clock.now = 2.5
        progress(snapshot(3, 2.5))  # the run's last report, due for a line
    assert stream.getvalue().count("3/3 done") == 1


def test_the_last_snapshot_is_printed_at_the_end() -> None:
    """A report between two lines still shows at the end."""
    stream, clock = io.StringIO(), Clock()
    with reporter(stream, clock) as progress:
        progress(snapshot(0, 0.0))
        clock.now = 0.5
        progress(snapshot(3, 0.5))
    assert stream.getvalue().splitlines() == [format_line(snapshot(3, 0.5))]


def test_no_line_when_the_run_fails() -> None:
    """A run that ends with an error (a refused key) prints no progress line before it."""
    stream, clock = io.StringIO(), Clock()
    try:
        with reporter(stream, clock) as progress:
            progress(snapshot(0, 0.0))
            raise RuntimeError("the API refused the key")
    except RuntimeError:
        pass
    assert stream.getvalue() == ""


def test_the_failed_request_count_is_on_the_line() -> None:
    """Failed requests show at the end of the line, only when there are some."""
    assert "failed request" not in format_line(snapshot(1, 1.0))
    assert format_line(snapshot(1, 1.0), 12).endswith("| 12 failed requests")
