"""The poller's error-reaction table: pure functions, no I/O, no clock."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from ketchup_async import (
    APIConnectionError,
    AuthenticationError,
    ImageResult,
    RateLimitError,
    ServerError,
    TaskFailedError,
    TaskNotFoundError,
    TaskStatus,
)
from ketchup_async._reactions import (
    EMPTY_SUCCESS,
    NOT_FOUND_REPEATS,
    STRAY_404_LIMIT,
    UNEXPECTED_LIMIT,
    Facts,
    Reaction,
    Verdict,
    react_to_error,
    react_to_status,
    with_deadline,
)
from ketchup_async.errors import EndpointNotFoundError, JobDeadlineError, UnknownStatusError

GRACE = 30.0
JSON_404 = TaskNotFoundError("task not found", status_code=404, code=1)
HTML_404 = TaskNotFoundError("non-JSON response body (150 bytes): '<html>'", status_code=404)


def react(exc: BaseException, **facts: object) -> Reaction:
    """React to ``exc`` for task ``ta1`` with the given facts."""
    return react_to_error(
        exc, Facts(task_id="ta1", **facts), grace=GRACE, default_pause=1.0, pause_cap=60.0
    )


def test_json_404_for_a_task_seen_before_is_transient() -> None:
    """A JSON 'not found' for a task the API answered before is retried, never final."""
    reaction = react(JSON_404, seen=True, age=1e6, not_found=NOT_FOUND_REPEATS, answered=True)
    assert reaction.verdict is Verdict.RETRY


def test_json_404_within_the_grace_is_transient() -> None:
    """A JSON 'not found' soon after submit means 'not visible yet' and is not counted."""
    reaction = react(JSON_404, age=GRACE / 2, answered=True)
    assert reaction.verdict is Verdict.RETRY
    assert reaction.not_found == 0


def test_json_404_for_a_task_never_seen_fails_only_when_repeated() -> None:
    """Past the grace, only NOT_FOUND_REPEATS JSON 404s in a row fail the job."""
    facts = {"age": GRACE + 1, "answered": True}
    not_found = 0
    for _ in range(NOT_FOUND_REPEATS - 1):
        reaction = react(JSON_404, not_found=not_found, **facts)
        assert reaction.verdict is Verdict.RETRY
        not_found = reaction.not_found
    reaction = react(JSON_404, not_found=not_found, **facts)
    assert reaction.verdict is Verdict.FAILED
    assert isinstance(reaction.error, TaskNotFoundError)


def test_non_json_404_is_transient_once_the_api_answered() -> None:
    """A proxy's HTML 404 never fails a job once the API answered this client."""
    reaction = react(HTML_404, age=1e6, answered=True, stray_404s=100)
    assert reaction.verdict is Verdict.RETRY


def test_non_json_404s_before_any_answer_mean_a_wrong_base_url() -> None:
    """Non-API 404s on the first queries, nothing ever answered: a configuration error."""
    stray = 0
    for _ in range(STRAY_404_LIMIT - 1):
        reaction = react(HTML_404, stray_404s=stray)
        assert reaction.verdict is Verdict.RETRY
        stray = reaction.stray_404s
    reaction = react(HTML_404, stray_404s=stray)
    assert reaction.verdict is Verdict.FAIL_ALL
    assert isinstance(reaction.error, EndpointNotFoundError)
    assert "base URL looks wrong" in str(reaction.error)


def test_an_answer_resets_the_stray_404_count() -> None:
    """A JSON answer in between resets the run of non-API 404s."""
    assert react(JSON_404, stray_404s=2, age=1.0).stray_404s == 0
    running = react_to_status("ta1", TaskStatus.PENDING, (), None, None)
    assert running.stray_404s == 0


def test_unexpected_exceptions_are_retried_then_fail_with_a_ketchup_error() -> None:
    """A RuntimeError (a closed session) is retried, then fails the job with a KetchupError."""
    unexpected = 0
    for _ in range(UNEXPECTED_LIMIT - 1):
        reaction = react(RuntimeError("Session is closed"), unexpected=unexpected)
        assert reaction.verdict is Verdict.RETRY
        unexpected = reaction.unexpected
    reaction = react(RuntimeError("Session is closed"), unexpected=unexpected)
    assert reaction.verdict is Verdict.FAILED
    assert isinstance(reaction.error, APIConnectionError)
    assert "Session is closed" in str(reaction.error)


