"""The public surface of ``ketchup_async``."""

from __future__ import annotations

import ketchup_async
from ketchup_async import errors

EXPECTED = {
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetDecision",
    "BudgetExceededError",
    "BulkError",
    "BulkInput",
    "BulkOptions",
    "BulkProgress",
    "BulkSummary",
    "CallbackPayload",
    "ClientClosedError",
    "ClientStats",
    "CreditBudget",
    "DEFAULT_BASE_URL",
    "DownloadError",
    "EndpointNotFoundError",
    "GenerateRequest",
    "GenerationResult",
    "ImageResult",
    "InsecureTransportWarning",
    "InvalidTransitionError",
    "Job",
    "JobDeadlineError",
    "JobTimeoutError",
    "JournalCorruptError",
    "JournalError",
    "JournalLockedError",
    "JournalMismatchError",
    "KNOWN_MODELS",
    "KetchupClient",
    "KetchupError",
    "MODEL_GEMINI_FLASH_IMAGE",
    "MODEL_GEMPIX2",
    "ManyProgress",
    "NotFoundError",
    "Outcome",
    "PollPolicy",
    "RateLimitError",
    "RetryPolicy",
    "ServerError",
    "SubmitHooks",
    "Task",
    "TaskFailedError",
    "TaskNotFoundError",
    "TaskStatus",
    "Telemetry",
    "UnjournaledTasksError",
    "UnknownStatusError",
    "ValidationError",
    "__version__",
    "request_from_dict",
    "request_to_dict",
    "resume_bulk",
    "run_bulk",
}


def test_exported_names_are_exactly_the_contract() -> None:
    """``__all__`` lists exactly the names we mean to export."""
    assert set(ketchup_async.__all__) == EXPECTED


def test_all_is_sorted_and_importable() -> None:
    """``__all__`` is sorted and every name in it exists."""
    assert ketchup_async.__all__ == sorted(ketchup_async.__all__)
    for name in ketchup_async.__all__:
        assert hasattr(ketchup_async, name), name


def test_every_error_is_re_exported() -> None:
    """Every class of ``ketchup_async.errors`` is also importable from the package."""
    for name in errors.__all__:
        assert getattr(ketchup_async, name) is getattr(errors, name)


def test_error_tree_shape() -> None:
    """The error classes sit where the documented tree puts them."""
    assert issubclass(errors.ValidationError, ValueError)
    assert issubclass(errors.TaskNotFoundError, errors.NotFoundError)
    assert issubclass(errors.EndpointNotFoundError, errors.NotFoundError)
    assert issubclass(errors.UnknownStatusError, errors.ServerError)
    assert issubclass(errors.JobTimeoutError, TimeoutError)
    assert issubclass(errors.APITimeoutError, errors.APIConnectionError)
    for cls in (errors.BadRequestError, errors.AuthenticationError, errors.RateLimitError):
        assert issubclass(cls, errors.APIError)
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, UserWarning if name.endswith("Warning") else errors.KetchupError)
