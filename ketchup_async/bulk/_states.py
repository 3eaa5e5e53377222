"""The life of one input of a durable bulk run: states and allowed transitions (pure, no I/O).

```
queued ──> reused                                  (identical request found in a reused run:
 │                                                  its files copied, nothing submitted)
queued ──> submitting ──> submitted ──> succeeded
 ^  ^         │ │ │             └─────> failed     (the task failed)
 │  │         │ │ └───────────────────> failed     (refused for good: a bad request)
 │  └─────────┘ └─────────────────────> uncertain  (may have been charged: never resubmitted
 │  (not sent, or refused for now:                  unless explicitly asked)
 │   nothing charged, retried later)                    │
 └──────────────────────────────────────────────────────┘ (only with resubmit_uncertain)
```

``submitting`` is journaled before the submit is sent and ``submitted`` (with the task id) the
moment the id is known, so a run killed at any point leaves every input in a state that says
exactly what may have been paid for. Final states have no way out except the explicit
resubmit-uncertain path ``uncertain -> queued``; ``submitted`` never goes back to ``submitting``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from ..errors import (
    APIConnectionError,
    AuthenticationError,
    ClientClosedError,
    InvalidTransitionError,
    KetchupError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TaskFailedError,
    TaskNotFoundError,
    ValidationError,
)

__all__ = [
    "FINAL_STATES",
    "TRANSITIONS",
    "InvalidTransitionError",
    "State",
    "can_transition",
    "check_transition",
    "is_fatal_submit_error",
    "sources_of",
    "state_after_submit_error",
    "state_after_task_error",
]


class State(str, enum.Enum):
    """Where one input of a bulk run stands."""

    QUEUED = "queued"  # known, never sent
    SUBMITTING = "submitting"  # the submit may be on the wire
    SUBMITTED = "submitted"  # the API gave a task id (committed before anything else)
    SUCCEEDED = "succeeded"  # the task succeeded (its files may still be downloading)
    FAILED = "failed"  # the task failed, or the submit was refused (nothing charged)
    UNCERTAIN = "uncertain"  # the submit may or may not have been charged
    REUSED = "reused"  # files taken from an identical request of another run: never submitted

    @property
    def is_final(self) -> bool:
        """True for ``succeeded``, ``failed``, ``uncertain`` and ``reused``."""
        return self in FINAL_STATES

    def __str__(self) -> str:
        return self.value


FINAL_STATES: frozenset[State] = frozenset(
    {State.SUCCEEDED, State.FAILED, State.UNCERTAIN, State.REUSED}
)

#: Every allowed transition; anything else is a bug (and refused by the journal).
TRANSITIONS: Mapping[State, frozenset[State]] = {
    State.QUEUED: frozenset({State.SUBMITTING, State.REUSED}),
    State.SUBMITTING: frozenset({State.SUBMITTED, State.FAILED, State.UNCERTAIN, State.QUEUED}),
    State.SUBMITTED: frozenset({State.SUCCEEDED, State.FAILED}),
    State.SUCCEEDED: frozenset(),
    State.FAILED: frozenset(),
    State.UNCERTAIN: frozenset({State.QUEUED}),  # only with resubmit_uncertain
    State.REUSED: frozenset(),
}


def can_transition(current: State, target: State) -> bool:
    """True when ``current -> target`` is in the transition table."""
    return target in TRANSITIONS[current]


def check_transition(current: State, target: State) -> State:
    """Return ``target`` if ``current -> target`` is allowed.

    Raises:
        InvalidTransitionError: The transition is not in the table.
    """
    if not can_transition(current, target):
        raise InvalidTransitionError(current.value, target.value)
    return target


def sources_of(target: State) -> frozenset[State]:
    """The states from which ``target`` may be reached."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


def state_after_submit_error(error: KetchupError, *, sent: bool = True) -> State:
    """The state of an input whose submit raised ``error``.

    ``sent`` is False when the submit failed before it went on the wire (the input is still
    ``queued``, not ``submitting``): nothing can have been charged, so it stays ``queued``
    unless the request itself is invalid (``failed``). Otherwise, from ``submitting``:

    - A submit that may have reached the API (a timeout or a disconnect after the body was
      sent) is ``uncertain``: it may have been charged, so it is never resubmitted silently.
    - A submit that was not sent, or refused for reasons that are not the input's fault (429
      or 5xx after retries, a bad key, a wrong URL) charged nothing: ``queued`` again, for a
      later run.
    - A submit refused because of the input itself (a local validation error, a 400) is
      ``failed``.
    - The client closed under a submit on the wire: ``uncertain`` (its task may exist).
    """
    if not sent:
        return State.FAILED if isinstance(error, ValidationError) else State.QUEUED
    if isinstance(error, ClientClosedError):
        return State.UNCERTAIN
    if isinstance(error, APIConnectionError):
        return State.UNCERTAIN if error.may_have_been_processed else State.QUEUED
    if isinstance(error, (RateLimitError, ServerError, AuthenticationError)):
        return State.QUEUED
    if isinstance(error, NotFoundError) and not isinstance(error, TaskNotFoundError):
        return State.QUEUED
    return State.FAILED


def is_fatal_submit_error(error: KetchupError) -> bool:
    """True when every later submit would fail the same way (bad key, wrong API URL)."""
    if isinstance(error, AuthenticationError):
        return True
    return isinstance(error, NotFoundError) and not isinstance(error, TaskNotFoundError)


def state_after_task_error(error: KetchupError) -> State | None:
    """The state of a ``submitted`` input whose job ended with ``error``, or None to keep it.

    Only an answer about the task itself is final: the task failed, or the API does not know
    it. Anything else (the client closed, the key was revoked mid-run...) leaves the input
    ``submitted``, so that a resume re-attaches it instead of losing a task that was paid for.
    """
    if isinstance(error, (TaskFailedError, TaskNotFoundError)):
        return State.FAILED
    return None
