"""Retry decisions and delays: pure functions, no I/O, tested without sleeping.

``classify_submit_answer`` is the submit rule (a submit is money); ``RETRY_STATUSES`` the
query rule (a GET retries freely).
"""

from __future__ import annotations

import enum
import math
import random
import time
from email.utils import parsedate_to_datetime

from ._models import RetryPolicy

__all__ = [
    "REFUSED_STATUSES",
    "RETRIED_STATUSES",
    "RETRY_STATUSES",
    "SubmitVerdict",
    "backoff_delay",
    "classify_submit_answer",
    "parse_retry_after",
    "retry_delay",
]

#: HTTP statuses a query (an idempotent GET) retries. Submits follow ``classify_submit_answer``.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def backoff_delay(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Full jitter: a uniform draw in ``[0, min(cap, base * 2**attempt)]``.

    Args:
        attempt: 0 for the delay after the first failure, 1 after the second...
        policy: The retry policy.
        rng: The random source (seeded in tests).
    """
    ceiling = min(policy.cap, policy.base * 2.0 ** min(attempt, 62))
    return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header (seconds, possibly fractional, or an HTTP date).

    Args:
        value: The header value, or None.
        now: The current UNIX time for HTTP dates (defaults to the wall clock).

    Returns:
        Seconds to wait (>= 0), or None when absent or unparseable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def retry_delay(
    attempt: int, policy: RetryPolicy, rng: random.Random, retry_after: float | None = None
) -> float:
    """The sleep before retry number ``attempt + 1``: full jitter, at least ``Retry-After``.

    ``Retry-After`` (capped at ``retry_after_cap``) is a floor, not a replacement for the
    back-off: the delays of a request refused again and again still grow (and spread), instead
    of every retry coming back after the same short ``Retry-After``.
    """
    delay = backoff_delay(attempt, policy, rng)
    if retry_after is not None:
        return max(min(retry_after, policy.retry_after_cap), delay)
    return delay


class SubmitVerdict(enum.Enum):
    """What one submit attempt's answer means (see ``classify_submit_answer``)."""

    #: A 2xx with a usable task id: the task exists, we know which.
    ACCEPTED = "accepted"
    #: 429 or 503: the server refused it and charged nothing. Wait for the submit controller
    #: (which pauses and slows every submit) and send again; no retry is counted.
    REFUSED = "refused"
    #: 500 (the provider's guide: retry 500s with back-off), or the request never went on the
    #: wire (pool wait, connect error, DNS, TLS): not charged; retried with back-off, counted.
    RETRY = "retry"
    #: 502, 504, any other 5xx, a 2xx without a usable task id, a read timeout or a connection
    #: lost after the body was sent: the task may exist. Never resent.
    AMBIGUOUS = "ambiguous"
    #: Any other answer (400, 401, 404, an error envelope...): raised as it is, not retried.
    REJECTED = "rejected"


#: Submit statuses the server uses to refuse without charging (the controller's signal).
REFUSED_STATUSES = frozenset({429, 503})
#: Submit statuses retried with back-off (the provider's guide documents retrying 500s).
RETRIED_STATUSES = frozenset({500})


def classify_submit_answer(
    status: int | None,
    *,
    on_wire: bool = True,
    has_task_id: bool = False,
    error_envelope: bool = False,
) -> SubmitVerdict:
    """Classify one submit attempt: the rule that keeps a submit from being paid twice.

    Args:
        status: The HTTP status, or None when no answer arrived.
        on_wire: With no answer: whether any byte of the request may have left this machine
            (False for a pool wait, connect error, DNS or TLS failure).
        has_task_id: With a 2xx: whether the body carried a usable task id.
        error_envelope: With a 2xx: whether the body was the API's error envelope
            (``code`` other than 0): an explicit refusal.

    Returns:
        The verdict; see ``SubmitVerdict``.
    """
    if status is None:
        return SubmitVerdict.AMBIGUOUS if on_wire else SubmitVerdict.RETRY
    if 200 <= status < 300:
        if has_task_id:
            return SubmitVerdict.ACCEPTED
        return SubmitVerdict.REJECTED if error_envelope else SubmitVerdict.AMBIGUOUS
    if status in REFUSED_STATUSES:
        return SubmitVerdict.REFUSED
    if status in RETRIED_STATUSES:
        return SubmitVerdict.RETRY
    if status >= 500:
        return SubmitVerdict.AMBIGUOUS
    return SubmitVerdict.REJECTED
