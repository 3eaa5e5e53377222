"""The API's endpoints, once: where the API is, its paths and the query-then-structure step.

``client.query`` (one query, with HTTP retries) and the shared poller (one attempt, its own
schedule of retries) both call ``query_task``, so a query's answer means the same everywhere.
"""

from __future__ import annotations

import os
import warnings
from urllib.parse import urlsplit

from . import _validate
from ._addresses import is_loopback_host
from ._converter import structure_task, undocumented_status
from ._http import Transport
from ._models import Task
from .errors import (
    InsecureTransportWarning,
    ServerError,
    TaskNotFoundError,
    UnknownStatusError,
    ValidationError,
)

__all__ = ["DEFAULT_BASE_URL", "QUERY_PATH", "SUBMIT_PATH", "query_task", "resolve_base_url"]

DEFAULT_BASE_URL = "https://api.defapi.org"
SUBMIT_PATH = "/api/image/gen"
QUERY_PATH = "/api/task/query"


def resolve_base_url(base_url: str | None) -> str:
    """The API root: ``base_url``, else ``KETCHUP_BASE_URL``, else the public API.

    Warns (``InsecureTransportWarning``) when it is plain ``http://`` to a host other than
    loopback: the key would travel in clear.

    Raises:
        ValidationError: Not an absolute http(s) URL.
    """
    url = base_url or os.environ.get("KETCHUP_BASE_URL") or DEFAULT_BASE_URL
    _validate.check_http_url(url, field="base_url")
    parts = urlsplit(url)
    if parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
        warnings.warn(
            f"base_url {parts.scheme}://{parts.netloc} is not HTTPS: the API key would be "
            "sent in clear text",
            InsecureTransportWarning,
            stacklevel=3,
        )
    return url.rstrip("/")


async def query_task(transport: Transport, task_id: str, *, retries: bool = True) -> Task:
    """Query one task and structure the answer.

    The task id travels as a URL-encoded query parameter, whatever characters it has.

    Raises:
        TaskNotFoundError: A 404 (the caller decides whether it is final).
        UnknownStatusError: The answer's status is not one the API documents.
        ServerError: A malformed answer, or an answer about another task.
        APIError: Another error answer.
        APIConnectionError: No usable answer.
    """
    data = await transport.request(
        "GET",
        QUERY_PATH,
        params={"task_id": task_id},
        retries=retries,
        not_found=TaskNotFoundError,
    )
    try:
        task = structure_task(data)
    except ValidationError as exc:
        status = undocumented_status(data)
        if status is not None and data.get("task_id") == task_id:
            raise UnknownStatusError(task_id, status) from None
        raise ServerError(f"malformed query response: {exc}", status_code=200) from None
    if task.task_id != task_id:
        raise ServerError(
            f"query response is for another task ({task.task_id[:64]!r})", status_code=200
        )
    return task
