"""Retry delays, Retry-After parsing and the submit classification (pure)."""

from __future__ import annotations

import random

import pytest

from ketchup_async import RetryPolicy
from ketchup_async._retry import (
    RETRY_STATUSES,
    SubmitVerdict,
    backoff_delay,
    classify_submit_answer,
    parse_retry_after,
    retry_delay,
)


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


# The submit classification table (README, "Reliability"): (status, on_wire, has_task_id,
# error_envelope) -> verdict.
SUBMIT_TABLE = [
    (200, True, True, False, SubmitVerdict.ACCEPTED),
    (201, True, True, False, SubmitVerdict.ACCEPTED),
    (429, True, False, False, SubmitVerdict.REFUSED),
    (503, True, False, False, SubmitVerdict.REFUSED),
    (500, True, False, False, SubmitVerdict.RETRY),
    (None, False, False, False, SubmitVerdict.RETRY),  # pool wait, connect error, DNS, TLS
    (502, True, False, False, SubmitVerdict.AMBIGUOUS),
    (504, True, False, False, SubmitVerdict.AMBIGUOUS),
    (520, True, False, False, SubmitVerdict.AMBIGUOUS),
    (200, True, False, False, SubmitVerdict.AMBIGUOUS),  # 2xx without a usable task id
    (None, True, False, False, SubmitVerdict.AMBIGUOUS),  # read timeout, drop after sending
    (200, True, False, True, SubmitVerdict.REJECTED),  # the API's error envelope
    (400, True, False, False, SubmitVerdict.REJECTED),
    (401, True, False, False, SubmitVerdict.REJECTED),
    (404, True, False, False, SubmitVerdict.REJECTED),
]


@pytest.mark.parametrize(
    ("status", "on_wire", "has_task_id", "error_envelope", "verdict"), SUBMIT_TABLE
)
def test_submit_classification_table(
    status: int | None,
    on_wire: bool,
    has_task_id: bool,
    error_envelope: bool,
    verdict: SubmitVerdict,
) -> None:
    """Each row of the submit-classification table."""
    assert (
        classify_submit_answer(
            status, on_wire=on_wire, has_task_id=has_task_id, error_envelope=error_envelope
        )
        is verdict
    )


def test_query_retries_gateway_answers() -> None:
    """Queries (idempotent GETs) still retry 502 and 504."""
    assert {502, 504} <= RETRY_STATUSES
