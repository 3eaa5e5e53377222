"""The value types of ketchup-async: frozen attrs classes, no serialization code."""

from __future__ import annotations

import base64
import enum
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

import attrs

from . import _validate
from .errors import ValidationError

if TYPE_CHECKING:
    from .errors import KetchupError

__all__ = [
    "CallbackPayload",
    "GenerateRequest",
    "GenerationResult",
    "ImageResult",
    "ManyProgress",
    "Outcome",
    "PollPolicy",
    "RetryPolicy",
    "Task",
    "TaskStatus",
]


class TaskStatus(str, enum.Enum):
    """A task's status as the API reports it."""

    PENDING = "pending"
    SUBMITTED = "submitted"
    IN_PROGRESS = "in_progress"
    SUCCESS = "success"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        """True for ``success`` and ``failed``: the task will not change again."""
        return self in (TaskStatus.SUCCESS, TaskStatus.FAILED)

    def __str__(self) -> str:
        return self.value


def _images_tuple(value: object) -> object:
    # Any iterable of items (a generator too: never stored half-consumed) becomes a tuple; a
    # string, bytes, a mapping or a non-iterable is left for the validator to refuse.
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes, bytearray, Mapping)):
        return tuple(value)
    return value


def _mask_url(url: str | None) -> str:
    # A callback URL carries a secret path token: show where it goes, never the path.
    if url is None:
        return "None"
    scheme, _, rest = url.partition("://")
    return repr(f"{scheme}://{rest.split('/', 1)[0]}/…")


@attrs.frozen
class GenerateRequest:
    """One image generation request, validated on construction (nothing is sent if invalid).

    Args:
        prompt: The text prompt; a non-blank string.
        model: The model, or None for the client's default.
        images: Up to ``max_images`` reference images: absolute http(s) URLs or image data URIs.
        callback_url: An absolute http(s) URL the API POSTs the final status to.
        max_images: The reference-image limit to enforce (the provider documents 4; its prose
            says 5). Not sent to the API.

    Raises:
        ValidationError: naming the field and what is wrong with it.
    """

    prompt: str
    model: str | None = None
    images: tuple[str, ...] = attrs.field(default=(), converter=_images_tuple)
    callback_url: str | None = attrs.field(default=None, repr=_mask_url)
    max_images: int = attrs.field(
        default=_validate.DEFAULT_MAX_IMAGES, kw_only=True, eq=False, repr=False
    )

    def __attrs_post_init__(self) -> None:
        _validate.check_prompt(self.prompt)
        if self.model is not None:
            _validate.check_model(self.model)
        _validate.check_int(self.max_images, field="max_images")
        _validate.check_images(self.images, max_images=self.max_images)
        if self.callback_url is not None:
            _validate.check_http_url(self.callback_url, field="callback_url")


@attrs.frozen
class ImageResult:
    """One generated image: an https URL (on the image CDN) or a ``data:`` URI."""

    image: str

    @property
    def is_data_uri(self) -> bool:
        """True when the image is inline (``data:image/...;base64,...``)."""
        return self.image[:5].lower() == "data:"

    @property
    def url(self) -> str | None:
        """The image URL, or None for a data URI."""
        return None if self.is_data_uri else self.image

    @property
    def media_type(self) -> str | None:
        """The data URI's media type (``image/png``...), or None for a URL."""
        if not self.is_data_uri:
            return None
        header = self.image[5:].split(",", 1)[0]
        return header.split(";", 1)[0].lower() or None

    def decode(self) -> bytes:
        """Return the bytes of a base64 data URI.

        Raises:
            ValidationError: if this is a URL, or the data URI is not valid base64.
        """
        if not self.is_data_uri:
            raise ValidationError("image", "is a URL, not a data URI: download it instead")
        header, sep, payload = self.image.partition(",")
        if not sep or not header.lower().endswith(";base64"):
            raise ValidationError("image", "data URI is not base64-encoded")
        try:
            return base64.b64decode(payload, validate=True)
        except ValueError:
            raise ValidationError("image", "data URI payload is not valid base64") from None


