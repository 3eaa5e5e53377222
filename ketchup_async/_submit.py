"""The submit path: one controller per client, and the rule that a submit is money.

``Submitter.submit`` sends one submit and follows ``classify_submit_answer`` for each attempt:

- accepted: return the data;
- refused (429, 503: not charged): tell the controller, which pauses and slows every submit of
  this client; await ``on_refused``; wait for the controller and send again. No retry is
  counted, so a long rate limit delays the input but never fails it;
- retry (500, or never on the wire): await ``on_refused``; back off (full jitter) and send again,
  at most ``max_retries`` times;
- ambiguous (502, 504, a 2xx without a task id, a timeout or drop after sending): raise
  ``APIConnectionError(may_have_been_processed=True)``; never resent;
- rejected (400, 401...): raise the API's error.

``SubmitGate`` is the I/O around the pure ``SubmitController``: the submits waiting for their
turn queue on one FIFO lock, and only the one at its head sleeps (until the controller's delay
ends, an answer changes it, or the client closes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any

from . import _retry
from ._answers import Answer, connection_error, error_for_answer
from ._converter import structure_submit
from ._endpoints import SUBMIT_PATH
from ._http import Transport
from ._models import RetryPolicy, SubmitHooks
from ._retry import SubmitVerdict
from ._submit_rate import SubmitController
from .errors import APIConnectionError, ClientClosedError, KetchupError, ValidationError

__all__ = ["SubmitGate", "Submitter"]

logger = logging.getLogger("ketchup_async")


class SubmitGate:
    """Lets submits leave when the controller says so; closing it ends every wait.

    Args:
        controller: The pure controller.
        clock: Monotonic seconds.
    """

    def __init__(
        self, controller: SubmitController, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.controller = controller
        self.clock = clock
        self._turn = asyncio.Lock()
        self._changed = asyncio.Event()
        self._closed = False
        self._closing = asyncio.Event()

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    def close(self) -> None:
        """End every wait (each raises ``ClientClosedError``)."""
        self._closed = True
        self._changed.set()
        self._closing.set()

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("the client closed before the submit was sent")

    async def acquire(self) -> None:
        """Wait for this submit's turn, then count it as on the wire.

        Raises:
            ClientClosedError: The client closed while waiting.
        """
        self._check_open()
        async with self._turn:
            while True:
                self._check_open()
                delay = self.controller.delay(self.clock())
                if delay <= 0:
                    self.controller.on_send(self.clock())
                    return
                self._changed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(
                        self._changed.wait(), None if math.isinf(delay) else delay
                    )

    def answered(self, verdict: SubmitVerdict | None, retry_after: float | None = None) -> None:
        """Report how the submit let through by ``acquire`` ended (None: not sent at all)."""
        controller = self.controller
        if verdict is SubmitVerdict.ACCEPTED:
            controller.on_accepted(self.clock())
        elif verdict is SubmitVerdict.REFUSED:
            controller.on_refused(self.clock(), retry_after)
        else:
            controller.on_other()
        self._changed.set()

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` (a back-off), ending early with ``ClientClosedError`` on close."""
        self._check_open()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)
        self._check_open()


