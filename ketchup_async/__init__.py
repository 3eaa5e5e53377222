"""ketchup-async: the asyncio-native SDK for the Ketchup image API (``google/gempix2``).

One ``KetchupClient`` submits many jobs concurrently; one shared, rate-limited poller watches
every pending task and resolves each job's future when its task succeeds or fails.
"""

from __future__ import annotations

from ._budget import BudgetDecision, CreditBudget
from ._client import DEFAULT_BASE_URL, KetchupClient
from ._converter import request_from_dict, request_to_dict
from ._jobs import Job
from ._models import (
    CallbackPayload,
    GenerateRequest,
    GenerationResult,
    ImageResult,
    ManyProgress,
    Outcome,
    PollPolicy,
    RetryPolicy,
    SubmitHooks,
    Task,
    TaskStatus,
)
from ._stats import ClientStats
from ._telemetry import Telemetry
from ._validate import KNOWN_MODELS, MODEL_GEMINI_FLASH_IMAGE, MODEL_GEMPIX2
from ._version import __version__
from .bulk import BulkInput, BulkOptions, BulkProgress, BulkSummary, resume_bulk, run_bulk
from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    BulkError,
    ClientClosedError,
    DownloadError,
    EndpointNotFoundError,
    InsecureTransportWarning,
    InvalidTransitionError,
    JobDeadlineError,
    JobTimeoutError,
    JournalCorruptError,
    JournalError,
    JournalLockedError,
    JournalMismatchError,
    KetchupError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TaskFailedError,
    TaskNotFoundError,
    UnjournaledTasksError,
    UnknownStatusError,
    ValidationError,
)

__all__ = [
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
]
