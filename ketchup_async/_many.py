"""``generate_many``: stream inputs into jobs with backpressure; one ``Outcome`` per input.

Backpressure: a slot is taken before an input is read and given back when the caller *takes*
that input's outcome, not when the outcome is ready. So the inputs read (and paid for) beyond
those the caller has taken never exceed ``concurrency``, and at most ``concurrency`` outcomes
ever wait for a slow caller: memory stays bounded whatever the consumer does.

Inputs are read lazily by one feeder task, which starts a short-lived submit task per input; a
job's completion is a future callback, not a task, so pending jobs cost no wake-ups. The run
talks to the client only through the ``Submitter`` protocol (public methods), and the client
knows its open runs: ``aclose()`` stops them, lets their submits on the wire finish and logs
the task ids the caller never saw.

Why not anyio here (issue 11): the run lives in an async generator, which a ``break`` leaves
suspended and which the loop may finalise later in another task; an anyio task group or cancel
scope held across its ``yield`` would have to be exited in the task that entered it, and that
is exactly what cannot be promised. The one thing a memory object stream would give us, a
bounded buffer, is not the bound we need (read-but-not-taken spans submits, renders and the
buffer), so one ``asyncio.Semaphore`` released at take time says it directly.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    MutableSet,
)
from typing import Protocol, TypeVar

import attrs

from . import _validate
from ._jobs import Job
from ._models import GenerateRequest, ManyProgress, Outcome, SubmitHooks
from ._spending import RunBudget
from .errors import (
    BudgetExceededError,
    ClientClosedError,
    KetchupError,
    TaskFailedError,
    ValidationError,
)

__all__ = ["HooksFor", "Item", "ManyRun", "ProgressHook", "Submitter", "aiter_inputs"]

logger = logging.getLogger("ketchup_async")

T = TypeVar("T")

Item = str | GenerateRequest
#: Gives the ``SubmitHooks`` of one input's submit, from its index and request.
HooksFor = Callable[[int, GenerateRequest], SubmitHooks]
#: Receives a ``ManyProgress`` snapshot after every change.
ProgressHook = Callable[[ManyProgress], None]


class Submitter(Protocol):
    """What a run needs of the client (``KetchupClient`` is one): its public methods only."""

    max_images: int
    model: str

    @property
    def closed(self) -> bool:
        """True once the client is closing."""

    async def submit_request(
        self, request: GenerateRequest, *, hooks: SubmitHooks | None = None
    ) -> Job:
        """Submit one request and return its job."""


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


def _outcome(job: Job, index: int, request: GenerateRequest) -> Outcome:
    error = job.exception()
    if error is None:
        return Outcome(request, job.task_id, job.result(), index=index)
    if not isinstance(error, KetchupError):  # pragma: no cover - the poller only sets these
        error = TaskFailedError(job.task_id, f"unexpected error: {error!r}")
    return Outcome(request, job.task_id, error=error, index=index)


def _chain(
    first: Callable[[], None], then: Callable[[], Awaitable[None]] | None
) -> Callable[[], Awaitable[None]]:
    async def hook() -> None:
        first()
        if then is not None:
            await then()

    return hook


class ManyRun:
    """One ``generate_many`` iteration: its feeder, its submits, its jobs and its outcomes."""

    def __init__(
        self,
        client: Submitter,
        registry: MutableSet[ManyRun],
        inputs: Iterable[Item] | AsyncIterable[Item],
        concurrency: int,
        *,
        hooks: HooksFor | None,
        on_progress: ProgressHook | None,
    ) -> None:
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, (Iterable, AsyncIterable)):
            # A lone prompt would be iterated character by character: one paid job per letter.
            raise ValidationError(
                "inputs", f"must be an iterable of prompts or requests, got {type(inputs).__name__}"
            )
        _validate.check_int(concurrency, field="concurrency", minimum=1)
        for name, hook in (("hooks", hooks), ("on_progress", on_progress)):
            if hook is not None and not callable(hook):
                raise ValidationError(name, f"must be callable, got {type(hook).__name__}")
        self._client = client
        self._inputs = inputs
        self._hooks = hooks
        self._on_progress = on_progress
        self._registry = registry
        self._slots = asyncio.Semaphore(concurrency)
        self._ready: deque[Outcome] = deque()
        self._wakeup = asyncio.Event()
        self._feeder: asyncio.Task[None] | None = None
        self._submitting: dict[int, asyncio.Task[None]] = {}
        self._sent: set[int] = set()  # submits whose bytes went on the wire
        self._told: set[int] = set()  # task ids the caller got through its own on_submitted
        self._in_flight: dict[int, tuple[Job, GenerateRequest]] = {}
        self._crashed: list[BaseException] = []
        self._progress = ManyProgress()
        self._stopping = False
        self._waiting = False  # the caller is inside __anext__, waiting for an outcome
        self._logged: set[str] = set()
        self._budget: RunBudget | None = None

    # -- the caller's side ------------------------------------------------------------------

    async def outcomes(self) -> AsyncIterator[Outcome]:
        """Yield one ``Outcome`` per input as each completes (the caller's iteration)."""
        self._registry.add(self)
        feeder = asyncio.get_running_loop().create_task(
            self._feed(), name="ketchup-async generate_many feeder"
        )
        self._feeder = feeder
        feeder.add_done_callback(lambda _: self._wakeup.set())
        try:
            while True:
                if self._ready:
                    outcome = self._ready.popleft()
                    self._slots.release()  # taken: the feeder may read one more input
                    yield outcome
                    continue
                if self._crashed:
                    raise self._crashed[0]
                if feeder.done() and not feeder.cancelled() and feeder.exception() is not None:
                    feeder.result()  # re-raise an error of the input iterator itself
                if feeder.done() and not self._submitting and not self._in_flight:
                    return
                self._wakeup.clear()
                self._waiting = True
                try:
                    await self._wakeup.wait()
                finally:
                    self._waiting = False
        finally:
            await self._finish()

    def stop(self) -> None:
        """The client is closing: read no more input and send nothing more."""
        self._stopping = True
        if self._feeder is not None:
            self._feeder.cancel()

    def log_unreported(self, why: str) -> None:
        """Log at WARNING the task ids the caller has not seen, unless it is waiting for them."""
        if self._waiting:
            return  # the caller is iterating: their outcomes (with task ids) reach it
        self._log(self._unreported(), why)

    # -- the run's side ---------------------------------------------------------------------

    def _report(self, **changes: int) -> None:
        self._progress = attrs.evolve(self._progress, **changes)
        if self._on_progress is None:
            return
        try:
            self._on_progress(self._progress)
        except Exception as exc:  # the caller's hook: end the iteration with its error
            self._crashed.append(exc)
            self._wakeup.set()

    def _emit(self, outcome: Outcome) -> None:
        self._ready.append(outcome)
        progress = self._progress
        if outcome.ok:
            self._report(succeeded=progress.succeeded + 1)
        else:
            self._report(failed=progress.failed + 1)
        self._wakeup.set()

    def _on_done(self, index: int) -> None:
        entry = self._in_flight.pop(index, None)
        if entry is None:
            return
        if self._budget is not None:
            self._budget.job_ended(index, entry[0])
        if entry[0].cancelled():  # cancelled by someone else: no outcome, free its slot
            self._slots.release()
            self._wakeup.set()
        else:
            self._emit(_outcome(entry[0], index, entry[1]))

    def _submit_hooks(self, index: int, request: GenerateRequest) -> SubmitHooks:
        theirs = SubmitHooks() if self._hooks is None else self._hooks(index, request)

        def sending() -> None:
            if self._stopping:
                raise ClientClosedError("generate_many stopped: this input was not sent")
            self._sent.add(index)

        async def refused() -> None:  # back to waiting: stopping may cancel it, unsent
            if theirs.on_refused is not None:
                await theirs.on_refused()
            self._sent.discard(index)

        async def submitted(task_id: str) -> None:
            if theirs.on_submitted is not None:
                await theirs.on_submitted(task_id)
                self._told.add(index)

        return SubmitHooks(
            on_send=_chain(sending, theirs.on_send),
            on_refused=refused,
            on_submitted=submitted,
        )

    async def _submit(self, index: int, request: GenerateRequest) -> None:
        try:
            job = await self._client.submit_request(
                request, hooks=self._submit_hooks(index, request)
            )
        except KetchupError as exc:
            task_id = exc.task_id if isinstance(exc, ClientClosedError) else None
            if self._budget is not None:
                self._budget.submit_failed(index, exc)
            self._emit(Outcome(request, task_id, error=exc, index=index))
            return
        except Exception as exc:  # a hook failed (e.g. the journal): end the iteration with it
            self._crashed.append(exc)
            self._wakeup.set()
            return
        self._in_flight[index] = (job, request)
        self._report(submitted=self._progress.submitted + 1)
        job.add_done_callback(lambda _: self._on_done(index))

    def _submit_ended(self, index: int, _: object) -> None:
        self._submitting.pop(index, None)
        self._sent.discard(index)
        self._wakeup.set()

    async def _feed(self) -> None:
        loop = asyncio.get_running_loop()
        index = -1
        async for item in aiter_inputs(self._inputs):
            index += 1
            await self._slots.acquire()
            if self._stopping or self._client.closed:
                return  # the client closed under us: stop reading the input
            self._report(read=self._progress.read + 1)
            try:
                request = _to_request(item, self._client.max_images)
            except ValidationError as exc:
                self._emit(Outcome(None, None, error=exc, index=index))
                continue
            model = request.model or self._client.model
            if self._budget is not None and not await self._budget.admit(index, model):
                error = BudgetExceededError(self._budget.limit)
                self._emit(Outcome(request, None, error=error, index=index))
                continue
            task = loop.create_task(
                self._submit(index, request), name=f"ketchup-async generate_many submit {index}"
            )
            self._submitting[index] = task
            task.add_done_callback(functools.partial(self._submit_ended, index))

    def limit_spend(self, max_credits: object, price: object) -> None:
        """Never submit an input that could push spend past ``max_credits`` (None: no limit)."""
        if max_credits is not None:
            self._budget = RunBudget(max_credits, price)

    async def _finish(self) -> None:
        # A submit on the wire may be charged: let it finish. One only waiting is cancelled.
        self._stopping = True
        pending: list[asyncio.Future[None]] = []
        if self._feeder is not None:
            self._feeder.cancel()
            pending.append(self._feeder)
        for index, task in list(self._submitting.items()):
            if index not in self._sent:
                task.cancel()
            pending.append(task)
        gathered = asyncio.gather(*pending, return_exceptions=True)
        try:
            await asyncio.shield(gathered)
        finally:  # cancelled again (anyio re-delivers): wrap up once the sent submits land
            if gathered.done():
                self._wrap_up()
            else:
                gathered.add_done_callback(lambda _: self._wrap_up())

    def _wrap_up(self) -> None:
        unreported = self._unreported()
        for job, _ in list(self._in_flight.values()):
            job.cancel()
        self._in_flight.clear()
        self._ready.clear()
        self._registry.discard(self)
        self._log(unreported, "generate_many ended before the caller took their outcomes")

    def _unreported(self) -> list[str]:
        ids = [job.task_id for i, (job, _) in self._in_flight.items() if i not in self._told]
        ids += [o.task_id for o in self._ready if o.task_id and o.index not in self._told]
        return [task_id for task_id in dict.fromkeys(ids) if task_id not in self._logged]

    def _log(self, task_ids: list[str], why: str) -> None:
        if not task_ids:
            return
        self._logged.update(task_ids)
        logger.warning(
            "%s: %d submitted task(s) never reported to the caller (they may be charged; "
            "client.track(task_id) re-attaches one): %s",
            why,
            len(task_ids),
            " ".join(task_ids),
        )