class Submitter:
    """Sends submits for one client through its gate, following the submit rule.

    Args:
        transport: The client's request path.
        gate: The client's submit gate.
        retry: Retries for the counted kinds (500, never on the wire).
        rng: Jitter source.
    """

    def __init__(
        self,
        transport: Transport,
        gate: SubmitGate,
        retry: RetryPolicy,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.transport = transport
        self.gate = gate
        self.retry = retry
        self.rng = rng or random.Random()
        self._orphans: set[asyncio.Task[Answer]] = set()  # sent, their caller cancelled

    async def submit(self, body: Any, hooks: SubmitHooks) -> str:
        """Send one submit and return its task id.

        Raises:
            APIError: The API rejected it (or refused it with 500 past ``max_retries``).
            APIConnectionError: No usable answer: ``may_have_been_processed`` says whether it
                may have created a task (then it was not resent).
            ClientClosedError: The client closed while the submit waited (nothing sent).
        """
        gate = self.gate
        retries = 0
        attempt = 0
        while True:
            await gate.acquire()
            attempt += 1
            verdict: SubmitVerdict | None = None
            try:
                answer = await self._send(body, hooks, attempt)
                task_id, verdict = _classify(answer)
            finally:
                gate.answered(verdict, None if verdict is None else answer.retry_after)
            if verdict is SubmitVerdict.ACCEPTED:
                assert task_id is not None
                return task_id
            error = self._error(answer, verdict)
            if verdict is SubmitVerdict.REFUSED:
                logger.debug("submit refused (HTTP %s): waiting for the controller", answer.status)
                if hooks.on_refused is not None:
                    await hooks.on_refused()
                continue
            if verdict is SubmitVerdict.RETRY and retries < self.retry.max_retries:
                delay = _retry.backoff_delay(retries, self.retry, self.rng)
                retries += 1
                logger.debug("submit: retrying in %.3f s after %s", delay, error)
                if hooks.on_refused is not None:
                    await hooks.on_refused()
                await gate.sleep(delay)
                continue
            raise error

    async def _send(self, body: Any, hooks: SubmitHooks, attempt: int) -> Answer:
        """One attempt; if the caller is cancelled once it is on the wire, it still lands.

        Cancelling the caller must not cut a submit that may be charged: the attempt goes on
        in the background, and the task id it brings back is logged at WARNING (a paid task is
        never silently lost). Cancelled before ``on_send`` ran, nothing was sent: it stops.
        """
        sent = False

        async def sending() -> None:
            nonlocal sent
            if hooks.on_send is not None:
                await hooks.on_send()
            sent = True

        attempt_task = asyncio.ensure_future(
            self.transport.send(
                "POST", SUBMIT_PATH, json_body=body, on_send=sending, attempt=attempt
            )
        )
        try:
            return await asyncio.shield(attempt_task)
        except asyncio.CancelledError:
            if not sent:
                attempt_task.cancel()
            else:
                self._orphans.add(attempt_task)
                attempt_task.add_done_callback(self._orphan_landed)
            raise

    def _orphan_landed(self, attempt_task: asyncio.Task[Answer]) -> None:
        self._orphans.discard(attempt_task)
        if attempt_task.cancelled() or attempt_task.exception() is not None:
            return
        answer = attempt_task.result()
        task_id, verdict = _classify(answer)
        if task_id is not None:
            logger.warning(
                "a submit was cancelled while on the wire; the API created task %s (it may be "
                "charged; client.track(task_id) re-attaches it)",
                task_id,
            )
        elif verdict is SubmitVerdict.AMBIGUOUS:
            logger.warning(
                "a submit was cancelled while on the wire and its answer does not say whether "
                "a task was created (HTTP %s): it may be charged",
                answer.status,
            )

    def _error(self, answer: Answer, verdict: SubmitVerdict) -> KetchupError:
        path = SUBMIT_PATH
        if answer.status is None:
            return connection_error("POST", path, answer, self.transport.base_url, idempotent=False)
        if verdict is SubmitVerdict.AMBIGUOUS:
            what = (
                "an answer without a usable task id"
                if 200 <= answer.status < 300
                else "a gateway error"
            )
            return APIConnectionError(
                f"POST {path} got {what} (HTTP {answer.status}"
                + (f", request id {answer.request_id})" if answer.request_id else ")"),
                may_have_been_processed=True,
            )
        return error_for_answer(answer)


def _classify(answer: Answer) -> tuple[str | None, SubmitVerdict]:
    status = answer.status
    task_id: str | None = None
    error_envelope = False
    if status is not None and 200 <= status < 300:
        envelope = answer.envelope()
        if envelope is not None:
            code = envelope.get("code")
            error_envelope = code not in (0, None)
            data = envelope.get("data")
            if code == 0:
                with contextlib.suppress(ValidationError):
                    task_id = structure_submit(data)
    verdict = _retry.classify_submit_answer(
        status,
        on_wire=answer.on_wire,
        has_task_id=task_id is not None,
        error_envelope=error_envelope,
    )
    return task_id, verdict
