"""The poller's error-reaction table: pure functions, no I/O, no clock."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import attrs
import pytest

from ketchup_async import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    GenerationResult,
    ImageResult,
    KetchupError,
    RateLimitError,
    ServerError,
    TaskFailedError,
    TaskNotFoundError,
    TaskStatus,
    ValidationError,
)
from ketchup_async._reactions import (
    EMPTY_SUCCESS,
    NOT_FOUND_REPEATS,
    STRAY_404_LIMIT,
    UNEXPECTED_LIMIT,
    Facts,
    Reaction,
    Verdict,
    copy_api_error,
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


# Exact reactions, field by field: every counter the poller keeps comes from here.

BUSY = Facts(task_id="ta1", errors=4, not_found=1, unexpected=2, stray_404s=2, age=1.0)


def react_busy(exc: BaseException, **changes: object) -> Reaction:
    """React to ``exc`` with non-zero counters everywhere (``BUSY`` evolved by ``changes``)."""
    facts = attrs.evolve(BUSY, **changes)
    return react_to_error(exc, facts, grace=GRACE, default_pause=1.0, pause_cap=60.0)


def test_the_limits() -> None:
    """Three JSON 404s, three stray 404s, three unexpected errors: the documented limits."""
    assert (NOT_FOUND_REPEATS, STRAY_404_LIMIT, UNEXPECTED_LIMIT) == (3, 3, 3)
    assert EMPTY_SUCCESS == "success without any image"


def test_verdict_values() -> None:
    """Each verdict has its documented value."""
    assert [v.value for v in Verdict] == [
        "running",
        "succeeded",
        "failed",
        "fail_all",
        "retry",
        "rate_limited",
    ]


def test_reaction_and_facts_defaults() -> None:
    """A bare Reaction or Facts carries no counters, no pause, nothing answered."""
    assert attrs.asdict(Reaction(verdict=Verdict.RETRY)) == {
        "verdict": Verdict.RETRY,
        "result": None,
        "error": None,
        "pause": 0.0,
        "status": None,
        "raw_status": None,
        "answered": False,
        "errors": 0,
        "not_found": 0,
        "unexpected": 0,
        "stray_404s": 0,
    }
    assert attrs.asdict(Facts(task_id="ta1")) == {
        "task_id": "ta1",
        "age": 0.0,
        "seen": False,
        "errors": 0,
        "not_found": 0,
        "unexpected": 0,
        "last_status": None,
        "answered": False,
        "stray_404s": 0,
    }


@pytest.mark.parametrize(
    "status", [TaskStatus.PENDING, TaskStatus.SUBMITTED, TaskStatus.IN_PROGRESS]
)
def test_a_status_not_final_keeps_running(status: TaskStatus) -> None:
    """A documented status that is not final: running, answered, no counters."""
    reaction = react_to_status("ta1", status, (), Decimal("1"), "why")
    assert reaction == Reaction(
        verdict=Verdict.RUNNING, status=status, raw_status=status.value, answered=True
    )


def test_failed_status_fails_with_reason_and_consumed() -> None:
    """failed: TaskFailedError carrying the task id, the reason and the credits consumed."""
    images = (ImageResult("https://cdn.test/a.png"),)
    reaction = react_to_status("ta1", TaskStatus.FAILED, images, Decimal("0.25"), "policy")
    assert reaction.verdict is Verdict.FAILED
    assert isinstance(reaction.error, TaskFailedError)
    assert (reaction.error.task_id, reaction.error.reason) == ("ta1", "policy")
    assert reaction.error.consumed == Decimal("0.25")
    assert reaction.result is None
    assert (reaction.status, reaction.raw_status, reaction.answered) == (
        TaskStatus.FAILED,
        "failed",
        True,
    )


def test_empty_success_names_the_task() -> None:
    """The empty-success failure is about this task, and the answer is still an answer."""
    reaction = react_to_status("ta7", TaskStatus.SUCCESS, (), None, "ignored")
    assert isinstance(reaction.error, TaskFailedError)
    assert reaction.error.task_id == "ta7"
    assert reaction.result is None
    assert (reaction.status, reaction.raw_status, reaction.answered) == (
        TaskStatus.SUCCESS,
        "success",
        True,
    )


def test_success_result_is_exact() -> None:
    """success with images: the result holds the task id, the images and the credits."""
    images = (ImageResult("https://cdn.test/a.png"), ImageResult("https://cdn.test/b.png"))
    reaction = react_to_status("ta1", TaskStatus.SUCCESS, images, Decimal("2"), None)
    assert reaction == Reaction(
        verdict=Verdict.SUCCEEDED,
        result=GenerationResult("ta1", images, Decimal("2")),
        status=TaskStatus.SUCCESS,
        raw_status="success",
        answered=True,
    )


def test_undocumented_status_reaction_is_exact() -> None:
    """An undocumented status: running, answered, every counter reset."""
    assert react_busy(UnknownStatusError("ta1", "cancelled")) == Reaction(
        verdict=Verdict.RUNNING, raw_status="cancelled", answered=True
    )


def test_rate_limit_reaction_is_exact() -> None:
    """429: pause for Retry-After, keep the error counts, reset the other counters."""
    exc = RateLimitError("slow", status_code=429, retry_after=5.0)
    assert react_busy(exc) == Reaction(
        verdict=Verdict.RATE_LIMITED, pause=5.0, answered=True, errors=4, not_found=1
    )


def test_rate_limit_pause_at_the_cap() -> None:
    """A Retry-After equal to the cap, or a default over it, pauses exactly the cap."""
    exc = RateLimitError("slow", status_code=429, retry_after=60.0)
    assert react(exc).pause == 60.0
    over = react_to_error(
        RateLimitError("slow", status_code=429),
        Facts(task_id="ta1"),
        grace=GRACE,
        default_pause=90.0,
        pause_cap=60.0,
    )
    assert over.pause == 60.0


def test_401_reaction_is_exact() -> None:
    """401: fail every job with the error itself; the API answered."""
    exc = AuthenticationError("Invalid API key", status_code=401, code=401)
    assert react_busy(exc) == Reaction(verdict=Verdict.FAIL_ALL, error=exc, answered=True)


@pytest.mark.parametrize(
    "exc",
    [
        ServerError("boom", status_code=502),
        APIConnectionError("reset", may_have_been_processed=True),
        ValidationError("status", "not a string"),
        RecursionError("deep"),
    ],
)
def test_transient_reaction_is_exact(exc: Exception) -> None:
    """Transient: retry, one more error, 404 counters kept, unexpected reset, not answered."""
    assert react_busy(exc) == Reaction(
        verdict=Verdict.RETRY, errors=5, not_found=1, unexpected=0, stray_404s=2
    )


def test_another_api_error_fails_the_job_with_it() -> None:
    """A 400 or 403 on a query fails that job with the error itself."""
    exc = BadRequestError("bad", status_code=400, code=400)
    assert react_busy(exc) == Reaction(verdict=Verdict.FAILED, error=exc, answered=True)


def test_an_unexpected_error_is_retried_and_counted() -> None:
    """Below the limit an unexpected error retries with one more unexpected in a row."""
    assert react_busy(KeyError("x"), unexpected=0) == Reaction(
        verdict=Verdict.RETRY, errors=5, not_found=1, unexpected=1, stray_404s=2
    )


def test_unexpected_errors_at_the_limit_fail_with_an_exact_error() -> None:
    """The third unexpected error in a row fails the job naming the task, count and type."""
    exc = RuntimeError("x" * 300)
    reaction = react_busy(exc, unexpected=UNEXPECTED_LIMIT - 1)
    assert reaction.verdict is Verdict.FAILED
    assert reaction.unexpected == UNEXPECTED_LIMIT
    assert (reaction.answered, reaction.errors, reaction.not_found, reaction.stray_404s) == (
        False,
        0,
        0,
        0,
    )
    error = reaction.error
    assert isinstance(error, APIConnectionError)
    assert str(error).startswith(
        f"querying task ta1 failed 3 times in a row with RuntimeError: {'x' * 200} ("
    )
    assert error.may_have_been_processed is False
    assert error.__cause__ is exc


def test_not_an_exception_is_refused_by_name() -> None:
    """A BaseException that is not an Exception is a TypeError naming its type."""
    with pytest.raises(TypeError, match=r"^not a query outcome: KeyboardInterrupt$"):
        react(KeyboardInterrupt())


def test_stray_404_after_an_answer_counts_and_retries() -> None:
    """A non-API 404 once the API answered: retry, one more stray, not an answer."""
    assert react_busy(HTML_404, answered=True, stray_404s=STRAY_404_LIMIT) == Reaction(
        verdict=Verdict.RETRY, errors=5, not_found=1, unexpected=0, stray_404s=4
    )


def test_stray_404_below_the_limit_retries() -> None:
    """Non-API 404s below the limit, nothing answered yet: retry and count."""
    reaction = react_busy(HTML_404, stray_404s=STRAY_404_LIMIT - 2)
    assert (reaction.verdict, reaction.stray_404s) == (Verdict.RETRY, STRAY_404_LIMIT - 1)


def test_stray_404s_at_the_limit_fail_all_with_an_exact_error() -> None:
    """The third stray 404 before any answer: EndpointNotFoundError with the page's start."""
    exc = TaskNotFoundError("p" * 200, status_code=404, request_id="rq1")
    reaction = react_busy(exc, stray_404s=STRAY_404_LIMIT - 1)
    assert reaction.verdict is Verdict.FAIL_ALL
    assert (reaction.stray_404s, reaction.answered, reaction.errors) == (3, False, 0)
    error = reaction.error
    assert isinstance(error, EndpointNotFoundError)
    assert (error.status_code, error.request_id) == (404, "rq1")
    assert error.message == (
        "the task query path answered a 404 that is not the API's JSON, 3 times and no query "
        f"was ever answered: the base URL looks wrong ({'p' * 120})"
    )


