"""Counters the fake server keeps so tests and benchmarks can assert client behaviour."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["CDN_REQUESTS_KEPT", "FakeStats"]

CDN_REQUESTS_KEPT = 1000
"""How many CDN requests' headers :attr:`FakeStats.cdn_requests` retains."""


def _min_gap(times: list[float]) -> float | None:
    if len(times) < 2:
        return None
    return min(b - a for a, b in itertools.pairwise(times))


@attrs.define(eq=False)
class FakeStats:
    """Counters of what clients did to a :class:`~ketchup_async.testing.FakeKetchupServer`.

    Attributes:
        requests: Responses by ``(endpoint, status)``; endpoints are ``submit``, ``query``
            and ``cdn``; status ``0`` means the connection was aborted (reset fault).
        polls: Number of queries per task id (counted on arrival, whatever the answer).
        poll_times: Monotonic arrival times of each query, per task id.
        created_per_prompt: Tasks created per prompt (duplicate-submit detection).
        rate_limited: 429 answers sent.
        callbacks_sent: Callback POSTs that got an HTTP answer (duplicates count twice).
        callbacks_dropped: Callbacks deliberately not sent (``callback_drop_rate``).
        callbacks_failed: Callback POSTs that failed (connection refused, timeout...).
        resets: Connections aborted by ``reset`` / ``reset_after_accept`` faults.
        faults_injected: Injected faults by kind (``error_500``, ``html_502``, ``reset``,
            ``reset_after_accept``, ``latency``).
        query_times: Monotonic arrival time of every query.
        cdn_requests: Header dicts of the last 1000 CDN requests.
    """

    requests: Counter[tuple[str, int]] = attrs.field(factory=Counter)
    polls: Counter[str] = attrs.field(factory=Counter)
    poll_times: dict[str, list[float]] = attrs.field(factory=dict)
    created_per_prompt: Counter[str] = attrs.field(factory=Counter)
    rate_limited: int = 0
    callbacks_sent: int = 0
    callbacks_dropped: int = 0
    callbacks_failed: int = 0
    resets: int = 0
    faults_injected: Counter[str] = attrs.field(factory=Counter)
    query_times: list[float] = attrs.field(factory=list)
    cdn_requests: list[dict[str, str]] = attrs.field(factory=list)

    def record_query(self, task_id: str | None, now: float) -> None:
        """Record the arrival of one query (of ``task_id``, if the request named one)."""
        self.query_times.append(now)
        if task_id:
            self.polls[task_id] += 1
            times = self.poll_times.get(task_id)
            if times is None:
                self.poll_times[task_id] = [now]
            else:
                times.append(now)

    def record_cdn_request(self, headers: Mapping[str, str]) -> None:
        """Record one CDN request's headers, keeping only the most recent ones."""
        requests = self.cdn_requests
        requests.append(dict(headers))
        if len(requests) > CDN_REQUESTS_KEPT:
            del requests[: len(requests) - CDN_REQUESTS_KEPT]

    def min_poll_gap(self, task_id: str) -> float | None:
        """Return the smallest real gap between two queries of ``task_id`` (None if < 2)."""
        return _min_gap(self.poll_times.get(task_id, []))

    def min_poll_gap_all(self) -> float | None:
        """Return the smallest gap between two queries of the same task over all tasks."""
        gaps = [g for g in map(_min_gap, self.poll_times.values()) if g is not None]
        return min(gaps) if gaps else None

    def as_dict(self, *, max_items: int = 1000) -> dict[str, Any]:
        """Return a JSON-able summary.

        Args:
            max_items: Per-task / per-prompt maps are included only up to this many entries.

        Returns:
            Totals and counters; ``polls`` and ``created_per_prompt`` only when small.
        """
        times = self.query_times
        duration = times[-1] - times[0] if len(times) > 1 else 0.0
        summary: dict[str, Any] = {
            "requests": {f"{ep}:{st}": n for (ep, st), n in sorted(self.requests.items())},
            "requests_total": sum(self.requests.values()),
            "queries": len(times),
            "first_query_at": times[0] if times else None,
            "last_query_at": times[-1] if times else None,
            "query_rate": (len(times) - 1) / duration if duration > 0 else None,
            "tasks_created": sum(self.created_per_prompt.values()),
            "tasks_polled": len(self.polls),
            "max_polls_per_task": max(self.polls.values(), default=0),
            "min_poll_gap": self.min_poll_gap_all(),
            "duplicate_prompts": sum(1 for n in self.created_per_prompt.values() if n > 1),
            "rate_limited": self.rate_limited,
            "callbacks_sent": self.callbacks_sent,
            "callbacks_dropped": self.callbacks_dropped,
            "callbacks_failed": self.callbacks_failed,
            "resets": self.resets,
            "faults_injected": dict(self.faults_injected),
            "cdn_requests": len(self.cdn_requests),
            "cdn_requests_with_authorization": sum(
                1 for h in self.cdn_requests if any(k.lower() == "authorization" for k in h)
            ),
        }
        if len(self.polls) <= max_items:
            summary["polls"] = dict(self.polls)
        if len(self.created_per_prompt) <= max_items:
            summary["created_per_prompt"] = dict(self.created_per_prompt)
        return summary
