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


class _TopOfRange(random.Random):
    """A random source whose uniform() records its range and returns its top (or bottom)."""

    def __init__(self, *, top: bool = True) -> None:
        super().__init__(0)
        self.top = top
        self.ranges: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.ranges.append((a, b))
        return b if self.top else a


def test_the_retried_statuses() -> None:
    """429, 500, 502, 503 and 504 are retried; nothing else."""
    assert {429, 500, 502, 503, 504} == RETRY_STATUSES


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0)]
)
def test_backoff_draws_from_zero_to_the_exact_ceiling(attempt: int, ceiling: float) -> None:
    """The draw is uniform over [0, min(cap, base * 2**attempt)] exactly."""
    rng = _TopOfRange()
    assert backoff_delay(attempt, RetryPolicy(base=0.5, cap=8.0), rng) == ceiling
    assert rng.ranges == [(0.0, ceiling)]


def test_backoff_exponent_stops_growing_at_62() -> None:
    """A huge attempt number neither overflows nor grows the ceiling past base * 2**62."""
    policy = RetryPolicy(base=1.0, cap=1e300)
    assert backoff_delay(62, policy, _TopOfRange()) == 2.0**62
    assert backoff_delay(63, policy, _TopOfRange()) == 2.0**62
    assert backoff_delay(100_000, policy, _TopOfRange()) == 2.0**62


def test_retry_delay_without_retry_after_is_the_backoff() -> None:
    """With no Retry-After the delay is the full-jitter draw itself."""
    policy = RetryPolicy(base=0.5, cap=8.0)
    assert retry_delay(2, policy, _TopOfRange()) == 2.0
    assert retry_delay(2, policy, _TopOfRange(top=False)) == 0.0


def test_retry_after_is_a_floor_under_a_longer_backoff() -> None:
    """A Retry-After shorter than the back-off draw does not shorten the delay."""
    policy = RetryPolicy(base=0.5, cap=8.0, retry_after_cap=60.0)
    assert retry_delay(4, policy, _TopOfRange(), retry_after=1.0) == 8.0
    assert retry_delay(4, policy, _TopOfRange(top=False), retry_after=1.0) == 1.0


def test_retry_after_cap_applies_before_the_floor() -> None:
    """A capped Retry-After still loses to a longer back-off draw."""
    policy = RetryPolicy(base=0.5, cap=8.0, retry_after_cap=2.0)
    assert retry_delay(4, policy, _TopOfRange(), retry_after=30.0) == 8.0
    assert retry_delay(0, policy, _TopOfRange(), retry_after=30.0) == 2.0


@pytest.mark.parametrize("header", ["inf", "-inf", "Infinity"])
def test_retry_after_infinite_is_ignored(header: str) -> None:
    """An infinite number of seconds is unparseable, not a wait forever."""
    assert parse_retry_after(header) is None


def test_retry_after_http_date_uses_the_wall_clock_without_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without now, an HTTP date is measured from time.time()."""
    monkeypatch.setattr("time.time", lambda: 1_699_999_990.0)
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:30 GMT") == 20.0


def test_retry_after_http_date_exact_seconds() -> None:
    """An HTTP date gives exactly its distance from now, in seconds."""
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:30 GMT", now=1_699_999_995.5) == 14.5


def test_retry_after_http_date_in_the_past_is_zero() -> None:
    """An HTTP date already past means retry now."""
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:30 GMT", now=1_800_000_000.0) == 0.0


def test_retry_after_http_date_without_zone_is_ignored() -> None:
    """An HTTP date with an unknown zone (-0000) is unparseable."""
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:30 -0000", now=1_700_000_000.0) is None


@pytest.mark.parametrize("header", ["Tue, 99 Nov 2023 22:13:30 GMT", "Tue, 14 Nov", ", , ,"])
def test_retry_after_broken_dates_are_ignored(header: str) -> None:
    """A date that does not parse gives None, not an exception."""
    assert parse_retry_after(header, now=1_700_000_000.0) is None


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


def test_submit_verdict_values() -> None:
    """The verdicts' values, in order."""
    assert [v.value for v in SubmitVerdict] == [
        "accepted",
        "refused",
        "retry",
        "ambiguous",
        "rejected",
    ]


def test_submit_classification_defaults_are_the_cautious_ones() -> None:
    """No answer counts as on the wire; a 2xx is taken to have no task id and no envelope."""
    assert classify_submit_answer(None) is SubmitVerdict.AMBIGUOUS
    assert classify_submit_answer(200) is SubmitVerdict.AMBIGUOUS


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (199, SubmitVerdict.REJECTED),
        (200, SubmitVerdict.ACCEPTED),
        (299, SubmitVerdict.ACCEPTED),
        (300, SubmitVerdict.REJECTED),
        (301, SubmitVerdict.REJECTED),
        (499, SubmitVerdict.REJECTED),
        (501, SubmitVerdict.AMBIGUOUS),
        (599, SubmitVerdict.AMBIGUOUS),
    ],
)
def test_submit_classification_range_edges(status: int, verdict: SubmitVerdict) -> None:
    """Only 200..299 is a success; every 5xx but 500 and 503 is ambiguous."""
    assert classify_submit_answer(status, has_task_id=True) is verdict