def test_json_404_for_a_seen_task_reaction_is_exact() -> None:
    """A JSON 404 for a seen task: retry, an answer, 404 count kept, strays reset."""
    assert react_busy(JSON_404, seen=True, age=1e6, not_found=2) == Reaction(
        verdict=Verdict.RETRY, answered=True, errors=5, not_found=2, unexpected=0, stray_404s=0
    )


def test_json_404_just_before_the_grace_ends_is_not_counted() -> None:
    """Within the grace the JSON 404s in a row are kept as they are."""
    reaction = react_busy(JSON_404, age=GRACE - 0.001, not_found=2)
    assert (reaction.verdict, reaction.not_found, reaction.answered) == (Verdict.RETRY, 2, True)


def test_json_404_at_the_end_of_the_grace_is_counted() -> None:
    """At exactly the grace a JSON 404 for a never-seen task counts."""
    assert react_busy(JSON_404, age=GRACE, not_found=0) == Reaction(
        verdict=Verdict.RETRY, answered=True, errors=5, not_found=1, unexpected=0, stray_404s=0
    )


def test_json_404_repeated_fails_with_the_error_itself() -> None:
    """The NOT_FOUND_REPEATS-th JSON 404 fails the job with that very error."""
    reaction = react_busy(JSON_404, age=GRACE, not_found=NOT_FOUND_REPEATS - 1)
    assert reaction == Reaction(
        verdict=Verdict.FAILED, error=JSON_404, answered=True, not_found=NOT_FOUND_REPEATS
    )


