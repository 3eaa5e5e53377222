"""The one error tree of ketchup-async.

```
KetchupError
├── ValidationError (also ValueError)  - bad input caught locally; no request was sent
├── APIError(status_code, code, message, detail, request_id)
│   ├── BadRequestError 400
│   ├── AuthenticationError 401
│   ├── NotFoundError 404
│   │   ├── TaskNotFoundError          - the API repeatedly says it does not know the task
│   │   └── EndpointNotFoundError      - a non-API 404 before any answer: the base URL is wrong
│   ├── RateLimitError 429
│   └── ServerError 5xx (also an HTML page from a proxy)
│       └── UnknownStatusError         - a query answered a status the API does not document
├── APIConnectionError(may_have_been_processed: bool)
│   └── APITimeoutError
├── BudgetExceededError(max_credits)  - not submitted: it could push spend past the budget
├── TaskFailedError(task_id, reason)   - the task reached `failed` (or `success` with no image)
├── JobTimeoutError(task_id, timeout)  - wait(timeout) passed (also TimeoutError); still tracked
├── JobDeadlineError(task_id, last_status) - PollPolicy.job_deadline passed; no longer tracked
├── ClientClosedError(task_id, may_have_been_processed) - the client closed meanwhile
├── DownloadError(status_code)         - a result image could not be fetched or decoded
├── BulkError                          - a bulk run cannot start (bad input, nothing to resume)
└── JournalError                       - a bulk run's journal cannot be used
    ├── JournalLockedError             - another process drives this run
    ├── JournalMismatchError(key)      - an input id is journaled with another request
    ├── JournalCorruptError(path, problem) - the journal file or one of its rows is damaged
    ├── UnjournaledTasksError(task_ids, recovery_file) - paid task ids the journal could not
    │                                    record (disk full): kept in the recovery file
    └── InvalidTransitionError         - a state change the bulk transition table forbids (a bug)

UserWarning
└── InsecureTransportWarning           - a key or token would travel over plain http
```

Every error carries its context as attributes; none of them ever contains the API key.

Every exception a caller of the library can meet lives here. Private control-flow signals that
are raised and caught within one module and never reach a caller (the bulk runner's
``_HookFailed`` / ``_Stopping``, the console script's ``UsageError`` / ``Interrupted``) stay
beside the code that uses them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "BulkError",
    "ClientClosedError",
    "DownloadError",
    "EndpointNotFoundError",
    "InsecureTransportWarning",
    "InvalidTransitionError",
    "JobDeadlineError",
    "JobTimeoutError",
    "JournalCorruptError",
    "JournalError",
    "JournalLockedError",
    "JournalMismatchError",
    "KetchupError",
    "NotFoundError",
    "RateLimitError",
    "ServerError",
    "TaskFailedError",
    "TaskNotFoundError",
    "UnjournaledTasksError",
    "UnknownStatusError",
    "ValidationError",
]


class KetchupError(Exception):
    """Base class of every error raised by ketchup-async."""


class ValidationError(KetchupError, ValueError):
    """Bad input caught locally, before any request was sent.

    Attributes:
        field: The name of the offending field (for example ``"prompt"`` or ``"images[2]"``).
        problem: What is wrong with it.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class APIError(KetchupError):
    """The API answered with an error status.

    Attributes:
        status_code: The HTTP status code.
        code: The envelope's ``code`` field, when the body was the API's JSON.
        message: The envelope's ``message`` (or a short description of a non-JSON body).
        detail: The envelope's ``detail`` field, when present.
        request_id: The server's request id header, when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: int | None = None,
        detail: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.code = code
        self.message = message
        self.detail = detail
        self.request_id = request_id
        text = f"HTTP {status_code}: {message}"
        if detail:
            text += f" ({detail})"
        if request_id:
            text += f" [request id {request_id}]"
        super().__init__(text)


class BadRequestError(APIError):
    """400: the API refused the request's parameters."""


class AuthenticationError(APIError):
    """401: the API key is missing, invalid, expired or revoked."""


class NotFoundError(APIError):
    """404: the task or endpoint does not exist."""


class TaskNotFoundError(NotFoundError):
    """404 for a task id: the API does not know this task (long enough after submit)."""


class EndpointNotFoundError(NotFoundError):
    """A 404 that is not the API's JSON, before the API ever answered a query of this client.

    The query path does not exist where the client looks for it: the base URL (its path or its
    host) looks wrong. Every pending job fails with it, as for a bad key.
    """


