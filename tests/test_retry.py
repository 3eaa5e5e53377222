"""Retry delays and Retry-After parsing (pure)."""

from __future__ import annotations

import random

import pytest

from ketchup_async import RetryPolicy
from ketchup_async._retry import backoff_delay, parse_retry_after, retry_delay


def test_full_jitter_stays_under_the_growing_ceiling() -> None:
    """Each delay is within [0, min(cap, base * 2**attempt)]."""
    policy = RetryPolicy(base=0.5, cap=8.0)
    rng = random.Random(1)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (3, 4.0), (10, 8.0)]:
        delays = [backoff_delay(attempt, policy, rng) for _ in range(200)]
        assert max(delays) <= ceiling
        assert max(delays) > ceiling * 0.8  # really spread over the range, not constant


def test_retry_after_is_honoured_and_capped() -> None:
    """A Retry-After wins over jitter, up to retry_after_cap."""
    policy = RetryPolicy(retry_after_cap=10.0)
    rng = random.Random(0)
    assert retry_delay(0, policy, rng, retry_after=3.0) == 3.0
    assert retry_delay(0, policy, rng, retry_after=120.0) == 10.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("2", 2.0),
        ("0.05", 0.05),
        (" 7 ", 7.0),
        ("-3", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
    ],
)
def test_retry_after_seconds_parse(header: str | None, expected: float | None) -> None:
    """Seconds (integer or decimal) parse; junk gives None."""
    assert parse_retry_after(header) == expected


def test_retry_after_http_date_parses() -> None:
    """An HTTP date is turned into seconds from now."""
    now = 1_700_000_000.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:30 GMT", now=now) == pytest.approx(10.0)
