"""Retry decisions and delays: pure functions, no I/O, tested without sleeping."""

from __future__ import annotations

import math
import random
import time
from email.utils import parsedate_to_datetime

from ._models import RetryPolicy

__all__ = ["RETRY_STATUSES", "backoff_delay", "parse_retry_after", "retry_delay"]

#: HTTP statuses that are retried (a submit too: the server answered, so it did not charge).
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
