"""``_health``: failed requests are counted, and "unreachable" is said once, on a fake clock."""

from __future__ import annotations

import logging
from decimal import Decimal

from ketchup_async import APIConnectionError, BulkProgress, ServerError
from ketchup_async.bulk import State
from ketchup_async.cli._health import ApiHealth, ErrorLog


def snapshot(submitted: int = 0, succeeded: int = 0) -> BulkProgress:
    """A progress snapshot with these counts."""
    counts = dict.fromkeys(State, 0)
    counts[State.SUBMITTED] = submitted
    counts[State.SUCCEEDED] = succeeded
    return BulkProgress(
        total=10,
        counts=counts,
        consumed=Decimal(0),
        finished=succeeded,
        downloading=0,
        files_written=0,
        elapsed=1.0,
    )


def fail_every_second(health: ApiHealth, start: float, end: float) -> None:
    """A failed request every second in [start, end)."""
    now = start
    while now < end:
        health.on_error(now, "connection refused", unreachable=True)
        now += 1.0


def test_errors_without_progress_warn_once_after_five_seconds() -> None:
    """Five seconds of failures and no input moving: one warning naming the reason."""
    health = ApiHealth()
    health.on_progress(snapshot(submitted=3))
    fail_every_second(health, 100.0, 104.5)
    assert health.warning(104.5, "out") is None
    fail_every_second(health, 105.0, 106.0)
    text = health.warning(105.0, "out")
    assert text is not None
    assert text.startswith("API unreachable for 5 s: connection refused; still retrying")
    assert "ketchup resume out" in text
    assert health.warning(106.0, "out") is None
    assert health.errors == 6


def test_a_blip_then_quiet_is_no_warning() -> None:
    """One failed request followed by silence (the API answers, nothing finished yet)."""
    health = ApiHealth()
    health.on_error(0.0, "connection reset", unreachable=True)
    assert health.warning(40.0, "out") is None


def test_progress_ends_the_streak() -> None:
    """An input that moves means the API answers: the streak, and its warning, start over."""
    health = ApiHealth()
    health.on_progress(snapshot(submitted=3))
    fail_every_second(health, 0.0, 6.0)
    assert health.warning(6.0, "out") is not None
    assert health.on_progress(snapshot(submitted=2, succeeded=1)) is True
    assert health.failing_for(6.0) is None
    fail_every_second(health, 7.0, 9.0)
    assert health.warning(9.0, "out") is None


def test_server_errors_say_failing() -> None:
    """Answers with 5xx are "failing", not "unreachable"."""
    health = ApiHealth()
    fail = "503 Service Unavailable"
    for second in range(7):
        health.on_error(float(second), fail, unreachable=False)
    assert (health.warning(6.0, "out") or "").startswith(f"API failing for 6 s: {fail}")


def test_error_log_counts_records_carrying_an_api_failure() -> None:
    """A log record with an APIConnectionError or ServerError argument counts; others do not."""
    health = ApiHealth()
    handler = ErrorLog(health, lambda: 1.0)
    logger = logging.getLogger("test.cli.health")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug(
            "query of %s failed (%s)",
            "ta1",
            APIConnectionError("could not connect", may_have_been_processed=False),
        )
        logger.debug("retrying after %s", ServerError("bad gateway", status_code=502))
        logger.debug("GET %s -> %s (attempt %d)", "/q", 200, 1)
    finally:
        logger.removeHandler(handler)
    assert health.errors == 2
    assert health.last_error == "HTTP 502: bad gateway"