def test_recursion_error_is_a_malformed_answer() -> None:
    """A RecursionError (a deeply nested JSON body) is transient, like any malformed body."""
    reaction = react(RecursionError("maximum recursion depth exceeded"), errors=2)
    assert reaction.verdict is Verdict.RETRY
    assert reaction.errors == 3


def test_cancellation_is_not_an_outcome() -> None:
    """CancelledError is not a query outcome: it must propagate."""
    with pytest.raises(TypeError):
        react(asyncio.CancelledError())


def test_server_errors_are_transient_and_counted() -> None:
    """5xx and connection errors retry with one more error in a row."""
    for exc in (
        ServerError("boom", status_code=500),
        APIConnectionError("reset", may_have_been_processed=False),
    ):
        reaction = react(exc, errors=4)
        assert (reaction.verdict, reaction.errors) == (Verdict.RETRY, 5)


def test_rate_limit_pauses_within_the_cap() -> None:
    """429 pauses for Retry-After, capped, or the default without one."""
    assert react(RateLimitError("slow", status_code=429, retry_after=600.0)).pause == 60.0
    assert react(RateLimitError("slow", status_code=429)).pause == 1.0
    assert react(RateLimitError("slow", status_code=429)).verdict is Verdict.RATE_LIMITED


def test_401_fails_every_job() -> None:
    """A 401 on a query fails every pending job."""
    reaction = react(AuthenticationError("Invalid API key", status_code=401, code=401))
    assert reaction.verdict is Verdict.FAIL_ALL


def test_an_undocumented_status_is_not_final_and_kept_as_sent() -> None:
    """'cancelled' is not guessed into a known status: the job keeps running."""
    reaction = react(UnknownStatusError("ta1", "cancelled"))
    assert reaction.verdict is Verdict.RUNNING
    assert reaction.raw_status == "cancelled"
    assert reaction.status is None


def test_success_without_any_image_is_a_failure() -> None:
    """A success with an empty result fails with TaskFailedError, never succeeds."""
    reaction = react_to_status("ta1", TaskStatus.SUCCESS, (), Decimal("0.5"), None)
    assert reaction.verdict is Verdict.FAILED
    assert isinstance(reaction.error, TaskFailedError)
    assert reaction.error.reason == EMPTY_SUCCESS
    assert reaction.error.consumed == Decimal("0.5")


def test_success_with_images_resolves() -> None:
    """A success with images resolves with them."""
    images = (ImageResult("https://cdn.test/a.png"),)
    reaction = react_to_status("ta1", TaskStatus.SUCCESS, images, None, None)
    assert reaction.verdict is Verdict.SUCCEEDED
    assert reaction.result is not None
    assert reaction.result.images == images


def test_past_the_deadline_a_pending_job_fails_naming_its_last_status() -> None:
    """A job still not final past job_deadline fails with JobDeadlineError and its status."""
    facts = Facts(task_id="ta1", age=3600.0, last_status="in_progress")
    running = react(UnknownStatusError("ta1", "cancelled"))
    reaction = with_deadline(running, facts, deadline=3600.0)
    assert reaction.verdict is Verdict.FAILED
    assert isinstance(reaction.error, JobDeadlineError)
    assert reaction.error.last_status == "cancelled"
    assert "cancelled" in str(reaction.error)
    retry = with_deadline(react(ServerError("x", status_code=500)), facts, deadline=3600.0)
    assert isinstance(retry.error, JobDeadlineError)
    assert retry.error.last_status == "in_progress"


def test_before_the_deadline_nothing_changes() -> None:
    """Within the deadline a reaction is left as it is."""
    running = react_to_status("ta1", TaskStatus.IN_PROGRESS, (), None, None)
    assert with_deadline(running, Facts(task_id="ta1", age=10.0), deadline=60.0) is running
