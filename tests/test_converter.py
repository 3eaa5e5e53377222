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
    ImageResult,
    KetchupError,
    Task,
    TaskStatus,
    ValidationError,
)
from ketchup_async._converter import (
    request_from_dict,
    request_to_dict,
    structure_callback,
    structure_submit,
    structure_task,
    undocumented_status,
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


def _refusal(call: Any, *args: object, **kwargs: object) -> tuple[str, str]:
    """The (field, problem) of the ValidationError ``call(*args, **kwargs)`` raises."""
    with pytest.raises(ValidationError) as info:
        call(*args, **kwargs)
    return info.value.field, info.value.problem


def _consumed(value: object) -> tuple[str, str]:
    return _refusal(structure_task, {"task_id": "ta1", "status": "success", "consumed": value})


@pytest.mark.parametrize(
    ("consumed", "problem"),
    [
        ([1], "must be a decimal string, got list"),
        (True, "must be a decimal string, got bool"),
        (-1, "must be between 0 and 1,000,000,000"),
        (1_000_000_001, "must be between 0 and 1,000,000,000"),
        ("1" * 41, "has more than 40 characters"),
        ("lots", "is not a decimal number: 'lots'"),
        ("NaN", "is not a finite number: 'NaN'"),
        ("-Infinity", "is not a finite number: '-Infinity'"),
        ("-1", "must be between 0 and 1,000,000,000, got '-1'"),
        ("1000000000.000001", "must be between 0 and 1,000,000,000, got '1000000000.000001'"),
        (-0.5, "must be between 0 and 1,000,000,000, got '-0.5'"),
        ("0.0000000000000000001", "has more than 18 decimal places: '0.0000000000000000001'"),
    ],
)
def test_each_bad_consumed_names_its_problem(consumed: object, problem: str) -> None:
    """Every refusal of consumed names the field and says exactly what is wrong."""
    assert _consumed(consumed) == ("consumed", problem)


@pytest.mark.parametrize(
    ("consumed", "expected"),
    [
        (0, "0"),
        (1_000_000_000, "1000000000"),
        (" 2 ", "2"),
        ("0" * 39 + "1", "1"),
        ("0.000000000000000001", "1e-18"),
        ("1E+2", "100"),
        (0.0, "0"),
        (None, None),
    ],
)
def test_consumed_at_the_edges_is_kept(consumed: object, expected: str | None) -> None:
    """Both ends of the range, 40 characters, 18 places and spaces around are accepted."""
    task = structure_task({"task_id": "ta1", "status": "success", "consumed": consumed})
    assert task.consumed == (None if expected is None else Decimal(expected))


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        ([], "data", "must be an object, got list"),
        ("x", "data", "must be an object, got str"),
        ({"status": "success"}, "task_id", "is missing or not a string"),
        ({"task_id": 7, "status": "success"}, "task_id", "is missing or not a string"),
        ({"task_id": "", "status": "success"}, "task_id", "is missing or not a string"),
        ({"task_id": "ta1"}, "status", "is missing"),
        ({"task_id": "ta1", "status": None}, "status", "must be a string, got NoneType"),
        ({"task_id": "ta1", "status": 3}, "status", "must be a string, got int"),
        ({"task_id": "ta1", "status": "Success"}, "status", "unknown task status 'Success'"),
        (
            {"task_id": "ta1", "status": "success", "result": "x"},
            "result",
            "must be a list or null, got str",
        ),
        (
            {"task_id": "ta1", "status": "success", "result": {"image": "x"}},
            "result",
            "must be a list or null, got dict",
        ),
        (
            {"task_id": "ta1", "status": "success", "result": ["https://cdn.test/1.png"]},
            "result",
            "items must be objects, got str",
        ),
        (
            {"task_id": "ta1", "status": "success", "result": [{"image": ""}]},
            "result",
            "item has no 'image' string",
        ),
        (
            {"task_id": "ta1", "status": "success", "result": [{"image": 5}]},
            "result",
            "item has no 'image' string",
        ),
    ],
)
def test_each_malformed_task_names_its_field(data: object, field: str, problem: str) -> None:
    """Each malformed answer is refused naming the field at fault and the problem."""
    assert _refusal(structure_task, data) == (field, problem)
    assert _refusal(structure_callback, data) == (field, problem)


def test_success_task_is_parsed_exactly() -> None:
    """Every field of a success answer lands in the Task."""
    data = {
        "task_id": "ta1",
        "status": "success",
        "result": [{"image": "https://cdn.test/1.png"}, {"image": "data:image/png;base64,aGk="}],
        "consumed": "0.25",
        "status_reason": {"message": "done"},
    }
    assert structure_task(data) == Task(
        "ta1",
        TaskStatus.SUCCESS,
        (ImageResult("https://cdn.test/1.png"), ImageResult("data:image/png;base64,aGk=")),
        Decimal("0.25"),
        "done",
    )


@pytest.mark.parametrize("result", [None, []])
def test_success_with_a_null_or_empty_result_has_no_images(result: object) -> None:
    """A null or empty result is no images (the poller decides what that means)."""
    task = structure_task({"task_id": "ta1", "status": "success", "result": result})
    assert task.images == ()


