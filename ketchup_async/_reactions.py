"""What the poller does with each query's outcome: pure functions, no I/O, no clock.

The poller (``_poller``) asks one question per answered or failed query and applies the
``Reaction``; every rule of the table lives here, tested without a server:

- a documented status, not final: poll again on the schedule;
- ``success`` with images or ``failed``: resolve the job (result or ``TaskFailedError``);
- ``success`` without any image: ``TaskFailedError("success without any image")``, never a
  success;
- an undocumented status (``cancelled``...): not final, poll again (the raw status is kept);
- 429: pause the whole poller for ``Retry-After`` (capped), then retry;
- 401: fail every pending job with ``AuthenticationError``;
- 404 in the API's JSON, for a task seen before or within ``not_found_grace``: transient;
  for a task never seen, past the grace: ``TaskNotFoundError`` after ``NOT_FOUND_REPEATS``
  such answers in a row;
- 404 that is not the API's JSON (a proxy's page): transient; but ``STRAY_404_LIMIT`` of them
  in a row before the API ever answered this client fail every job with
  ``EndpointNotFoundError`` (the base URL looks wrong);
- 5xx, timeouts, resets, malformed bodies (a ``RecursionError`` from a deeply nested one too):
  transient, retry with back-off;
- another API error (400, 403...): fail the job with it;
- anything else raised (a bug, a session closed by its owner): retry; ``UNEXPECTED_LIMIT`` in
  a row fail the job with ``APIConnectionError``;
- and still not final past ``PollPolicy.job_deadline``: ``JobDeadlineError`` naming the last
  status.

Decision on libraries: none fits a table this small and this specific; plain functions are
the clearest form, and their tests need no I/O.
"""

from __future__ import annotations

import enum
from decimal import Decimal

import attrs

from ._models import GenerationResult, ImageResult, TaskStatus
from .errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    EndpointNotFoundError,
    JobDeadlineError,
    KetchupError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TaskFailedError,
    UnknownStatusError,
    ValidationError,
)

__all__ = [
    "NOT_FOUND_REPEATS",
    "STRAY_404_LIMIT",
    "UNEXPECTED_LIMIT",
    "Facts",
    "Reaction",
    "Verdict",
    "copy_api_error",
    "react_to_error",
    "react_to_status",
    "with_deadline",
]

#: JSON "not found" answers in a row, past the grace, before a never-seen task fails.
NOT_FOUND_REPEATS = 3
#: Non-API 404s in a row before the API ever answered this client: the base URL is wrong.
STRAY_404_LIMIT = 3
#: Unexpected exceptions in a row from one task's queries before its job fails.
UNEXPECTED_LIMIT = 3

#: The reason a ``success`` without any image fails with.
EMPTY_SUCCESS = "success without any image"


class Verdict(enum.Enum):
    """What to do with the job whose query (or callback) produced an outcome."""

    RUNNING = "running"  # an answer, not final: poll again on the schedule
    SUCCEEDED = "succeeded"  # resolve the job with ``result``
    FAILED = "failed"  # fail this job with ``error``
    FAIL_ALL = "fail_all"  # fail every pending job with a copy of ``error``
    RETRY = "retry"  # transient: retry this task with back-off
    RATE_LIMITED = "rate_limited"  # pause the whole poller for ``pause`` s, then retry


@attrs.frozen(kw_only=True)
class Facts:
    """What the reaction to one query needs to know about its job and its client.

    Attributes:
        task_id: The task.
        age: Seconds since the job started being tracked.
        seen: True once the API answered any status for this task.
        errors: Transient errors in a row for this task (before this outcome).
        not_found: JSON "not found" answers in a row past the grace (before this outcome).
        unexpected: Unexpected exceptions in a row for this task (before this outcome).
        last_status: The last status answered for it, exactly as sent, or None.
        answered: True once the API answered any query of this client.
        stray_404s: Non-API 404s in a row on this client's queries (before this outcome).
    """

    task_id: str
    age: float = 0.0
    seen: bool = False
    errors: int = 0
    not_found: int = 0
    unexpected: int = 0
    last_status: str | None = None
    answered: bool = False
    stray_404s: int = 0


@attrs.frozen(kw_only=True)
class Reaction:
    """The poller's next step for one job, and the counters to keep after it.

    Attributes:
        verdict: What to do.
        result: The result to resolve with (``SUCCEEDED``).
        error: The error to fail with (``FAILED``, ``FAIL_ALL``).
        pause: Seconds to pause every query (``RATE_LIMITED``).
        status: The documented status answered, if any (shown on ``Job.status``).
        raw_status: The status answered exactly as sent (documented or not), if any.
        answered: True if the API itself answered (JSON): the task or the client is "seen".
        errors: Transient errors in a row for the task, after this outcome.
        not_found: JSON 404s in a row past the grace, after this outcome.
        unexpected: Unexpected exceptions in a row, after this outcome.
        stray_404s: Non-API 404s in a row for the client, after this outcome.
    """

    verdict: Verdict
    result: GenerationResult | None = None
    error: KetchupError | None = None
    pause: float = 0.0
    status: TaskStatus | None = None
    raw_status: str | None = None
    answered: bool = False
    errors: int = 0
    not_found: int = 0
    unexpected: int = 0
    stray_404s: int = 0