@attrs.frozen
class Task:
    """One query's answer: the task's status and, once final, its result.

    Attributes:
        task_id: The task id.
        status: The status the API reported.
        images: The generated images (empty unless ``success``).
        consumed: Credits consumed, or None when the API did not say.
        reason: ``status_reason.message``, usually why the task failed.
    """

    task_id: str
    status: TaskStatus
    images: tuple[ImageResult, ...] = ()
    consumed: Decimal | None = None
    reason: str | None = None


@attrs.frozen
class GenerationResult:
    """A successful generation: the task id, its images and the credits it consumed."""

    task_id: str
    images: tuple[ImageResult, ...]
    consumed: Decimal | None = None


@attrs.frozen
class CallbackPayload:
    """What the API POSTs to a ``callback_url`` when a task reaches a final status."""

    task_id: str
    status: TaskStatus
    images: tuple[ImageResult, ...] = ()
    consumed: Decimal | None = None
    reason: str | None = None


@attrs.frozen
class Outcome:
    """The outcome of one input of ``generate_many``; it never raises by itself.

    Attributes:
        request: The request this outcome belongs to (correlate by it, not by order); None
            only when the input itself was invalid (then ``error`` is a ``ValidationError``).
        task_id: The task id, or None if the submission itself failed.
        result: The result when the job succeeded.
        error: The error when it did not (``TaskFailedError``, an ``APIError``...).
        index: The input's position in the input stream (0-based).
    """

    request: GenerateRequest | None
    task_id: str | None
    result: GenerationResult | None = None
    error: KetchupError | None = None
    index: int = 0

    @property
    def ok(self) -> bool:
        """True when the job succeeded."""
        return self.result is not None and self.error is None

    def unwrap(self) -> GenerationResult:
        """Return the result, or raise the outcome's error (a ``KetchupError``).

        Typed to narrow: ``outcome.unwrap().images[0]`` passes ``mypy --strict``.
        """
        if self.error is not None:
            raise self.error
        if self.result is None:
            raise ValidationError("outcome", "has neither a result nor an error")
        return self.result