@pytest.mark.parametrize("status", ["failed", "in_progress", "pending"])
def test_a_result_is_read_only_on_success(status: str) -> None:
    """A task that did not succeed has no images, even if it carries a (malformed) result."""
    for result in ([{"image": "https://cdn.test/1.png"}], "junk"):
        task = structure_task({"task_id": "ta1", "status": status, "result": result})
        assert task.images == ()


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("content policy", "content policy"),
        ({"message": "content policy"}, "content policy"),
        ({"message": 5}, None),
        ({}, None),
        (5, None),
        (None, None),
    ],
)
def test_status_reason_as_object_or_plain_string(reason: object, expected: str | None) -> None:
    """status_reason may be an object with a message or a plain string; anything else is None."""
    task = structure_task({"task_id": "ta1", "status": "failed", "status_reason": reason})
    assert task.reason == expected


def test_callback_payload_is_parsed_exactly() -> None:
    """Every field of a callback lands in the CallbackPayload."""
    data = {
        "task_id": "ta1",
        "status": "failed",
        "consumed": 1,
        "status_reason": "policy",
    }
    assert structure_callback(data) == CallbackPayload(
        task_id="ta1", status=TaskStatus.FAILED, images=(), consumed=Decimal(1), reason="policy"
    )


@pytest.mark.parametrize("status", ["pending", "submitted", "in_progress"])
def test_callback_with_a_status_not_final_names_it(status: str) -> None:
    """A callback must carry success or failed."""
    assert _refusal(structure_callback, {"task_id": "ta1", "status": status}) == (
        "status",
        f"a callback must carry a final status, got {status}",
    )


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        (None, "data", "must be an object, got NoneType"),
        (["ta1"], "data", "must be an object, got list"),
        ({"task_id": 5}, "task_id", "is missing or not a string"),
        ({"task_id": ""}, "task_id", "is missing or not a string"),
    ],
)
def test_submit_answer_refusals(data: object, field: str, problem: str) -> None:
    """A submit answer without a task id string is refused naming the field."""
    assert _refusal(structure_submit, data) == (field, problem)


def test_submit_answer_task_id_is_checked_like_a_user_task_id() -> None:
    """A task id with a line break is refused as track() would refuse it."""
    field, problem = _refusal(structure_submit, {"task_id": "ta\n1"})
    assert field == "task_id"
    assert problem.startswith("must be printable text")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"status": "cancelled"}, "cancelled"),
        ({"status": "Success"}, "Success"),
        ({"status": "success"}, None),
        ({"status": "failed"}, None),
        ({"status": "pending"}, None),
        ({"status": "submitted"}, None),
        ({"status": "in_progress"}, None),
        ({"status": 3}, None),
        ({}, None),
        (["cancelled"], None),
    ],
)
def test_undocumented_status(data: object, expected: str | None) -> None:
    """Only a status string the API does not document is returned, as sent."""
    assert undocumented_status(data) == expected


def test_request_to_dict_is_unstructure_request() -> None:
    """The public name and the client's name are one function."""
    assert request_to_dict is unstructure_request


def test_request_from_dict_reads_every_key() -> None:
    """prompt, model, images and callback_url are read; other keys ignored."""
    data = {
        "id": 1,
        "prompt": "p",
        "model": "a/b",
        "images": ["https://x.test/i.png"],
        "callback_url": "https://h.test/cb",
    }
    assert request_from_dict(data) == GenerateRequest(
        "p", model="a/b", images=("https://x.test/i.png",), callback_url="https://h.test/cb"
    )
    assert request_from_dict({"prompt": "p", "images": None}) == GenerateRequest("p")


@pytest.mark.parametrize("value", [[], "x", None])
def test_request_from_dict_needs_an_object(value: object) -> None:
    """A line that is not an object is refused as the request."""
    assert _refusal(request_from_dict, value) == (
        "request",
        f"must be an object, got {type(value).__name__}",
    )


def test_request_from_dict_missing_prompt() -> None:
    """A missing prompt is named."""
    assert _refusal(request_from_dict, {"model": "a/b"}) == ("prompt", "is required")


def test_request_from_dict_enforces_max_images() -> None:
    """The default limit is the provider's 4; max_images= changes it."""
    images = [f"https://x.test/{i}.png" for i in range(5)]
    assert _refusal(request_from_dict, {"prompt": "p", "images": images})[0] == "images"
    assert len(request_from_dict({"prompt": "p", "images": images}, max_images=5).images) == 5
    assert _refusal(request_from_dict, {"prompt": "p", "images": images[:2]}, max_images=1) == (
        "images",
        "has 2 reference images; at most 1 are allowed",
    )


@pytest.mark.parametrize("images", ["", 0, False, {}])
def test_request_from_dict_refuses_images_that_are_not_a_list(images: object) -> None:
    """An empty string (or another falsy non-list) is not "no images": it is refused."""
    field, problem = _refusal(request_from_dict, {"prompt": "p", "images": images})
    assert field == "images"
    assert problem == f"must be a list of image URLs, got {type(images).__name__}"
