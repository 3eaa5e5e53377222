"""Progress and summaries: a rich live bar on a terminal, plain periodic lines otherwise.

Both reporters also watch the API's health (``_health``): a failed-request count in the
progress line, and one warning line on stderr when the API stops answering.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from .. import ClientStats
from ..bulk import BulkProgress, BulkSummary, State
from ._health import ApiHealth

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "PlainProgress",
    "RichProgress",
    "format_duration",
    "format_line",
    "make_reporter",
    "print_summary",
]


def format_duration(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``2h03m``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _credits(value: Decimal) -> str:
    return f"{value:,.2f}"


def _spend(p: BulkProgress) -> str:
    """``1.50 credits``, or ``1.50/10.00 credits`` under a budget."""
    budget = "" if p.max_credits is None else f"/{_credits(p.max_credits)}"
    return f"{_credits(p.consumed)}{budget} credits"


def _states(p: BulkProgress) -> str:
    c = p.counts
    text = f"ok {c[State.SUCCEEDED]}  failed {c[State.FAILED]}  uncertain {c[State.UNCERTAIN]}"
    return f"{text}  in flight {p.in_flight}"


def format_line(p: BulkProgress, errors: int = 0) -> str:
    """One plain progress line (with the failed-request count when there is one)."""
    line = (
        f"[{p.elapsed:7.1f}s] {p.done}/{p.total} done | {_states(p)} | "
        f"{_spend(p)} | {p.rate:.1f}/s | ETA {format_duration(p.eta)}"
    )
    return f"{line} | {_errors(errors)}" if errors else line


def _errors(count: int) -> str:
    return f"{count:,} failed request{'' if count == 1 else 's'}"


def _count(name: str, value: int, style: str) -> str:
    """``failed 3`` in ``style`` when it is not zero (rich markup)."""
    return f"[{style}]{name} {value}[/]" if value else f"{name} 0"


def _uncertain(value: int) -> str:
    """`` · uncertain 3`` (rich markup), shown only when there are some."""
    return f" · [yellow]uncertain {value}[/]" if value else ""


def _stopped_by_user(exc_type: type[BaseException] | None) -> bool:
    """True when the run ended normally or was interrupted (the last line is worth showing)."""
    return exc_type is None or issubclass(exc_type, (asyncio.CancelledError, KeyboardInterrupt))


class _Watch:
    """What both reporters share: the API's health, and its warning lines on stderr."""

    def __init__(self, health: ApiHealth, out_dir: str, clock: Callable[[], float]) -> None:
        self.health = health
        self.out_dir = out_dir
        self.clock = clock

    def check(self, progress: BulkProgress) -> None:
        if self.health.on_progress(progress):
            print("ketchup: the API answers again", file=sys.stderr, flush=True)
        warning = self.health.warning(self.clock(), self.out_dir)
        if warning is not None:
            print(f"ketchup: warning: {warning}", file=sys.stderr, flush=True)