@attrs.frozen(kw_only=True)
class ManyProgress:
    """A snapshot of one ``generate_many`` run, given to its ``on_progress`` hook.

    Attributes:
        read: Inputs read from the input so far.
        submitted: Inputs the API answered with a task id.
        succeeded: Outcomes ready with a result.
        failed: Outcomes ready with an error (bad input, refused submit, failed task).
    """

    read: int = 0
    submitted: int = 0
    succeeded: int = 0
    failed: int = 0

    @property
    def done(self) -> int:
        """Inputs whose outcome is ready (succeeded + failed)."""
        return self.succeeded + self.failed

    @property
    def in_flight(self) -> int:
        """Inputs read whose outcome is not ready yet (at most the run's ``concurrency``)."""
        return self.read - self.done


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not _validate.is_number(value):
        raise ValidationError(attribute.name, f"must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValidationError(attribute.name, f"must be a positive number, got {value!r}")


def _fraction(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    _positive(instance, attribute, value)
    if value >= 1:
        raise ValidationError(attribute.name, f"must be between 0 and 1, got {value!r}")


@attrs.frozen(kw_only=True)
class PollPolicy:
    """The shared poller's schedule and budget. Times in seconds, rates in queries per second.

    Attributes:
        min_interval: Never query one task twice within this (the provider asks for >= 1 s).
        max_interval: The back-off ceiling between two queries of one task.
        rate: The whole client's query budget: None (the default) adapts it to demand, up to
            one query per pending task per ``min_interval``, probing upward while the server
            answers and cutting on 429; a number is a hard ceiling (429s still cut below it).
        expected_duration: Prior for the render time, until this client has seen jobs finish.
        first_poll_quantile: The first query of a job lands at this quantile of the learned
            render-time distribution (lower: less lag, more queries).
        dense_until: Up to this quantile of the learned render time, a running job is queried
            every ``min_interval`` (higher: less lag for slow jobs, more queries).
        backoff: After ``dense_until``, each interval between two queries of a still-running
            job grows by this factor, up to ``max_interval``.
        max_in_flight: Queries in flight at once.
        callback_grace: For jobs with a ``callback_url``: how long after their expected
            completion the safety-net poll waits for the webhook before asking.
        not_found_grace: A 404 within this time after submit means "not visible yet".
        job_deadline: A job still not final this long after it was submitted (or tracked)
            fails with ``JobDeadlineError`` naming its last status (default one hour).
    """

    min_interval: float = attrs.field(default=1.0, validator=_positive)
    max_interval: float = attrs.field(default=15.0, validator=_positive)
    rate: float | None = attrs.field(default=None, validator=attrs.validators.optional(_positive))
    expected_duration: float = attrs.field(default=10.0, validator=_positive)
    first_poll_quantile: float = attrs.field(default=0.3, validator=_fraction)
    dense_until: float = attrs.field(default=0.95, validator=_fraction)
    backoff: float = attrs.field(default=1.5, validator=_positive)
    max_in_flight: int = attrs.field(default=32, validator=_positive)  # type: ignore[arg-type]
    callback_grace: float = attrs.field(default=30.0, validator=_positive)
    not_found_grace: float = attrs.field(default=30.0, validator=_positive)
    job_deadline: float = attrs.field(default=3600.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.max_interval < self.min_interval:
            raise ValidationError("max_interval", "must be >= min_interval")
        if self.backoff < 1:
            raise ValidationError("backoff", f"must be >= 1, got {self.backoff!r}")

    def scaled(self, factor: float) -> PollPolicy:
        """Return this policy with every duration times ``factor`` (and the rate divided by it).

        For running against a ``FakeKetchupServer`` with ``time_scale=factor``.
        ``job_deadline`` is kept: it bounds how long a caller waits in real time, and a busy
        test machine must not turn a slow run into failed jobs.
        """
        return attrs.evolve(
            self,
            min_interval=self.min_interval * factor,
            max_interval=self.max_interval * factor,
            rate=None if self.rate is None else self.rate / factor,
            expected_duration=self.expected_duration * factor,
            callback_grace=self.callback_grace * factor,
            not_found_grace=self.not_found_grace * factor,
        )


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """HTTP retries: full jitter, ``sleep = random(0, min(cap, base * 2**attempt))``.

    Attributes:
        max_retries: Retries after the first attempt (0 disables retrying).
        base: The first back-off ceiling, seconds.
        cap: The largest back-off ceiling, seconds.
        retry_after_cap: The longest ``Retry-After`` honoured, seconds.
    """

    max_retries: int = 3
    base: float = attrs.field(default=0.5, validator=_positive)
    cap: float = attrs.field(default=8.0, validator=_positive)
    retry_after_cap: float = attrs.field(default=60.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        _validate.check_int(self.max_retries, field="max_retries")

    def scaled(self, factor: float) -> RetryPolicy:
        """Return this policy with every duration times ``factor``."""
        return attrs.evolve(
            self,
            base=self.base * factor,
            cap=self.cap * factor,
            retry_after_cap=self.retry_after_cap * factor,
        )


@attrs.frozen(kw_only=True)
class SubmitHooks:
    """Callbacks a durable caller hangs on one submit (each optional, each awaited).

    They let a journal record exactly what may have been charged:

    - ``on_send`` runs before **each** attempt goes on the wire (holding a request slot, after
      any wait for the submit controller); if it raises, that attempt is not sent and the
      exception propagates.
    - ``on_refused`` runs after an attempt was refused without being charged (429, 503, 500,
      or a connection that never carried it), before the submit waits to try again: the input
      is back to "not sent" (a durable run journals ``queued``), so stopping during an outage
      leaves nothing uncertain. It is not called for an answer that may hide a created task.
    - ``on_submitted`` runs as soon as the task id is known, before the job is tracked.

    Attributes:
        on_send: Awaited before each attempt goes on the wire.
        on_refused: Awaited after an attempt was refused, not charged.
        on_submitted: Awaited with the task id once the API answered with one.
    """

    on_send: Callable[[], Awaitable[None]] | None = None
    on_refused: Callable[[], Awaitable[None]] | None = None
    on_submitted: Callable[[str], Awaitable[None]] | None = None
