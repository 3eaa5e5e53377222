"""The cattrs converter: tolerant responses, strict statuses, request payloads."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ketchup_async import (
    CallbackPayload,
    GenerateRequest,
    KetchupError,
    Task,
    TaskStatus,
    ValidationError,
)
from ketchup_async._converter import (
    request_from_dict,
    structure_callback,
    structure_submit,
    structure_task,
    unstructure_request,
)

SUCCESS = {
    "task_id": "ta5c9705-b8ae-4cb9-aa6f-97c4fee88c8d",
    "status": "success",
    "result": [{"image": "https://cdn.test/1.png"}],
    "consumed": "0.500000",
    "status_reason": {"message": None},
}


def test_success_task_is_parsed() -> None:
    """A documented success answer becomes a Task with images and a Decimal consumed."""
    task = structure_task(SUCCESS)
    assert task.status is TaskStatus.SUCCESS
    assert task.images[0].url == "https://cdn.test/1.png"
    assert task.consumed == Decimal("0.5")
    assert task.reason is None


def test_unknown_keys_are_ignored() -> None:
    """Extra keys anywhere in the answer are ignored."""
    data = {**SUCCESS, "progress": 100, "result": [{"image": "https://cdn.test/1.png", "w": 1}]}
    assert structure_task(data).images[0].image == "https://cdn.test/1.png"


def test_optional_keys_may_be_missing() -> None:
    """consumed, result and status_reason may be absent."""
    task = structure_task({"task_id": "ta1", "status": "in_progress"})
    assert task == Task("ta1", TaskStatus.IN_PROGRESS)


def test_failed_task_carries_reason() -> None:
    """A failed task keeps status_reason.message and has no images."""
    task = structure_task(
        {
            "task_id": "ta1",
            "status": "failed",
            "result": None,
            "status_reason": {"message": "content policy violation"},
        }
    )
    assert task.reason == "content policy violation"
    assert task.images == ()


def test_missing_status_is_an_error() -> None:
    """A missing status is an error, never a guess."""
    with pytest.raises(ValidationError, match="status: is missing"):
        structure_task({"task_id": "ta1"})


def test_unknown_status_is_an_error() -> None:
    """An unknown status is an error naming the value."""
    with pytest.raises(ValidationError, match="unknown task status 'cancelled'"):
        structure_task({"task_id": "ta1", "status": "cancelled"})


def test_bad_consumed_is_an_error() -> None:
    """A consumed value that is not a decimal names the field."""
    with pytest.raises(ValidationError, match="consumed"):
        structure_task({"task_id": "ta1", "status": "success", "consumed": "lots"})


def repr_id(value: object) -> str:
    """A short test id (a 5,000-digit int has no str() under Python's digit limit)."""
    return f"int-{value.bit_length()}-bits" if isinstance(value, int) else repr(value)[:20]


@pytest.mark.parametrize(
    "consumed",
    [
        "1e1000000",
        "NaN",
        "sNaN",
        "Infinity",
        "-1",
        "-0.000001",
        "1e10",
        "1000000000.5",
        "1e-999999",
        "0.0000000000000000000001",
        "1" * 100,
        10**5000,
        -3,
        float("inf"),
        float("nan"),
        True,
    ],
    ids=repr_id,
)
def test_consumed_outside_a_sane_range_is_an_error(consumed: object) -> None:
    """Not finite, negative, above 1e9, too precise or too long: a ValidationError, no escape."""
    with pytest.raises(ValidationError, match="consumed"):
        structure_task({"task_id": "ta1", "status": "success", "consumed": consumed})


@pytest.mark.parametrize(
    ("consumed", "expected"),
    [
        ("0", "0"),
        ("0.500000", "0.5"),
        (3, "3"),
        (2.5, "2.5"),
        ("1000000000", "1e9"),
        ("1E-6", "0.000001"),
    ],
)
def test_consumed_in_range_is_kept(consumed: object, expected: str) -> None:
    """Ordinary credit amounts (string, int or float) become the same Decimal."""
    task = structure_task({"task_id": "ta1", "status": "success", "consumed": consumed})
    assert task.consumed == Decimal(expected)


def test_success_with_malformed_result_is_an_error() -> None:
    """A success whose result items lack an image string is refused."""
    with pytest.raises(ValidationError, match="result"):
        structure_task({"task_id": "ta1", "status": "success", "result": [{"url": "x"}]})


def test_submit_answer_gives_task_id() -> None:
    """The submit envelope's data yields the task id; a missing one is an error."""
    assert structure_submit({"task_id": "ta9"}) == "ta9"
    with pytest.raises(ValidationError, match="task_id"):
        structure_submit({})


def test_callback_requires_final_status() -> None:
    """A callback with a non-final status is refused."""
    assert isinstance(structure_callback(SUCCESS), CallbackPayload)
    with pytest.raises(ValidationError, match="final status"):
        structure_callback({**SUCCESS, "status": "in_progress"})


def test_request_payload_has_only_api_fields() -> None:
    """The submit body carries model, prompt and optional fields only when set."""
    assert unstructure_request(GenerateRequest("p"), default_model="m/x") == {
        "model": "m/x",
        "prompt": "p",
    }
    body = unstructure_request(
        GenerateRequest(
            "p", model="a/b", images=["https://x.test/i.png"], callback_url="https://h.test/cb"
        ),
        default_model="m/x",
    )
    assert body == {
        "model": "a/b",
        "prompt": "p",
        "images": ["https://x.test/i.png"],
        "callback_url": "https://h.test/cb",
    }


def test_request_from_dict_validates() -> None:
    """A JSONL-style object becomes a validated request; a missing prompt is named."""
    assert request_from_dict({"prompt": "p", "id": 3}).prompt == "p"
    with pytest.raises(ValidationError, match="prompt: is required"):
        request_from_dict({"id": 3})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "task_id",
                    "status",
                    "result",
                    "consumed",
                    "status_reason",
                    "image",
                    "message",
                    "x",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)


@given(json_values)
def test_arbitrary_json_gives_a_model_or_a_ketchup_error(data: Any) -> None:
    """On any JSON value the converter returns a model or raises a KetchupError, nothing else."""
    for parse in (structure_task, structure_callback, structure_submit, request_from_dict):
        with contextlib.suppress(KetchupError):
            parse(data)
