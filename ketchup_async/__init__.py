"""ketchup-async: the asyncio-native SDK for the Ketchup image API (``google/gempix2``).

One ``KetchupClient`` submits many jobs concurrently; one shared, rate-limited poller watches
every pending task and resolves each job's future when its task succeeds or fails.
"""

from __future__ import annotations

from ._client import DEFAULT_BASE_URL, InsecureTransportWarning, KetchupClient
from ._jobs import Job
from ._models import (
    CallbackPayload,
    GenerateRequest,
    GenerationResult,
    ImageResult,
    Outcome,
    PollPolicy,
    RetryPolicy,
    SubmitHooks,
    Task,
    TaskStatus,
)
from ._validate import KNOWN_MODELS, MODEL_GEMINI_FLASH_IMAGE, MODEL_GEMPIX2
from ._version import __version__
from .bulk import BulkInput, BulkProgress, BulkSummary, resume_bulk, run_bulk
from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BulkError,
    ClientClosedError,
    DownloadError,
    EndpointNotFoundError,
    JobDeadlineError,
    JobTimeoutError,
    JournalError,
    KetchupError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TaskFailedError,
    TaskNotFoundError,
    UnknownStatusError,
    ValidationError,
)

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BulkError",
    "BulkInput",
    "BulkProgress",
    "BulkSummary",
    "CallbackPayload",
    "ClientClosedError",
    "DEFAULT_BASE_URL",
    "DownloadError",
    "EndpointNotFoundError",
    "GenerateRequest",
    "GenerationResult",
    "ImageResult",
    "InsecureTransportWarning",
    "Job",
    "JobDeadlineError",
    "JobTimeoutError",
    "JournalError",
    "KNOWN_MODELS",
    "KetchupClient",
    "KetchupError",
    "MODEL_GEMINI_FLASH_IMAGE",
    "MODEL_GEMPIX2",
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
    "UnknownStatusError",
    "ValidationError",
    "__version__",
    "resume_bulk",
    "run_bulk",
]