class RateLimitError(APIError):
    """429: too many requests; ``retry_after`` holds the server's advice in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class ServerError(APIError):
    """5xx, or a body that is not the API's JSON (for example a proxy's HTML page)."""


class UnknownStatusError(ServerError):
    """A query answered a status the API does not document (for example ``cancelled``).

    The SDK never guesses what it means: the poller treats it as not final (until the job's
    deadline); ``client.query`` raises this error.

    Attributes:
        task_id: The task queried.
        status: The status string exactly as the API sent it.
    """

    def __init__(self, task_id: str, status: str, *, request_id: str | None = None) -> None:
        self.task_id = task_id
        self.status = status
        super().__init__(
            f"task {task_id} has an undocumented status {status[:64]!r}",
            status_code=200,
            request_id=request_id,
        )


class APIConnectionError(KetchupError):
    """The request did not get an HTTP answer.

    Attributes:
        may_have_been_processed: True when the request may have reached the server (a submit
            that may have been charged); False when it provably never left this machine.
        reason: The operating system's words for what failed ("connection refused"), when
            known.
    """

    def __init__(
        self, message: str, *, may_have_been_processed: bool, reason: str | None = None
    ) -> None:
        self.may_have_been_processed = may_have_been_processed
        self.reason = reason
        suffix = (
            " (the request may have been processed by the server)"
            if may_have_been_processed
            else " (the request was not sent)"
        )
        super().__init__(message + suffix)


class APITimeoutError(APIConnectionError):
    """The request timed out."""


class TaskFailedError(KetchupError):
    """The task reached the ``failed`` status.

    Attributes:
        task_id: The task that failed.
        reason: The server's ``status_reason.message``, if any.
        consumed: Credits consumed by the task, if the server said.
    """

    def __init__(self, task_id: str, reason: str | None, consumed: object = None) -> None:
        self.task_id = task_id
        self.reason = reason
        self.consumed = consumed
        super().__init__(f"task {task_id} failed: {reason or 'no reason given'}")


class BudgetExceededError(KetchupError):
    """An input was not submitted: it could have pushed spend past ``max_credits``.

    Nothing was sent for it (``generate_many(max_credits=...)``).

    Attributes:
        max_credits: The budget.
    """

    def __init__(self, max_credits: object) -> None:
        self.max_credits = max_credits
        super().__init__(f"not submitted: it could push spend past the budget of {max_credits}")


class JobTimeoutError(KetchupError, asyncio.TimeoutError):
    """``Job.wait(timeout)`` (or ``generate(timeout=)``) gave up waiting; the job goes on.

    The task keeps being tracked: wait again, or ``client.track(task_id)`` later. Also an
    ``asyncio.TimeoutError`` (``TimeoutError`` since Python 3.11), as a bare timeout was before.

    Attributes:
        task_id: The task waited for.
        timeout: The seconds waited.
    """

    def __init__(self, task_id: str, timeout: float | None) -> None:
        self.task_id = task_id
        self.timeout = timeout
        super().__init__(
            f"task {task_id} did not finish within {timeout} s (it is still being tracked)"
        )


class JobDeadlineError(KetchupError):
    """The job passed ``PollPolicy.job_deadline`` without a final status; tracking stopped.

    The task may still finish (and be charged): ``client.track(task_id)`` attaches to it again.

    Attributes:
        task_id: The task.
        last_status: The last status the API reported (as sent, e.g. ``"cancelled"``), or
            None if it never answered one.
        deadline: The deadline, in seconds after the job started being tracked.
    """

    def __init__(self, task_id: str, last_status: str | None, deadline: float) -> None:
        self.task_id = task_id
        self.last_status = last_status
        self.deadline = deadline
        seen = "no status seen" if last_status is None else f"last status {last_status[:64]!r}"
        super().__init__(f"task {task_id} did not finish within {deadline:g} s ({seen})")


class ClientClosedError(KetchupError):
    """The client was closed while the job (or its submit) was still under way.

    Attributes:
        task_id: The task the API created, when a submit landed after the client closed
            (it may be charged: track or query it with another client); None otherwise.
        may_have_been_processed: True when the submit may have been charged.
    """

    def __init__(
        self, message: str, *, task_id: str | None = None, may_have_been_processed: bool = False
    ) -> None:
        self.task_id = task_id
        self.may_have_been_processed = may_have_been_processed
        super().__init__(message)


class DownloadError(KetchupError):
    """A result image could not be downloaded or decoded (refused, too large, not an image).

    Attributes:
        status_code: The image host's HTTP status, when it answered with an error.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        self.status_code = status_code
        super().__init__(message)


class BulkError(KetchupError):
    """A bulk run cannot start: a bad input, a duplicate key, nothing to resume..."""


class JournalError(KetchupError):
    """A bulk run's journal cannot be used (unreadable, locked, from a newer version, or a
    write failed)."""


class JournalLockedError(JournalError):
    """Another process is driving this run (its journal is locked)."""


class JournalMismatchError(JournalError):
    """An input id is already in the journal with a different request.

    Attributes:
        key: The input's id.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"input {key!r} is already in the journal with a different request "
            "(use a new output directory to run changed inputs)"
        )


class JournalCorruptError(JournalError):
    """The journal file, or one of its rows, is damaged (one clear line, never a traceback).

    Attributes:
        path: The journal file.
        problem: What is wrong (which row, which column).
    """

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"the journal {path!r} is damaged: {problem}")


class UnjournaledTasksError(JournalError):
    """The journal could not record the ids of tasks that were created (and paid for).

    The run stopped; every such id was logged at ERROR and appended to ``recovery_file``
    (when it could be written). ``resume_bulk`` reads that file and re-attaches the tasks.

    Attributes:
        task_ids: Input id -> task id of every task not in the journal.
        recovery_file: Where the ids were saved, or None if that failed too.
    """

    def __init__(self, task_ids: Mapping[str, str], recovery_file: str | None) -> None:
        self.task_ids = dict(task_ids)
        self.recovery_file = recovery_file
        where = (
            f"saved in {recovery_file!r} and logged"
            if recovery_file
            else "logged above (the recovery file could not be written either)"
        )
        super().__init__(
            f"the journal could not record {len(self.task_ids)} paid task id(s) ({where}); "
            "free disk space, then resume the run: the tasks are re-attached, not paid again"
        )


class InvalidTransitionError(JournalError):
    """A bulk input state change the transition table does not allow (a bug, never user input).

    Attributes:
        current: The state the input is in.
        target: The state it was asked to go to.
    """

    def __init__(self, current: str, target: str) -> None:
        self.current = str(current)
        self.target = str(target)
        super().__init__(f"an input cannot go from {self.current!r} to {self.target!r}")


class InsecureTransportWarning(UserWarning):
    """A secret would travel in clear text: a plain ``http://`` base URL (the API key) or
    callback URL (the webhook token) to a host other than loopback. A warning, not an error."""
