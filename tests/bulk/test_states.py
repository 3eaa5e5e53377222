"""Tests of the pure state machine of bulk-run inputs (``ketchup_async._states``)."""

from __future__ import annotations

import itertools

import pytest

from ketchup_async.bulk._states import (
    FINAL_STATES,
    TRANSITIONS,
    InvalidTransitionError,
    State,
    can_transition,
    check_transition,
    is_fatal_submit_error,
    sources_of,
    state_after_submit_error,
    state_after_task_error,
)
from ketchup_async.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    KetchupError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TaskFailedError,
    TaskNotFoundError,
    ValidationError,
)

ALLOWED = {
    (State.QUEUED, State.SUBMITTING),
    (State.QUEUED, State.REUSED),
    (State.SUBMITTING, State.SUBMITTED),
    (State.SUBMITTING, State.FAILED),
    (State.SUBMITTING, State.UNCERTAIN),
    (State.SUBMITTING, State.QUEUED),
    (State.SUBMITTED, State.SUCCEEDED),
    (State.SUBMITTED, State.FAILED),
    (State.UNCERTAIN, State.QUEUED),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(State, State)))
def test_exactly_the_documented_transitions_are_allowed(current: State, target: State) -> None:
    """Every pair of states is allowed iff it is in the documented list."""
    assert can_transition(current, target) == ((current, target) in ALLOWED)


def test_check_transition_refuses_with_both_states_named() -> None:
    """A refused transition raises InvalidTransitionError naming both states."""
    with pytest.raises(InvalidTransitionError, match="'succeeded' to 'queued'") as info:
        check_transition(State.SUCCEEDED, State.QUEUED)
    assert (info.value.current, info.value.target) == (State.SUCCEEDED, State.QUEUED)


def test_check_transition_returns_the_target() -> None:
    """An allowed transition returns the new state."""
    assert check_transition(State.QUEUED, State.SUBMITTING) is State.SUBMITTING


def test_the_final_states() -> None:
    """FINAL_STATES is exactly succeeded, failed, uncertain and reused."""
    assert {State.SUCCEEDED, State.FAILED, State.UNCERTAIN, State.REUSED} == FINAL_STATES


@pytest.mark.parametrize(
    ("state", "final"),
    [
        (State.QUEUED, False),
        (State.SUBMITTING, False),
        (State.SUBMITTED, False),
        (State.SUCCEEDED, True),
        (State.FAILED, True),
        (State.UNCERTAIN, True),
        (State.REUSED, True),
    ],
)
def test_is_final(state: State, final: bool) -> None:
    """is_final is True for succeeded, failed, uncertain and reused only."""
    assert state.is_final is final


@pytest.mark.parametrize(
    ("state", "text"),
    [
        (State.QUEUED, "queued"),
        (State.SUBMITTING, "submitting"),
        (State.SUBMITTED, "submitted"),
        (State.SUCCEEDED, "succeeded"),
        (State.FAILED, "failed"),
        (State.UNCERTAIN, "uncertain"),
        (State.REUSED, "reused"),
    ],
)
def test_a_state_is_its_journaled_name(state: State, text: str) -> None:
    """Each state's value and str() are the name written in the journal."""
    assert state.value == text
    assert str(state) == text
    assert State(text) is state


def test_final_states_only_leave_through_resubmit_uncertain() -> None:
    """succeeded and failed are dead ends; uncertain only goes back to queued."""
    exits = {(s, t) for s in FINAL_STATES for t in TRANSITIONS[s]}
    assert exits == {(State.UNCERTAIN, State.QUEUED)}


def test_submitted_never_goes_back() -> None:
    """A submitted input (its task exists) can never be submitted again."""
    assert not can_transition(State.SUBMITTED, State.SUBMITTING)
    assert not can_transition(State.SUBMITTED, State.QUEUED)


def test_sources_of_inverts_the_table() -> None:
    """sources_of lists exactly the states that may reach a target."""
    assert sources_of(State.QUEUED) == {State.SUBMITTING, State.UNCERTAIN}
    assert sources_of(State.FAILED) == {State.SUBMITTING, State.SUBMITTED}
    assert sources_of(State.SUBMITTED) == {State.SUBMITTING}


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (APIConnectionError("reset", may_have_been_processed=True), State.UNCERTAIN),
        (APITimeoutError("timed out", may_have_been_processed=True), State.UNCERTAIN),
        (APIConnectionError("refused", may_have_been_processed=False), State.QUEUED),
        (RateLimitError("slow down", status_code=429), State.QUEUED),
        (ServerError("boom", status_code=503), State.QUEUED),
        (AuthenticationError("bad key", status_code=401), State.QUEUED),
        (NotFoundError("no route", status_code=404), State.QUEUED),
        (BadRequestError("prompt is required", status_code=400), State.FAILED),
        (ValidationError("images", "too many"), State.FAILED),
    ],
)
def test_state_after_a_submit_error(error: KetchupError, state: State) -> None:
    """A submit that may have been charged is uncertain; not charged is queued or failed."""
    assert state_after_submit_error(error) is state


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (ValidationError("images", "too many"), State.FAILED),
        (ClientClosedError("closed"), State.QUEUED),
        (APIConnectionError("refused", may_have_been_processed=False), State.QUEUED),
        (RateLimitError("slow down", status_code=429), State.QUEUED),
    ],
)
def test_state_after_an_error_before_sending(error: KetchupError, state: State) -> None:
    """A submit that never went on the wire charged nothing: queued, or failed if invalid."""
    assert state_after_submit_error(error, sent=False) is state


def test_client_closed_under_a_sent_submit_is_uncertain() -> None:
    """The client closed while a submit was on the wire: its task may exist."""
    assert state_after_submit_error(ClientClosedError("closed")) is State.UNCERTAIN


@pytest.mark.parametrize(
    ("error", "fatal"),
    [
        (AuthenticationError("bad key", status_code=401), True),
        (NotFoundError("no route", status_code=404), True),
        (ServerError("boom", status_code=500), False),
        (BadRequestError("bad", status_code=400), False),
        (APIConnectionError("refused", may_have_been_processed=False), False),
    ],
)
def test_fatal_submit_errors(error: KetchupError, fatal: bool) -> None:
    """A bad key or a wrong API URL stops the run: every later submit would fail alike."""
    assert is_fatal_submit_error(error) is fatal


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (TaskFailedError("ta1", "content policy"), State.FAILED),
        (TaskNotFoundError("task not found", status_code=404), State.FAILED),
        (ClientClosedError("closed"), None),
        (AuthenticationError("revoked", status_code=401), None),
        (ServerError("boom", status_code=500), None),
    ],
)
def test_state_after_a_task_error(error: KetchupError, state: State | None) -> None:
    """Only an answer about the task itself ends a submitted input."""
    assert state_after_task_error(error) is state
