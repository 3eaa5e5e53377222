"""The fake server's money ledger: every task it created, and an audit against what was reported.

Pure bookkeeping (no I/O): the server appends an entry each time it creates a task (which is
what costs a user money on the real API) and notes every extra submit it answered with an
existing task id. ``FakeLedger.audit`` checks the money invariants against what a client
reported to its caller:

- every task created by a submit was reported (a ``Job``, an ``Outcome`` or a journal row
  carrying its id), or its input was reported ``uncertain`` (maybe paid, id unknown);
- no input created two tasks, unless the caller asked to resubmit it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import attrs

__all__ = ["FakeLedger", "LedgerEntry", "Origin", "Report"]

Origin = Literal["submit", "create_task"]
"""How a task came to exist: an HTTP submit, or ``FakeKetchupServer.create_task``."""


@attrs.define(eq=False)
class LedgerEntry:
    """One task the fake server created (and so charged for on the real API).

    Attributes:
        task_id: The task's id.
        prompt: The submitted prompt.
        model: The submitted model.
        images: Reference images of the submit.
        callback_url: The submit's callback URL, if any.
        created_at: ``time.monotonic()`` at creation.
        request_id: The request id the creating submit was answered with (None for
            ``create_task``).
        answer: What the creating submit was told: ``"ok"`` (a task id), or the injected
            fault that hid it (``"error_500_after_accept"``, ``"gateway_after_accept:502"``,
            ``"missing_task_id"``, ``"reset_after_accept"``...).
        origin: ``"submit"`` or ``"create_task"``.
        answered_prompts: Prompts of later submits answered with this same id (the
            ``duplicate_task_id`` fault); they created no task.
    """

    task_id: str
    prompt: str
    model: str
    images: tuple[str, ...]
    callback_url: str | None
    created_at: float
    request_id: str | None
    answer: str
    origin: Origin = "submit"
    answered_prompts: list[str] = attrs.field(factory=list)

    def as_dict(self, *, status: str | None = None, consumed: str | None = None) -> dict[str, Any]:
        """A JSON-able form (``/_fake/ledger``), with the task's current status and cost."""
        return {
            "task_id": self.task_id,
            "prompt": self.prompt,
            "model": self.model,
            "images": list(self.images),
            "callback_url": self.callback_url,
            "created_at": self.created_at,
            "request_id": self.request_id,
            "answer": self.answer,
            "origin": self.origin,
            "answered_prompts": list(self.answered_prompts),
            "status": status,
            "consumed": consumed,
        }


@attrs.frozen(kw_only=True)
class Report:
    """One thing a client told its caller about one input (for ``FakeLedger.audit``).

    Attributes:
        prompt: The input's prompt.
        task_id: The task id the caller was given (a ``Job``, an ``Outcome``, a journal row),
            or None when none was.
        uncertain: The caller was told the submit may have been charged without an id
            (``APIConnectionError(may_have_been_processed=True)``, a journal ``uncertain`` row).
        resubmit: The caller asked for this input to be submitted again whatever happened
            before (e.g. ``run_bulk(resubmit_uncertain=True)``): extra tasks are allowed.
    """

    prompt: str
    task_id: str | None = None
    uncertain: bool = False
    resubmit: bool = False


class FakeLedger:
    """Every task the fake created, in creation order; see the module docstring."""

    def __init__(self) -> None:
        self._entries: list[LedgerEntry] = []
        self._by_id: dict[str, LedgerEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[LedgerEntry]:
        return iter(list(self._entries))

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._by_id

    def record(self, entry: LedgerEntry) -> None:
        """Append a newly created task."""
        self._entries.append(entry)
        self._by_id[entry.task_id] = entry

    def answered_again(self, task_id: str, prompt: str) -> None:
        """Note that a submit of ``prompt`` was answered with the existing ``task_id``."""
        self._by_id[task_id].answered_prompts.append(prompt)

    def get(self, task_id: str) -> LedgerEntry | None:
        """The entry of ``task_id``, or None."""
        return self._by_id.get(task_id)

    def for_prompt(self, prompt: str) -> list[LedgerEntry]:
        """Every task created for ``prompt``, oldest first."""
        return [e for e in self._entries if e.prompt == prompt]

    def hidden(self) -> list[LedgerEntry]:
        """Tasks whose creating submit was NOT answered with their id (a fault hid it)."""
        return [e for e in self._entries if e.origin == "submit" and e.answer != "ok"]

    def audit(self, reports: Iterable[Report]) -> list[str]:
        """Check the money invariants against what a client reported; return the violations.

        Tasks made by ``create_task`` (another client) are not audited.

        Args:
            reports: Everything the caller was told, one ``Report`` per input (repeats of the
                same ``(prompt, task_id)`` count once).

        Returns:
            One human-readable line per violation; empty when the invariants hold.
        """
        unique = set(reports)
        reported_ids = {r.task_id for r in unique if r.task_id is not None}
        uncertain = Counter(r.prompt for r in unique if r.uncertain and r.task_id is None)
        resubmit = {r.prompt for r in unique if r.resubmit}
        inputs = Counter(r.prompt for r in unique)
        violations: list[str] = []
        created: Counter[str] = Counter()
        for entry in self._entries:
            if entry.origin != "submit":
                continue
            created[entry.prompt] += 1
            if entry.task_id in reported_ids:
                continue
            if uncertain[entry.prompt] > 0:
                uncertain[entry.prompt] -= 1
                continue
            if entry.prompt in resubmit:
                continue
            violations.append(
                f"task {entry.task_id} (prompt {entry.prompt!r}, submit answered "
                f"{entry.answer}) was created but never reported to the caller"
            )
        for prompt, n in sorted(created.items()):
            if n > max(1, inputs[prompt]) and prompt not in resubmit:
                violations.append(
                    f"prompt {prompt!r}: {n} tasks created for {inputs[prompt]} reported input(s)"
                )
        for report in sorted(unique, key=lambda r: (r.prompt, r.task_id or "")):
            if report.task_id is None:
                continue
            found = self._by_id.get(report.task_id)
            if found is None:
                violations.append(
                    f"prompt {report.prompt!r} was reported with task {report.task_id}, "
                    "which the server never created"
                )
            elif report.prompt != found.prompt and report.prompt not in found.answered_prompts:
                violations.append(
                    f"prompt {report.prompt!r} was reported with task {report.task_id}, "
                    f"created for {found.prompt!r}"
                )
        return violations
