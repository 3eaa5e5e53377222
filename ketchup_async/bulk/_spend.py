"""Spend control of a bulk run, over its journal: the credit budget and content-addressed reuse.

``load_budget`` rebuilds a ``CreditBudget`` from the journal (credits consumed by earlier runs
count against the new limit, prices seen are known, re-attached tasks are reserved, uncertain
ones held). ``reuse_queued`` takes the files of every ``queued`` input whose request succeeded
in a reused run (``_reuse``) and marks it ``reused``: it is never submitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path

import anyio

from .._budget import BudgetDecision, CreditBudget
from ._files import file_stem
from ._journal import Journal
from ._outdir import TMP_DIR, run_dir
from ._reuse import copy_verified, read_sources, request_key
from ._sql import mark_budget_stopped, saved_values, spend_rows
from ._states import State
from ._values import BulkOptions

__all__ = [
    "BudgetGate",
    "consumed_text",
    "credits",
    "load_budget",
    "reuse_queued",
    "saved_total",
    "stop_for_budget",
]

logger = logging.getLogger("ketchup_async")

_PAGE = 1000


def credits(value: object) -> Decimal | None:
    """A journaled ``consumed`` value as a ``Decimal`` (None when absent or not a number)."""
    if value is None:
        return None
    with contextlib.suppress(InvalidOperation, ValueError):
        number = Decimal(str(value))
        if number.is_finite():
            return number
    return None


def consumed_text(value: object) -> str | None:
    """A result's ``consumed`` as journaled (text, or None when the API did not say)."""
    return None if value is None else str(value)


async def load_budget(journal: Journal, options: BulkOptions) -> CreditBudget | None:
    """The run's budget (None without ``max_credits``), counting everything journaled so far."""
    if options.max_credits is None:
        return None
    records: list[tuple[int, str, str, str | None]] = await journal.call(spend_rows)
    budget = CreditBudget(options.max_credits, price=options.price)
    for seq, request, state, consumed in records:
        try:
            model = str(json.loads(request).get("model"))
        except (ValueError, AttributeError):
            model = "?"
        cost = credits(consumed)
        if state in (State.SUCCEEDED.value, State.FAILED.value):
            budget.reserve(seq, model)
            budget.settle(seq, cost, failed=state == State.FAILED.value)
        else:
            budget.reserve(seq, model)  # submitted: re-attached, it will be charged
            if state == State.UNCERTAIN.value:
                budget.hold(seq)  # may have been charged: never settles
    return budget


async def stop_for_budget(journal: Journal) -> int:
    """Give every ``queued`` input the reason ``budget``; return how many were left unsent."""
    left: int = await journal.call(lambda c: mark_budget_stopped(c, time.time()))
    return left


async def saved_total(journal: Journal) -> Decimal:
    """Credits the journal's ``reused`` inputs did not pay again."""
    values: list[str] = await journal.call(saved_values)
    return sum((c for c in map(credits, values) if c is not None), Decimal(0))


async def reuse_queued(journal: Journal, out_dir: Path, runs: tuple[Path, ...]) -> int:
    """Mark ``reused`` every queued input whose request succeeded in one of ``runs``.

    Returns:
        How many inputs were reused.
    """
    if not runs:
        return 0
    index = await anyio.to_thread.run_sync(read_sources, runs, out_dir)
    staging = run_dir(out_dir) / TMP_DIR
    reused, after = 0, 0
    while page := await journal.rows(State.QUEUED, after=after, limit=_PAGE):
        after = page[-1].seq
        for row in page:
            source = index.get(request_key(row.request))
            if source is None:
                continue
            stems = await journal.claim_names(row.seq, file_stem(row.key), len(source.files))
            copied = await anyio.to_thread.run_sync(copy_verified, source, out_dir, stems, staging)
            if copied is None:
                logger.warning(
                    "input %s: the files of %s in %s are missing or changed; submitting it",
                    row.key,
                    source.key,
                    source.run,
                )
                continue
            files, checksums = copied
            origin = {"run": str(source.run), "id": source.key, "task_id": source.task_id}
            await journal.mark_reused(
                row.seq,
                {
                    "files": json.dumps(files),
                    "checksums": json.dumps(checksums),
                    "reused_from": json.dumps(origin),
                    "saved": source.consumed,
                    "error": None,
                },
            )
            reused += 1
    return reused


class BudgetGate:
    """The runner's view of the budget: admit a submit, settle a job, wake waiting submits.

    Without a budget (``budget`` None) every call is a no-op and every submit is admitted.
    """

    def __init__(self, budget: CreditBudget | None) -> None:
        self.budget = budget
        self.reached = False
        self._changed = asyncio.Event()

    async def admit(self, seq: int, model: str) -> bool:
        """Wait until the submit of input ``seq`` fits (then reserve it: True) or never will."""
        budget = self.budget
        if budget is None:
            return True
        while True:
            decision = budget.decide(model)
            if decision is BudgetDecision.GO:
                budget.reserve(seq, model)
                return True
            if decision is BudgetDecision.STOP:
                self.reached = True
                return False
            self._changed.clear()
            await self._changed.wait()

    def settle(self, seq: int, consumed: object, *, failed: bool = False) -> None:
        """Input ``seq``'s job finished, having consumed ``consumed``."""
        if self.budget is not None:
            self.budget.settle(seq, credits(consumed), failed=failed)
            self._changed.set()

    def release(self, seq: int) -> None:
        """Input ``seq``'s submit created no task."""
        if self.budget is not None:
            self.budget.release(seq)
            self._changed.set()

    def submit_failed(self, seq: int, *, uncertain: bool) -> None:
        """Input ``seq``'s submit failed: it may have been charged (``uncertain``) or not."""
        if uncertain:
            self.hold(seq)
        else:
            self.release(seq)

    def hold(self, seq: int) -> None:
        """Input ``seq``'s job may have been charged and will not say more in this run."""
        if self.budget is not None:
            self.budget.hold(seq)
            self._changed.set()
