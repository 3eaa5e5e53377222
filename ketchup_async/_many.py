"""``generate_many``: stream inputs into jobs, at most ``concurrency`` in flight.

Inputs are read lazily (an iterator of millions is never materialised). One feeder task reads
inputs and starts a short-lived submit task per input (bounded by ``concurrency``); a job's
completion is a future callback, not a task, so pending jobs cost no wake-ups.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from ._jobs import Job
from ._models import GenerateRequest, Outcome, SubmitHooks
from .errors import KetchupError, TaskFailedError, ValidationError

if TYPE_CHECKING:
    from ._client import KetchupClient

__all__ = ["HooksFor", "Item", "aiter_inputs", "generate_many"]

T = TypeVar("T")

Item = str | GenerateRequest
#: Gives the ``SubmitHooks`` of one input's submit, from its index and request.
HooksFor = Callable[[int, GenerateRequest], SubmitHooks]


async def aiter_inputs(inputs: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    """Iterate a sync or async iterable asynchronously, lazily."""
    if isinstance(inputs, AsyncIterable):
        async for item in inputs:
            yield item
    else:
        for item in inputs:
            yield item


def _to_request(item: object, max_images: int) -> GenerateRequest:
    if isinstance(item, GenerateRequest):
        return item
    if isinstance(item, str):
        return GenerateRequest(item, max_images=max_images)
    raise ValidationError(
        "inputs", f"items must be prompts (str) or GenerateRequest, got {type(item).__name__}"
    )


def _outcome(job: Job, index: int) -> Outcome:
    request = job.request
    assert request is not None
    error = job.exception()
    if error is None:
        return Outcome(request, job.task_id, job.result(), index=index)
    if not isinstance(error, KetchupError):  # pragma: no cover - the poller only sets these
        error = TaskFailedError(job.task_id, f"unexpected error: {error!r}")
    return Outcome(request, job.task_id, error=error, index=index)


async def generate_many(
    client: KetchupClient,
    inputs: Iterable[Item] | AsyncIterable[Item],
    *,
    concurrency: int = 256,
    hooks: HooksFor | None = None,
) -> AsyncIterator[Outcome]:
    """Yield one ``Outcome`` per input as each completes (see ``KetchupClient.generate_many``)."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValidationError("concurrency", f"must be a positive integer, got {concurrency!r}")
    loop = asyncio.get_running_loop()
    ready: deque[Outcome] = deque()
    wakeup = asyncio.Event()
    slots = asyncio.Semaphore(concurrency)
    submitting: set[asyncio.Task[None]] = set()
    in_flight: dict[Job, int] = {}
    crashed: list[BaseException] = []

    def emit(outcome: Outcome) -> None:
        ready.append(outcome)  # still holds its slot until the caller takes it
        wakeup.set()

    def on_done(job: Job) -> None:
        index = in_flight.pop(job, None)
        if index is not None and not job.cancelled():
            emit(_outcome(job, index))

    async def submit_one(index: int, request: GenerateRequest) -> None:
        try:
            job = await client.submit_request(
                request, hooks=None if hooks is None else hooks(index, request)
            )
        except KetchupError as exc:
            emit(Outcome(request, None, error=exc, index=index))
            return
        except Exception as exc:  # a hook failed (e.g. the journal): end the iteration with it
            crashed.append(exc)
            wakeup.set()
            return
        in_flight[job] = index
        job.add_done_callback(on_done)

    async def feed() -> None:
        index = -1
        async for item in aiter_inputs(inputs):
            index += 1
            await slots.acquire()
            if client.closed:
                return  # the client closed under us: stop reading the input
            try:
                request = _to_request(item, client.max_images)
            except ValidationError as exc:
                emit(Outcome(None, None, error=exc, index=index))
                continue
            task = loop.create_task(
                submit_one(index, request), name=f"ketchup-async generate_many submit {index}"
            )
            submitting.add(task)
            task.add_done_callback(submitting.discard)

    feeder = loop.create_task(feed(), name="ketchup-async generate_many feeder")
    feeder.add_done_callback(lambda _: wakeup.set())
    try:
        while True:
            while ready:
                slots.release()
                yield ready.popleft()
            if crashed:
                raise crashed[0]
            if feeder.done() and not feeder.cancelled() and feeder.exception() is not None:
                feeder.result()  # re-raise an error of the input iterator itself
            if feeder.done() and not submitting and not in_flight:
                return
            wakeup.clear()
            if submitting and feeder.done() and not ready:
                # Submit tasks end through emit() or by adding a job; wake when they finish.
                await asyncio.wait(list(submitting), return_when=asyncio.FIRST_COMPLETED)
                continue
            await wakeup.wait()
    finally:
        feeder.cancel()
        # A submit in flight may already be charged: let it finish so its job is known,
        # then stop tracking every job that has not completed.
        pending = [feeder, *submitting]
        await asyncio.shield(asyncio.gather(*pending, return_exceptions=True))
        for job in list(in_flight):
            in_flight.pop(job, None)
            job.cancel()
