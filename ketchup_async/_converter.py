"""The one cattrs converter: API payloads in and out of the models.

Responses are parsed tolerantly (unknown keys ignored, optional keys may be missing or null),
but a missing or unknown ``status`` is an error, never a guess. Every structural problem is a
``ValidationError`` naming the field; callers decide what it means (a malformed API response is
a ``ServerError``; a malformed webhook body is a 400).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import cattrs

from . import _validate
from ._models import CallbackPayload, GenerateRequest, ImageResult, Task, TaskStatus
from .errors import ValidationError

__all__ = [
    "converter",
    "request_from_dict",
    "request_to_dict",
    "structure_callback",
    "structure_submit",
    "structure_task",
    "undocumented_status",
    "unstructure_request",
]

T = TypeVar("T", Task, CallbackPayload)

converter = cattrs.Converter()

_STATUSES = frozenset(status.value for status in TaskStatus)


#: Bounds of a sane ``consumed`` (credits of one task): anything else is a malformed answer.
MAX_CONSUMED = Decimal(1_000_000_000)
_MAX_CONSUMED_PLACES = 18
_MAX_CONSUMED_CHARS = 40


def _decimal(value: object) -> Decimal:
    # Bounded before any arithmetic: "1e1000000" parses, then overflows every later sum.
    if not (isinstance(value, str) or _validate.is_number(value)):
        raise ValidationError("consumed", f"must be a decimal string, got {type(value).__name__}")
    if isinstance(value, int) and not 0 <= value <= MAX_CONSUMED:
        raise ValidationError("consumed", f"must be between 0 and {MAX_CONSUMED:,}")
    text = str(value).strip()
    if len(text) > _MAX_CONSUMED_CHARS:
        raise ValidationError("consumed", f"has more than {_MAX_CONSUMED_CHARS} characters")
    try:
        result = Decimal(text)
    except InvalidOperation:
        raise ValidationError("consumed", f"is not a decimal number: {text!r}") from None
    if not result.is_finite():
        raise ValidationError("consumed", f"is not a finite number: {text!r}")
    if not 0 <= result <= MAX_CONSUMED:
        raise ValidationError("consumed", f"must be between 0 and {MAX_CONSUMED:,}, got {text!r}")
    exponent = result.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -_MAX_CONSUMED_PLACES:
        raise ValidationError(
            "consumed", f"has more than {_MAX_CONSUMED_PLACES} decimal places: {text!r}"
        )
    return result


def _status(value: object) -> TaskStatus:
    if not isinstance(value, str):
        raise ValidationError("status", f"must be a string, got {type(value).__name__}")
    try:
        return TaskStatus(value)
    except ValueError:
        raise ValidationError("status", f"unknown task status {value!r}") from None


def _image(value: object) -> ImageResult:
    if not isinstance(value, Mapping):
        raise ValidationError("result", f"items must be objects, got {type(value).__name__}")
    image = value.get("image")
    if not isinstance(image, str) or not image:
        raise ValidationError("result", "item has no 'image' string")
    return ImageResult(image)


def _images(value: object) -> tuple[ImageResult, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValidationError("result", f"must be a list or null, got {type(value).__name__}")
    return tuple(_image(item) for item in value)


def _task_like(data: object, cls: type[T]) -> T:
    if not isinstance(data, Mapping):
        raise ValidationError("data", f"must be an object, got {type(data).__name__}")
    task_id = data.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        raise ValidationError("task_id", "is missing or not a string")
    if "status" not in data:
        raise ValidationError("status", "is missing")
    status = _status(data["status"])
    consumed_raw = data.get("consumed")
    consumed = None if consumed_raw is None else _decimal(consumed_raw)
    reason_obj = data.get("status_reason")
    reason: str | None = None
    if isinstance(reason_obj, Mapping):
        message = reason_obj.get("message")
        reason = message if isinstance(message, str) else None
    elif isinstance(reason_obj, str):
        reason = reason_obj
    images = _images(data.get("result")) if status is TaskStatus.SUCCESS else ()
    return cls(task_id=task_id, status=status, images=images, consumed=consumed, reason=reason)


converter.register_structure_hook(Task, _task_like)
converter.register_structure_hook(CallbackPayload, _task_like)


def _unstructure_request(request: GenerateRequest) -> dict[str, Any]:
    payload: dict[str, Any] = {"model": request.model, "prompt": request.prompt}
    if request.images:
        payload["images"] = list(request.images)
    if request.callback_url is not None:
        payload["callback_url"] = request.callback_url
    return payload


converter.register_unstructure_hook(GenerateRequest, _unstructure_request)


def structure_task(data: object) -> Task:
    """Build a ``Task`` from a query response's ``data`` object."""
    return converter.structure(data, Task)


def structure_callback(data: object) -> CallbackPayload:
    """Build a ``CallbackPayload`` from a webhook body's decoded JSON."""
    payload = converter.structure(data, CallbackPayload)
    if not payload.status.is_final:
        raise ValidationError(
            "status", f"a callback must carry a final status, got {payload.status}"
        )
    return payload


def structure_submit(data: object) -> str:
    """Return the task id from a submit response's ``data`` object."""
    if not isinstance(data, Mapping):
        raise ValidationError("data", f"must be an object, got {type(data).__name__}")
    task_id = data.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        raise ValidationError("task_id", "is missing or not a string")
    return _validate.check_task_id(task_id)  # what a submit accepts, track() accepts too


def undocumented_status(data: object) -> str | None:
    """The status string of a task-like object when it is not a documented status, else None.

    Lets callers keep an unknown status visible as sent (never guessed into a known one).
    """
    if not isinstance(data, Mapping):
        return None
    status = data.get("status")
    if not isinstance(status, str) or status in _STATUSES:
        return None
    return status


def request_to_dict(request: GenerateRequest, *, default_model: str) -> dict[str, Any]:
    """Return the JSON body of ``POST /api/image/gen`` for ``request`` (public).

    The inverse of ``request_from_dict``: ``model`` is ``default_model`` when the request
    names none; ``images`` and ``callback_url`` appear only when set.

    Args:
        request: The request.
        default_model: The model to send when the request names none (the client's).
    """
    payload: dict[str, Any] = converter.unstructure(request)
    if payload["model"] is None:
        payload["model"] = default_model
    return payload


#: The name the client uses for ``request_to_dict``.
unstructure_request = request_to_dict


def request_from_dict(data: object, *, max_images: int | None = None) -> GenerateRequest:
    """Build (and validate) a ``GenerateRequest`` from a JSON object such as a JSONL line (public).

    Args:
        data: An object with ``prompt`` and optionally ``model``, ``images``, ``callback_url``
            (other keys, such as a JSONL ``id``, are ignored).
        max_images: The reference-image limit to enforce (default: the provider's 4).

    Raises:
        ValidationError: naming the missing or bad field.
    """
    if not isinstance(data, Mapping):
        raise ValidationError("request", f"must be an object, got {type(data).__name__}")
    if "prompt" not in data:
        raise ValidationError("prompt", "is required")
    kwargs: dict[str, Any] = {
        "prompt": data["prompt"],
        "model": data.get("model"),
        "images": () if data.get("images") is None else data["images"],
        "callback_url": data.get("callback_url"),
    }
    if max_images is not None:
        kwargs["max_images"] = max_images
    return GenerateRequest(**kwargs)
