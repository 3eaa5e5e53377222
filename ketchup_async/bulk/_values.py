"""The values of a bulk run: its inputs, its options, its summary (frozen attrs classes)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

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
        uncertain: Inputs whose submit may or may not have been charged (not resubmitted).
        pending: Inputs not final yet (the run was interrupted): resume them.
        missing_files: Successes without all their files on record.
        submitted: Submits sent by this run.
        resumed: Tasks of an earlier run re-attached by this run.
        files_written: Files written by this run.
        queries: Task queries this run's client sent.
        consumed: Credits consumed by the whole journal.
        elapsed: Seconds this run took.
        download: Whether files were downloaded.
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

    @property
    def ok(self) -> bool:
        """True when every input succeeded (and has its files, when downloading)."""
        return self.succeeded == self.total and not (self.download and self.missing_files)
