"""Pure logic of the fake server: tasks, computed statuses, faults and rate buckets (no I/O)."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterable

import attrs

__all__ = [
    "FAILURE_REASONS",
    "FINAL_STATUSES",
    "SUPPORTED_MODELS",
    "FakeTask",
    "Faults",
    "TaskStore",
    "TokenBucket",
    "format_retry_after",
    "new_task_id",
]

SUPPORTED_MODELS: frozenset[str] = frozenset({"google/gempix2", "google/gemini-2.5-flash-image"})
"""Models the fake API accepts; anything else is answered with 400."""

FAILURE_REASONS: tuple[str, ...] = (
    "content policy violation",
    "upstream model error",
    "generation timed out",
    "image could not be rendered",
)
"""The ``status_reason.message`` values a naturally failing task picks from."""

FINAL_STATUSES: frozenset[str] = frozenset({"success", "failed"})
"""Statuses after which a task never changes."""

_PENDING_FRACTION = 0.05
_SUBMITTED_FRACTION = 0.15


def _probability(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be a probability in [0, 1], got {value!r}")


def _non_negative(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0.0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _at_least_one(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be an integer >= 1, got {value!r}")


def _undocumented(
    _instance: object, attribute: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]
) -> None:
    documented = {"pending", "submitted", "in_progress", *FINAL_STATUSES}
    if not value or any(not isinstance(s, str) or not s or s in documented for s in value):
        raise ValueError(f"{attribute.name} must be non-empty undocumented statuses, got {value!r}")


@attrs.frozen
class Faults:
    """Probabilities of faults injected into one API endpoint (drawn from the seeded RNG).

    Every fault is off (0.0) by default. Submit-only faults are ignored on queries and the
    other way round. "After accept" faults create the task (the user is charged) and then
    hide its id from the caller: they are what the server's ``ledger`` is for.

    Attributes:
        error_500: Answer 500 ``{"code":1,"message":"internal server error"}``.
        html_502: Answer 502 with an HTML page, like a reverse proxy would.
        reset: Abort the connection without answering.
        reset_after_accept: Submit only: create the task, then abort the connection.
        latency: Probability of delaying the answer by ``latency_seconds``.
        latency_seconds: REAL seconds added (not scaled by ``time_scale``).
        error_500_after_accept: Submit only: create the task, then answer a JSON 500
            ("charged, then 500": the one assumption of retrying 500s, made visible).
        gateway_after_accept: Submit only: create the task, then answer an HTML 502 or 504
            page, as a proxy does when it lost the origin's answer.
        missing_task_id: Submit only: create the task, then answer ``200 {"code":0}`` whose
            ``data`` has no ``task_id``.
        duplicate_task_id: Submit only: create nothing and answer with the id of the task
            created last (two submits, one task id).
        stuck_status: Submit only: the task reports one of ``undocumented_statuses`` forever
            (until ``complete_now``) instead of progressing.
        empty_success: Submit only: the task ends ``success`` with an empty ``result``.
        html_404: Query only: answer an nginx HTML 404 page even for an existing task.
        undocumented_status: Query only: while the task is not final, answer one of
            ``undocumented_statuses`` instead of its real status (a blip).
        nested_body: Query only: answer 200 with JSON nested ``nested_depth`` levels deep.
        huge_body: Query only: a valid answer padded with an unknown field of
            ``huge_body_bytes`` bytes.
        undocumented_statuses: The statuses the two status faults pick from.
        nested_depth: Nesting depth of a ``nested_body`` answer.
        huge_body_bytes: Size of a ``huge_body`` answer's padding.
    """

    error_500: float = attrs.field(default=0.0, validator=_probability)
    html_502: float = attrs.field(default=0.0, validator=_probability)
    reset: float = attrs.field(default=0.0, validator=_probability)
    reset_after_accept: float = attrs.field(default=0.0, validator=_probability)
    latency: float = attrs.field(default=0.0, validator=_probability)
    latency_seconds: float = attrs.field(default=0.0, validator=_non_negative)
    error_500_after_accept: float = attrs.field(default=0.0, validator=_probability)
    gateway_after_accept: float = attrs.field(default=0.0, validator=_probability)
    missing_task_id: float = attrs.field(default=0.0, validator=_probability)
    duplicate_task_id: float = attrs.field(default=0.0, validator=_probability)
    stuck_status: float = attrs.field(default=0.0, validator=_probability)
    empty_success: float = attrs.field(default=0.0, validator=_probability)
    html_404: float = attrs.field(default=0.0, validator=_probability)
    undocumented_status: float = attrs.field(default=0.0, validator=_probability)
    nested_body: float = attrs.field(default=0.0, validator=_probability)
    huge_body: float = attrs.field(default=0.0, validator=_probability)
    undocumented_statuses: tuple[str, ...] = attrs.field(
        default=("cancelled", "queued_for_gpu"), converter=tuple, validator=_undocumented
    )
    nested_depth: int = attrs.field(default=100_000, validator=_at_least_one)
    huge_body_bytes: int = attrs.field(default=4 * 1024 * 1024, validator=_at_least_one)

    @property
    def active(self) -> bool:
        """Whether any fault can fire (a fast check for the request hot path)."""
        return bool(
            self.error_500
            or self.html_502
            or self.reset
            or self.reset_after_accept
            or (self.latency and self.latency_seconds)
            or self.error_500_after_accept
            or self.gateway_after_accept
            or self.missing_task_id
            or self.duplicate_task_id
            or self.stuck_status
            or self.empty_success
            or self.html_404
            or self.undocumented_status
            or self.nested_body
            or self.huge_body
        )


@attrs.define(eq=False)
class FakeTask:
    """One task held by the fake server; its status is computed from the clock.

    Attributes:
        task_id: The id handed to the client (``ta`` + uuid4 tail).
        prompt: The submitted prompt.
        model: The submitted model.
        images: Reference image URLs from the submit body.
        callback_url: Where the final state is POSTed, if any.
        created_at: ``time.monotonic()`` at creation.
        render_seconds: Drawn render time in API seconds.
        completed_at: Real monotonic time at which the task is (or was) final.
        visible_at: Real monotonic time before which queries answer 404.
        outcome: The final status, ``"success"`` or ``"failed"``.
        reason: ``status_reason.message`` when failed.
        forced: Whether ``complete_now`` forced the final state.
        callback_done: Whether the callback was already handled (sent or dropped).
        stuck_status: An undocumented status reported forever (``stuck_status`` fault).
        empty_result: A success with an empty ``result`` (``empty_success`` fault).
    """

    task_id: str
    prompt: str
    model: str
    images: tuple[str, ...]
    callback_url: str | None
    created_at: float
    render_seconds: float
    completed_at: float
    visible_at: float
    outcome: str
    reason: str | None
    forced: bool = False
    callback_done: bool = False
    stuck_status: str | None = None
    empty_result: bool = False

    def status(self, now: float) -> str:
        """Return the status at monotonic time ``now``.

        Args:
            now: A ``time.monotonic()`` reading.

        Returns:
            ``pending`` / ``submitted`` / ``in_progress`` before completion, then
            ``success`` or ``failed``.
        """
        if self.forced:
            return self.outcome
        if self.stuck_status is not None:
            return self.stuck_status
        completed_at = self.completed_at
        if now >= completed_at:
            return self.outcome
        created_at = self.created_at
        fraction = (now - created_at) / (completed_at - created_at)
        if fraction < _PENDING_FRACTION:
            return "pending"
        if fraction < _SUBMITTED_FRACTION:
            return "submitted"
        return "in_progress"

    def is_final(self, now: float) -> bool:
        """Return whether the task is in a final state at ``now``."""
        return self.forced or (self.stuck_status is None and now >= self.completed_at)


def new_task_id(rng: random.Random) -> str:
    """Draw a task id: a uuid4 string whose first two characters are replaced by ``ta``."""
    return "ta" + str(uuid.UUID(int=rng.getrandbits(128), version=4))[2:]


def format_retry_after(seconds: float) -> str:
    """Format a ``Retry-After`` value: ``"2"`` when integral, else a decimal like ``"0.05"``."""
    value = round(max(0.0, seconds), 6)
    if value.is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


class TokenBucket:
    """A token bucket over scaled (API) time; burst is ``max(1, rate)``.

    Args:
        rate: Tokens per API second.
        time_scale: Real seconds per API second (``0`` means unlimited).
    """

    __slots__ = ("_capacity", "_last", "_per_real_second", "_tokens")

    def __init__(self, rate: float, time_scale: float) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate!r}")
        self._capacity = max(1.0, float(rate))
        self._tokens = self._capacity
        self._per_real_second = math.inf if time_scale <= 0 else rate / time_scale
        self._last: float | None = None

    def try_acquire(self, now: float) -> bool:
        """Take one token at monotonic time ``now``; return False when the bucket is empty."""
        last = self._last
        self._last = now
        if last is not None and now > last:
            refill = (now - last) * self._per_real_second
            self._tokens = min(self._capacity, self._tokens + refill)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class TaskStore:
    """Creates and holds tasks, drawing render times and outcomes from one seeded RNG.

    Args:
        rng: The server's single ``random.Random``.
        render_time: Median render time in API seconds.
        render_sigma: Sigma of the log-normal render time.
        time_scale: Real seconds per API second.
        failure_rate: Probability that a task ends ``failed``.
        visibility_delay: API seconds after creation during which the task is invisible.
    """

    def __init__(
        self,
        *,
        rng: random.Random,
        render_time: float,
        render_sigma: float,
        time_scale: float,
        failure_rate: float,
        visibility_delay: float,
    ) -> None:
        self.rng = rng
        self.render_time = render_time
        self.render_sigma = render_sigma
        self.time_scale = time_scale
        self.failure_rate = failure_rate
        self.visibility_delay = visibility_delay
        self.tasks: dict[str, FakeTask] = {}
        self.last: FakeTask | None = None

    def create(
        self,
        prompt: str,
        model: str,
        *,
        now: float,
        images: Iterable[str] = (),
        callback_url: str | None = None,
        stuck_status: str | None = None,
        empty_result: bool = False,
    ) -> FakeTask:
        """Create, store and return a new task created at monotonic time ``now``."""
        rng = self.rng
        task_id = new_task_id(rng)
        while task_id in self.tasks:  # pragma: no cover - 122 random bits
            task_id = new_task_id(rng)
        render_seconds = self.render_time * math.exp(self.render_sigma * rng.gauss(0.0, 1.0))
        failed = self.failure_rate > 0 and rng.random() < self.failure_rate
        task = FakeTask(
            task_id=task_id,
            prompt=prompt,
            model=model,
            images=tuple(images),
            callback_url=callback_url,
            created_at=now,
            render_seconds=render_seconds,
            completed_at=now + render_seconds * self.time_scale,
            visible_at=now + self.visibility_delay * self.time_scale,
            outcome="failed" if failed else "success",
            reason=rng.choice(FAILURE_REASONS) if failed else None,
            stuck_status=stuck_status,
            empty_result=empty_result,
        )
        self.tasks[task_id] = task
        self.last = task
        return task

    def complete(self, task_id: str, status: str, reason: str | None, *, now: float) -> FakeTask:
        """Force ``task_id`` into a final state at ``now``.

        Raises:
            KeyError: If the task does not exist.
            ValueError: If ``status`` is not ``success`` or ``failed``.
        """
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be 'success' or 'failed', got {status!r}")
        task = self.tasks[task_id]
        task.outcome = status
        if status == "failed":
            task.reason = reason if reason is not None else FAILURE_REASONS[0]
        else:
            task.reason = None
        task.forced = True
        task.completed_at = min(task.completed_at, now)
        return task
