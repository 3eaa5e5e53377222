"""Property tests: validators, callback parsing, file names and journal states on any input."""

from __future__ import annotations

import itertools
import json
import random
import sqlite3
import string
from collections.abc import Callable
from pathlib import PurePosixPath, PureWindowsPath
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ketchup_async import CallbackPayload, RetryPolicy, TaskStatus, ValidationError, _validate
from ketchup_async._retry import retry_delay
from ketchup_async.bulk import _sql as db
from ketchup_async.bulk._files import safe_name
from ketchup_async.bulk._states import (
    FINAL_STATES,
    InvalidTransitionError,
    State,
    can_transition,
    check_transition,
)
from ketchup_async.webhooks import parse_callback

T = TypeVar("T")

ANYTHING = st.one_of(
    st.text(),
    st.binary(),
    st.none(),
    st.integers(),
    st.floats(),
    st.lists(st.text(max_size=20), max_size=6),
)
URLISH = st.one_of(
    st.text(),
    st.builds(
        lambda scheme, rest: f"{scheme}:{rest}",
        st.sampled_from(["http", "https", "HTTP", "file", "javascript", "data", "ftp", ""]),
        st.text(max_size=60),
    ),
    st.builds(
        lambda kind, payload: f"data:image/{kind};base64,{payload}",
        st.sampled_from(["png", "jpeg", "svg+xml", ""]),
        st.text(alphabet=string.ascii_letters + string.digits + "+/=!", max_size=40),
    ),
)


def _attempt(check: Callable[..., T], value: object, **kwargs: object) -> T | ValidationError:
    """The check's value, or the ValidationError it raised (anything else propagates)."""
    try:
        return check(value, **kwargs)
    except ValidationError as exc:
        return exc


def _value_or_validation_error(check: Callable[..., object], value: object) -> None:
    result = _attempt(check, value)
    if isinstance(result, ValidationError):
        assert result.field
        assert result.problem
    else:
        assert result == value


@given(ANYTHING)
def test_check_prompt_returns_the_value_or_a_validation_error(value: object) -> None:
    """Any object: the prompt back unchanged, or a ValidationError (never anything else)."""
    _value_or_validation_error(_validate.check_prompt, value)


@given(ANYTHING)
def test_check_model_returns_the_value_or_a_validation_error(value: object) -> None:
    """Any object: the model back unchanged, or a ValidationError."""
    _value_or_validation_error(_validate.check_model, value)


@given(st.one_of(ANYTHING, URLISH))
def test_check_task_id_accepts_only_printable_bounded_ids(value: object) -> None:
    """An accepted task id is non-blank printable text of bounded length (queries encode it)."""
    task_id = _attempt(_validate.check_task_id, value)
    if isinstance(task_id, ValidationError):
        assert task_id.field == "task_id"
    else:
        assert task_id == value
        assert 0 < len(task_id) <= _validate.MAX_TASK_ID_CHARS
        assert task_id.isprintable()
        assert task_id.strip()


@given(st.one_of(ANYTHING, URLISH))
def test_check_image_ref_accepts_only_http_or_image_data(value: object) -> None:
    """An accepted reference image is an http(s) URL with a host or an image data URI."""
    ref = _attempt(_validate.check_image_ref, value, field="images[0]")
    if isinstance(ref, ValidationError):
        assert ref.field == "images[0]"
    else:
        assert ref.lower().startswith(("http://", "https://", "data:image/"))


@given(st.one_of(ANYTHING, st.lists(URLISH, max_size=6)), st.integers(0, 5))
def test_check_images_returns_a_bounded_tuple_or_an_error(value: object, limit: int) -> None:
    """Any object: a tuple of at most ``limit`` checked refs, or a ValidationError."""
    images = _attempt(_validate.check_images, value, max_images=limit)
    if isinstance(images, ValidationError):
        assert images.field.startswith("images")
    else:
        assert isinstance(images, tuple)
        assert len(images) <= limit


@given(ANYTHING)
def test_check_positive_returns_a_finite_positive_number_or_an_error(value: object) -> None:
    """Any object: a finite number above zero, or a ValidationError naming the field."""
    number = _attempt(_validate.check_positive, value, field="timeout")
    if isinstance(number, ValidationError):
        assert number.field == "timeout"
    else:
        assert 0 < number < float("inf")


@settings(max_examples=300)
@given(st.binary(max_size=2048))
def test_parse_callback_on_arbitrary_bytes(body: bytes) -> None:
    """Any bytes: a CallbackPayload or a ValidationError, nothing else."""
    payload = _attempt(parse_callback, body)
    if isinstance(payload, ValidationError):
        assert payload.field
    else:
        assert isinstance(payload, CallbackPayload)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=12,
)
CALLBACK_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "task_id": st.one_of(st.text(max_size=20), st.just("ta1"), JSON),
        "status": st.one_of(st.sampled_from([s.value for s in TaskStatus]), JSON),
        "result": st.one_of(
            st.none(),
            st.lists(st.fixed_dictionaries({"image": URLISH}), max_size=3),
            JSON,
        ),
        "consumed": st.one_of(st.just("0.500000"), st.text(max_size=10), JSON),
        "status_reason": st.one_of(st.fixed_dictionaries({"message": JSON}), JSON),
    },
)


