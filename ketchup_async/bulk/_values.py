"""The values of a bulk run: its inputs, its options, its summary (frozen attrs classes)."""

from __future__ import annotations

import os
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from .._budget import CreditBudget
from .._models import GenerateRequest
from ..errors import ValidationError
from ._progress import BulkProgress

__all__ = ["BulkInput", "BulkOptions", "BulkSummary"]


def _positive_int(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(attribute.name, f"must be a positive integer, got {value!r}")


def _positive_number(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValidationError(attribute.name, f"must be a positive number, got {value!r}")


def _flag(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise ValidationError(attribute.name, f"must be True or False, got {value!r}")


def _progress(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        raise ValidationError(attribute.name, f"must be a callable or None, got {value!r}")


def _callback_url(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        GenerateRequest("-", callback_url=value)  # type: ignore[arg-type]  # validates it


def _max_credits(value: object) -> Decimal | None:
    return None if value is None else CreditBudget(value).limit


def _price(value: object) -> Decimal | None:
    return None if value is None else CreditBudget(0, price=value).price


def _runs(value: object) -> tuple[Path, ...]:
    if isinstance(value, (str, bytes, os.PathLike)) or not isinstance(value, (list, tuple)):
        raise ValidationError("reuse", f"must be a list of run directories, got {value!r}")
    for item in value:
        if not isinstance(item, (str, os.PathLike)) or not str(item):
            raise ValidationError("reuse", f"must hold directory paths, got {item!r}")
    return tuple(Path(item) for item in value)


def _mask(url: str | None) -> str:
    return "None" if url is None else "'<set>'"


@attrs.frozen(kw_only=True)
class BulkOptions:
    """How a bulk run runs (``run_bulk`` and ``resume_bulk`` take the same options).

    Attributes:
        concurrency: Jobs in flight (submitted, not finished).
        download: Download each result's images (``{id}.png``, ``{id}-2.png``...).
        download_concurrency: Results downloading at once.
        resubmit_uncertain: Submit again inputs whose earlier submit may or may not have
            been charged (they may then be paid twice).
        progress: Called with a ``BulkProgress`` at most every ``progress_interval`` seconds.
        progress_interval: Seconds between two progress calls.
        callback_url: The webhook URL every submit carries (None: results are polled). It is
            run configuration, never journaled: its secret token stays out of the files on
            disk, so give it again to ``resume_bulk``.
        max_credits: Never submit a job that could push the journal's spend (credits consumed
            by finished jobs, earlier runs included, plus a reservation per job in flight)
            past this; inputs left unsent stay ``queued`` with the reason ``budget`` (None: no
            limit). See ``CreditBudget``.
        price: Credits one job costs at most, used for reservations from the start (None:
            learn it per model from results; until then one job at a time).
        reuse: Directories of earlier runs whose successes are reused: an input whose request
            is identical (model, prompt, reference images) gets their files (checksums
            verified) instead of being submitted, and ends ``reused``.

    Raises:
        ValidationError: naming the bad option.
    """

    concurrency: int = attrs.field(default=128, validator=_positive_int)
    download: bool = attrs.field(default=True, validator=_flag)
    download_concurrency: int = attrs.field(default=8, validator=_positive_int)
    resubmit_uncertain: bool = attrs.field(default=False, validator=_flag)
    progress: Callable[[BulkProgress], None] | None = attrs.field(
        default=None, validator=_progress, eq=False
    )
    progress_interval: float = attrs.field(default=0.1, validator=_positive_number)
    callback_url: str | None = attrs.field(default=None, validator=_callback_url, repr=_mask)
    max_credits: Decimal | None = attrs.field(default=None, converter=_max_credits)
    price: Decimal | None = attrs.field(default=None, converter=_price)
    reuse: tuple[Path, ...] = attrs.field(default=(), converter=_runs)


@attrs.frozen
class BulkInput:
    """One input of a bulk run: a stable key (file names, manifest ``id``) and its request.

    Attributes:
        key: Unique within the run, e.g. a JSONL ``id`` or the input's line number.
        request: What to generate.
    """

    key: str
    request: GenerateRequest

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key or "\x00" in self.key:
            raise ValidationError("key", f"must be a non-empty string, got {self.key!r}")


@attrs.frozen
class BulkSummary:
    """How a bulk run ended (the whole journal, plus what this run did).

    Attributes:
        out_dir: The output directory.
        manifest: The manifest written at the end.
        total: Inputs in the journal.
        succeeded: Inputs whose task succeeded.
        failed: Inputs that failed (the task failed, or the submit was refused).
        reused: Inputs whose files were taken from a reused run (whole journal).
        uncertain: Inputs whose submit may or may not have been charged (not resubmitted).
        pending: Inputs not final yet (the run was interrupted): resume them.
        missing_files: Successes without all their files on record.
        submitted: Submits sent by this run.
        resumed: Tasks of an earlier run re-attached by this run.
        files_written: Files written by this run.
        queries: Task queries this run's client sent.
        consumed: Credits consumed by the whole journal (earlier runs included).
        elapsed: Seconds this run took.
        download: Whether files were downloaded.
        spent_before: Credits the journal had consumed before this run started.
        max_credits: The credit budget of this run (None: no limit).
        budget_reached: True when the budget kept inputs from being sent (they are
            ``queued`` with the reason ``budget``).
        reused_now: Inputs reused by this run.
        saved: Credits reuse saved (what the reused results' sources paid), whole journal.
    """

    out_dir: Path
    manifest: Path
    total: int
    succeeded: int
    failed: int
    uncertain: int
    pending: int
    missing_files: int
    submitted: int
    resumed: int
    files_written: int
    queries: int
    consumed: Decimal
    elapsed: float
    download: bool
    reused: int = 0
    spent_before: Decimal = Decimal(0)
    max_credits: Decimal | None = None
    budget_reached: bool = False
    reused_now: int = 0
    saved: Decimal = Decimal(0)

    @property
    def spent(self) -> Decimal:
        """Credits consumed during this run."""
        return self.consumed - self.spent_before

    @property
    def ok(self) -> bool:
        """True when every input succeeded or was reused (with its files, when downloading)."""
        done = self.succeeded + self.reused == self.total
        return done and not (self.download and self.missing_files)
