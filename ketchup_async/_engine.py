"""``Engine``: what a client opens on first use, inside the running loop.

A ``KetchupClient`` is created anywhere (it only checks its configuration); the loop-bound
parts (the aiohttp session, the request path, the shared poller and the submit path with its
controller) are made together on first use, and closed together in ``aclose()``.
"""

from __future__ import annotations

import aiohttp
import attrs

from ._http import USER_AGENT, Sleep, Transport
from ._models import PollPolicy, RetryPolicy
from ._poller import Poller
from ._submit import SubmitGate, Submitter
from ._submit_rate import SubmitController
from ._telemetry import Recorder

__all__ = ["Engine"]


@attrs.define(eq=False)
class Engine:
    """A client's loop-bound parts.

    Attributes:
        transport: The one request path.
        poller: The shared poller.
        submitter: The submit path (its gate holds the client's submit controller).
        owns_session: Whether ``close()`` closes the session (one the client made).
    """

    transport: Transport
    poller: Poller
    submitter: Submitter
    owns_session: bool

    @classmethod
    def start(
        cls,
        *,
        session: aiohttp.ClientSession | None,
        base_url: str,
        api_key: str,
        polling: PollPolicy,
        retry: RetryPolicy,
        timeout: float,
        max_concurrency: int,
        submit_rate: float | None,
        sleep: Sleep,
        telemetry: Recorder,
    ) -> Engine:
        """Make the parts; ``session=None`` makes a session of our own (closed by ``close``)."""
        owns = session is None
        if session is None:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=max_concurrency),
                headers={"User-Agent": USER_AGENT},
            )
        transport = Transport(
            session=session,
            base_url=base_url,
            api_key=api_key,
            retry=retry,
            timeout=timeout,
            max_concurrency=max_concurrency,
            sleep=sleep,
            telemetry=telemetry,
        )
        controller = SubmitController(
            submit_rate, base=retry.base, cap=retry.cap, retry_after_cap=retry.retry_after_cap
        )
        submitter = Submitter(transport, SubmitGate(controller), retry)
        return cls(transport, Poller(transport, polling), submitter, owns)

    def stop_submits(self) -> None:
        """Submits waiting for their turn (or backing off) end with ``ClientClosedError``."""
        self.submitter.gate.close()

    async def close(self) -> None:
        """Stop the poller (pending jobs fail with ``ClientClosedError``), close our session."""
        await self.poller.close()
        if self.owns_session:
            await self.transport.session.close()