class PlainProgress:
    """Prints a progress line every ``interval`` seconds and, unless the run failed, the last."""

    def __init__(
        self,
        stream: IO[str],
        *,
        health: ApiHealth,
        out_dir: str,
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.interval = interval
        self.clock = clock
        self._watch = _Watch(health, out_dir, clock)
        self._last: float | None = None
        self._latest: BulkProgress | None = None
        self._printed: BulkProgress | None = None

    def __call__(self, progress: BulkProgress) -> None:
        """Remember ``progress``; print it if the last line is ``interval`` old."""
        self._latest = progress
        self._watch.check(progress)
        now = self.clock()
        if self._last is None:
            self._last = now  # the first line comes one interval in
        elif now - self._last >= self.interval:
            self._last = now
            self._print(progress)

    def _print(self, progress: BulkProgress) -> None:
        if progress is self._printed:
            return
        self._printed = progress
        line = format_line(progress, self._watch.health.errors)
        print(line, file=self.stream, flush=True)

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        if self._latest is not None and _stopped_by_user(exc_type):
            self._print(self._latest)


class RichProgress:
    """A live rich progress bar: done/total, states, credits, rate, ETA and failed requests."""

    def __init__(
        self,
        console: Console,
        *,
        health: ApiHealth,
        out_dir: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._watch = _Watch(health, out_dir, clock)
        self._progress = Progress(
            BarColumn(bar_width=12),
            MofNCompleteColumn(),
            TextColumn(
                "[green]ok {task.fields[ok]}[/] · {task.fields[failed]} · "
                "in flight {task.fields[flight]}{task.fields[uncertain]}"
            ),
            TextColumn("│ {task.fields[credits]} │ {task.fields[rate]}/s │ ETA {task.fields[eta]}"),
            TextColumn("{task.fields[errors]}"),
            console=console,
            transient=False,
            refresh_per_second=8,
        )
        self._task = self._progress.add_task(
            "run",
            total=None,
            ok=0,
            failed="failed 0",
            uncertain="",
            flight=0,
            credits="0.00 credits",
            rate="0.0",
            eta="?",
            errors="",
        )

    def __call__(self, progress: BulkProgress) -> None:
        """Update the bar."""
        self._watch.check(progress)
        c = progress.counts
        errors = self._watch.health.errors
        self._progress.update(
            self._task,
            total=progress.total,
            completed=progress.done,
            ok=c[State.SUCCEEDED],
            failed=_count("failed", c[State.FAILED], "red"),
            uncertain=_uncertain(c[State.UNCERTAIN]),
            flight=progress.in_flight,
            credits=_spend(progress),
            rate=f"{progress.rate:.1f}",
            eta=format_duration(progress.eta),
            errors=f"│ [red]{_errors(errors)}[/]" if errors else "",
        )

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        if not _stopped_by_user(exc_type):
            self._progress.live.transient = True  # the run failed: its error says it all
        self._progress.stop()


def make_reporter(
    console: Console, stream: IO[str], *, health: ApiHealth, out_dir: str
) -> RichProgress | PlainProgress:
    """A rich bar when ``stream`` is a terminal, else plain lines every 2 s."""
    if console.is_terminal and stream.isatty():
        return RichProgress(console, health=health, out_dir=out_dir)
    return PlainProgress(stream, health=health, out_dir=out_dir)


def _rows(summary: BulkSummary) -> list[tuple[str, str]]:
    jobs = summary.submitted + summary.resumed
    rows = [
        ("inputs", f"{summary.total:,}"),
        ("succeeded", f"{summary.succeeded:,}"),
        ("failed", f"{summary.failed:,}"),
        ("uncertain", f"{summary.uncertain:,}"),
        ("not finished", f"{summary.pending:,}"),
    ]
    if summary.download:
        rows.append(("files written", f"{summary.files_written:,}"))
        rows.append(("files missing", f"{summary.missing_files:,}"))
    rows += [
        ("submitted (this run)", f"{summary.submitted:,}"),
        ("re-attached (this run)", f"{summary.resumed:,}"),
        ("queries per job", f"{summary.queries / jobs:.2f}" if jobs else "-"),
        ("credits consumed", _credits(summary.consumed)),
        *_spend_rows(summary),
        ("wall time", f"{summary.elapsed:.1f}s"),
        ("throughput", f"{jobs / summary.elapsed:.1f} jobs/s" if summary.elapsed > 0 else "-"),
        ("manifest", str(summary.manifest)),
    ]
    return rows


def _spend_rows(summary: BulkSummary) -> list[tuple[str, str]]:
    rows = []
    if summary.max_credits is not None:
        rows.append(("credit budget", _credits(summary.max_credits)))
    if summary.spent_before:  # earlier runs' spend counts against the budget too
        rows.append(("credits spent before this run", _credits(summary.spent_before)))
    rows.append(("credits spent (this run)", _credits(summary.spent)))
    if summary.reused:
        rows.append(("reused", f"{summary.reused:,}"))
        rows.append(("credits saved by reuse", _credits(summary.saved)))
    return rows


def _client_rows(stats: ClientStats) -> list[tuple[str, str]]:
    budget = "-" if stats.query_budget is None else f"{stats.query_budget:.1f}/s"
    return [
        ("429 answers", f"{stats.rate_limited:,}"),
        ("query budget (now)", budget),
        (
            "render time p50 / p90",
            f"{stats.render_time_median:.1f}s / {stats.render_time_p90:.1f}s",
        ),
    ]


def print_summary(
    console: Console,
    summary: BulkSummary,
    *,
    title: str = "Summary",
    client: ClientStats | None = None,
) -> None:
    """Print the end-of-run table (with ``client``: the client's own figures too, for ``-v``)."""
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    styles: dict[str, Any] = {"failed": "red", "uncertain": "yellow", "files missing": "red"}
    for name, value in _rows(summary) + ([] if client is None else _client_rows(client)):
        zero = value in ("0", "-")
        table.add_row(name, value, style=None if zero else styles.get(name))
    console.print(table)