@pytest.mark.parametrize("verdict", [Verdict.SUCCEEDED, Verdict.FAILED, Verdict.FAIL_ALL])
def test_a_final_reaction_is_kept_past_the_deadline(verdict: Verdict) -> None:
    """Resolving or failing is never replaced by a deadline error."""
    reaction = Reaction(verdict=verdict)
    facts = Facts(task_id="ta1", age=1e9)
    assert with_deadline(reaction, facts, deadline=1.0) is reaction


@pytest.mark.parametrize("verdict", [Verdict.RUNNING, Verdict.RETRY, Verdict.RATE_LIMITED])
def test_a_pending_reaction_fails_at_exactly_the_deadline(verdict: Verdict) -> None:
    """At age == deadline a job still pending fails; the rest of the reaction is kept."""
    reaction = Reaction(verdict=verdict, errors=2, pause=3.0)
    facts = Facts(task_id="ta9", age=60.0)
    failed = with_deadline(reaction, facts, deadline=60.0)
    assert (failed.verdict, failed.errors, failed.pause) == (Verdict.FAILED, 2, 3.0)
    assert isinstance(failed.error, JobDeadlineError)
    assert (failed.error.task_id, failed.error.last_status, failed.error.deadline) == (
        "ta9",
        None,
        60.0,
    )


def test_copy_api_error_copies_every_field() -> None:
    """An API error failing many jobs is copied: same type and fields, a new instance."""
    exc = AuthenticationError(
        "Invalid API key", status_code=401, code=4011, detail="revoked", request_id="rq"
    )
    copy = copy_api_error(exc)
    assert copy is not exc
    assert type(copy) is AuthenticationError
    assert isinstance(copy, AuthenticationError)
    fields = ("message", "status_code", "code", "detail", "request_id")
    assert [getattr(copy, f) for f in fields] == ["Invalid API key", 401, 4011, "revoked", "rq"]


@pytest.mark.parametrize(
    "exc",
    [
        RateLimitError("slow", status_code=429, retry_after=3.0),
        APIConnectionError("reset", may_have_been_processed=False),
        TaskFailedError("ta1", "x"),
    ],
)
def test_copy_api_error_keeps_other_errors(exc: KetchupError) -> None:
    """A 429 or an error that is not an API answer is passed on as it is."""
    assert copy_api_error(exc) is exc
