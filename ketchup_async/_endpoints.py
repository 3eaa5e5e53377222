"""The API's endpoints, once: their paths and the query-then-structure step.

``client.query`` (one query, with HTTP retries) and the shared poller (one attempt, its own
schedule of retries) both call ``query_task``, so a query's answer means the same everywhere.
"""

from __future__ import annotations

from ._converter import structure_task, undocumented_status
from ._http import Transport
from ._models import Task
from .errors import ServerError, TaskNotFoundError, UnknownStatusError, ValidationError

__all__ = ["QUERY_PATH", "SUBMIT_PATH", "query_task"]

SUBMIT_PATH = "/api/image/gen"
QUERY_PATH = "/api/task/query"


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
        idempotent=True,
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