@settings(max_examples=300)
@given(CALLBACK_LIKE)
def test_parse_callback_on_callback_shaped_json(data: dict[str, object]) -> None:
    """Near-valid callbacks: a final-status payload with checked images, or a ValidationError."""
    payload = _attempt(parse_callback, json.dumps(data).encode())
    if isinstance(payload, ValidationError):
        assert payload.field
    else:
        assert payload.status.is_final
        assert payload.status is not TaskStatus.SUCCESS or payload.images
        for image in payload.images:
            assert image.image.lower().startswith(("http://", "https://", "data:image/"))


@given(st.text(), st.integers(1, 200))
def test_safe_name_never_escapes_its_directory(text: str, max_len: int) -> None:
    """A name made from server data is one plain, visible path component, whatever the text."""
    name = safe_name(text, max_len=max_len)
    assert name
    assert len(name) <= max(max_len, len("image"))
    assert set(name) <= set(string.ascii_letters + string.digits + "._-")
    assert not name.startswith(".")
    assert name not in (".", "..")
    assert PurePosixPath(name).name == name
    assert PureWindowsPath(name).name == name


# -- journal states ---------------------------------------------------------------------


@given(st.lists(st.sampled_from(list(State)), max_size=40))
def test_state_walks_obey_the_no_double_payment_rules(targets: list[State]) -> None:
    """Any walk through the table: finals exit only by uncertain -> queued; no resubmit."""
    state = State.QUEUED
    submitted = False
    for target in targets:
        if not can_transition(state, target):
            with pytest.raises(InvalidTransitionError):
                check_transition(state, target)
            continue
        if state in FINAL_STATES:
            assert (state, target) == (State.UNCERTAIN, State.QUEUED)
        assert check_transition(state, target) is target
        if target is State.SUBMITTED:
            submitted = True
        if submitted:
            assert target is not State.SUBMITTING, "a submitted input was submitted again"
        state = target


class JournalMachine(RuleBasedStateMachine):
    """The SQL journal against the pure table: same answers, and nothing is ever paid twice."""

    def __init__(self) -> None:
        super().__init__()
        self.conn = sqlite3.connect(":memory:", isolation_level=None)
        db.setup(self.conn)
        self.model: dict[int, State] = {}
        self.history: dict[int, list[State]] = {}
        self.now = 0.0

    def teardown(self) -> None:
        self.conn.close()

    def _tick(self) -> float:
        self.now += 1.0
        return self.now

    @rule()
    def add_input(self) -> None:
        """Journal one more input as queued."""
        key = f"k{len(self.model)}"
        added = db.add_inputs(self.conn, [(key, json.dumps({"prompt": key}))], self._tick())
        assert added == 1
        record = db.row_by_key(self.conn, key)
        assert record is not None
        row = db.row_from_db(record)
        self.model[row.seq] = State.QUEUED
        self.history[row.seq] = [State.QUEUED]

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), goal=st.sampled_from(list(State)))
    def move(self, data: st.DataObject, goal: State) -> None:
        """Ask the journal for any transition; it obeys the table exactly."""
        seq = data.draw(st.sampled_from(sorted(self.model)))
        values = {"task_id": f"ta{seq}x{self.now:.0f}"} if goal is State.SUBMITTED else {}
        current = self.model[seq]
        if can_transition(current, goal):
            db.transition(self.conn, seq, goal, values, self._tick())
            self.model[seq] = goal
            self.history[seq].append(goal)
        else:
            with pytest.raises(InvalidTransitionError):
                db.transition(self.conn, seq, goal, values, self._tick())

    @rule(resubmit=st.booleans())
    def recover(self, resubmit: bool) -> None:
        """A resume: submitting becomes uncertain; uncertain is requeued only when asked."""
        db.recover(self.conn, resubmit, self._tick())
        for seq, state in self.model.items():
            if state is State.SUBMITTING:
                state = State.UNCERTAIN
                self.history[seq].append(state)
            if resubmit and state is State.UNCERTAIN:
                state = State.QUEUED
                self.history[seq].append(state)
            self.model[seq] = state

    @invariant()
    def journal_matches_the_model(self) -> None:
        """Every row's stored state is the model's."""
        for seq, state in self.model.items():
            record = db.row_by_key(self.conn, f"k{seq - 1}")
            assert record is not None
            assert db.row_from_db(record).state is state

    @invariant()
    def nothing_is_paid_twice(self) -> None:
        """No row goes from submitted back to submitting; finals exit only uncertain -> queued."""
        for states in self.history.values():
            if State.SUBMITTED in states:
                after = states[states.index(State.SUBMITTED) :]
                assert State.SUBMITTING not in after
            for before, after_state in itertools.pairwise(states):
                if before in FINAL_STATES:
                    assert (before, after_state) == (State.UNCERTAIN, State.QUEUED)


TestJournalStates = JournalMachine.TestCase
TestJournalStates.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


@given(
    attempt=st.integers(0, 70),
    retry_after=st.one_of(st.none(), st.floats(0, 1e6)),
    base=st.floats(0.001, 10),
    cap=st.floats(0.001, 100),
    seed=st.integers(0, 2**32),
)
def test_retry_after_is_a_floor_under_the_backoff(
    attempt: int, retry_after: float | None, base: float, cap: float, seed: int
) -> None:
    """A retry waits at least Retry-After (capped) and at most the larger of it and the back-off."""
    policy = RetryPolicy(base=base, cap=cap, retry_after_cap=60.0)
    delay = retry_delay(attempt, policy, random.Random(seed), retry_after)
    ceiling = min(cap, base * 2.0 ** min(attempt, 62))
    floor = 0.0 if retry_after is None else min(retry_after, 60.0)
    assert floor <= delay <= max(floor, ceiling)