def react_to_status(
    task_id: str,
    status: TaskStatus,
    images: tuple[ImageResult, ...],
    consumed: Decimal | None,
    reason: str | None,
) -> Reaction:
    """The reaction to a documented status answered by a query or pushed by a webhook."""
    seen = Reaction(verdict=Verdict.RUNNING, status=status, raw_status=status.value, answered=True)
    if not status.is_final:
        return seen
    if status is TaskStatus.FAILED:
        error = TaskFailedError(task_id, reason, consumed)
        return attrs.evolve(seen, verdict=Verdict.FAILED, error=error)
    if not images:
        error = TaskFailedError(task_id, EMPTY_SUCCESS, consumed)
        return attrs.evolve(seen, verdict=Verdict.FAILED, error=error)
    result = GenerationResult(task_id, images, consumed)
    return attrs.evolve(seen, verdict=Verdict.SUCCEEDED, result=result)


def _retry(
    facts: Facts,
    *,
    not_found: int | None = None,
    unexpected: int = 0,
    stray_404s: int | None = None,
) -> Reaction:
    # Transient: one more error in a row (for back-off); a JSON 404 is an answer of the API.
    return Reaction(
        verdict=Verdict.RETRY,
        answered=not_found is not None,
        errors=facts.errors + 1,
        not_found=facts.not_found if not_found is None else not_found,
        unexpected=unexpected,
        stray_404s=facts.stray_404s if stray_404s is None else stray_404s,
    )


def react_to_error(
    exc: BaseException, facts: Facts, *, grace: float, default_pause: float, pause_cap: float
) -> Reaction:
    """The reaction to a query that raised ``exc`` (anything at all but a ``BaseException``).

    Args:
        exc: What the query raised.
        facts: The job's and the client's state before this outcome.
        grace: ``PollPolicy.not_found_grace``.
        default_pause: The pause after a 429 without ``Retry-After``.
        pause_cap: The longest pause a 429 may cause (``RetryPolicy.retry_after_cap``).

    Raises:
        TypeError: ``exc`` is not an ``Exception`` (cancellation, exit): not an outcome.
    """
    if isinstance(exc, UnknownStatusError):
        # An answer, just not one the SDK knows: not final, never guessed, never an error.
        return Reaction(verdict=Verdict.RUNNING, raw_status=exc.status, answered=True)
    if isinstance(exc, RateLimitError):
        pause = default_pause if exc.retry_after is None else exc.retry_after
        return Reaction(
            verdict=Verdict.RATE_LIMITED,
            pause=min(pause, pause_cap),
            answered=True,
            errors=facts.errors,
            not_found=facts.not_found,
        )
    if isinstance(exc, AuthenticationError):
        return Reaction(verdict=Verdict.FAIL_ALL, error=exc, answered=True)
    if isinstance(exc, NotFoundError):
        return _react_to_404(exc, facts, grace=grace)
    if isinstance(exc, (ServerError, APIConnectionError, ValidationError, RecursionError)):
        # RecursionError: a deeply nested JSON body is a malformed answer, nothing more.
        return _retry(facts)
    if isinstance(exc, APIError):
        return Reaction(verdict=Verdict.FAILED, error=exc, answered=True)
    if isinstance(exc, Exception):
        unexpected = facts.unexpected + 1
        if unexpected >= UNEXPECTED_LIMIT:
            error = APIConnectionError(
                f"querying task {facts.task_id} failed {unexpected} times in a row with "
                f"{type(exc).__name__}: {str(exc)[:200]}",
                may_have_been_processed=False,
            )
            error.__cause__ = exc
            return Reaction(verdict=Verdict.FAILED, error=error, unexpected=unexpected)
        return _retry(facts, unexpected=unexpected)
    raise TypeError(f"not a query outcome: {type(exc).__name__}")


def _react_to_404(exc: NotFoundError, facts: Facts, *, grace: float) -> Reaction:
    if exc.code is None:  # not the API's JSON: a proxy's page, or no API at this URL at all
        stray = facts.stray_404s + 1
        if not facts.answered and stray >= STRAY_404_LIMIT:
            error = EndpointNotFoundError(
                f"the task query path answered a 404 that is not the API's JSON, {stray} times "
                "and no query was ever answered: the base URL looks wrong "
                f"({exc.message[:120]})",
                status_code=exc.status_code,
                request_id=exc.request_id,
            )
            return Reaction(verdict=Verdict.FAIL_ALL, error=error, stray_404s=stray)
        return _retry(facts, stray_404s=stray)
    if facts.seen or facts.age < grace:
        return _retry(facts, not_found=facts.not_found, stray_404s=0)
    not_found = facts.not_found + 1
    if not_found >= NOT_FOUND_REPEATS:
        return Reaction(verdict=Verdict.FAILED, error=exc, answered=True, not_found=not_found)
    return _retry(facts, not_found=not_found, stray_404s=0)


def with_deadline(reaction: Reaction, facts: Facts, *, deadline: float) -> Reaction:
    """``reaction``, or a ``JobDeadlineError`` if it leaves the job pending past ``deadline``."""
    if reaction.verdict in (Verdict.SUCCEEDED, Verdict.FAILED, Verdict.FAIL_ALL):
        return reaction
    if facts.age < deadline:
        return reaction
    last = reaction.raw_status if reaction.raw_status is not None else facts.last_status
    return attrs.evolve(
        reaction,
        verdict=Verdict.FAILED,
        error=JobDeadlineError(facts.task_id, last, deadline),
    )


def copy_api_error(exc: KetchupError) -> KetchupError:
    """A fresh copy of an error failing many jobs (each job raises its own instance)."""
    if not isinstance(exc, APIError) or isinstance(exc, RateLimitError):
        return exc
    return type(exc)(
        exc.message,
        status_code=exc.status_code,
        code=exc.code,
        detail=exc.detail,
        request_id=exc.request_id,
    )
