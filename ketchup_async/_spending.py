"""``generate_many``'s credit budget: an input's price is reserved before its submit and
settled when its job ends (the pure rule is ``_budget.CreditBudget``; this is its I/O side:
waiting while a job in flight may make room)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from ._budget import BudgetDecision, CreditBudget
from ._jobs import Job
from .errors import APIConnectionError, ClientClosedError, KetchupError, TaskFailedError

__all__ = ["RunBudget"]


class RunBudget:
    """The budget of one ``generate_many`` run; created inside the running loop.

    Args:
        max_credits: The limit.
        price: Credits one job costs at most (None: learned, one job at a time until then).

    Raises:
        ValidationError: A negative or non-numeric ``max_credits`` or ``price``.
    """

    def __init__(self, max_credits: object, price: object) -> None:
        self.budget = CreditBudget(max_credits, price=price)
        self._settled = asyncio.Event()  # a reserved job settled: there may be room now

    @property
    def limit(self) -> Decimal:
        """The budget, in credits."""
        return self.budget.limit

    async def admit(self, index: int, model: str) -> bool:
        """Reserve input ``index``'s price if it fits; wait while a job in flight may make
        room; False when it will never fit (nothing is reserved then)."""
        while True:
            decision = self.budget.decide(model)
            if decision is BudgetDecision.GO:
                self.budget.reserve(index, model)
                return True
            if decision is BudgetDecision.STOP:
                return False
            self._settled.clear()
            await self._settled.wait()

    def job_ended(self, index: int, job: Job) -> None:
        """Input ``index``'s job ended: count what it consumed (held if it cannot say)."""
        error = None if job.cancelled() else job.exception()
        if job.cancelled() or (error is not None and not isinstance(error, TaskFailedError)):
            self.budget.hold(index)  # it may have cost something and will never say what
        elif isinstance(error, TaskFailedError):
            consumed = error.consumed if isinstance(error.consumed, Decimal) else None
            self.budget.settle(index, consumed, failed=True)
        else:
            self.budget.settle(index, job.result().consumed)
        self._settled.set()

    def submit_failed(self, index: int, error: KetchupError) -> None:
        """Input ``index``'s submit failed: released if surely not charged, else held."""
        charged = (isinstance(error, ClientClosedError) and error.task_id is not None) or (
            isinstance(error, APIConnectionError) and error.may_have_been_processed
        )
        if charged:
            self.budget.hold(index)
        else:
            self.budget.release(index)
        self._settled.set()
