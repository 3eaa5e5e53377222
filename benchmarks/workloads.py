"""The workloads and the rows (client variants) run against each.

Render times are log-normal (median 8 API seconds, sigma 0.5). Each workload runs at its own
time scale (real seconds per API second), chosen so that the fake server and the naive client
are not CPU-bound on a small machine: every figure is reported in API (un-scaled) seconds,
and a run that saturates the machine measures the machine, not the client.
"""

from __future__ import annotations

import attrs

__all__ = [
    "LARGE_RATE",
    "SWEEP_BACKOFF",
    "SWEEP_QUANTILE",
    "Row",
    "Workload",
    "workloads",
]

#: The labelled "larger budget" rows: one query per second per pending job of W1 (the
#: provider's per-job ceiling), the budget the naive client takes for itself.
LARGE_RATE = 2000.0
#: The ``PollPolicy`` sweep (W1, with ``LARGE_RATE`` so the budget does not bind).
SWEEP_QUANTILE = (0.2, 0.35, 0.5)
SWEEP_BACKOFF = (1.1, 1.25, 1.5)
_DEFAULT_QUANTILE = 0.35
_DEFAULT_BACKOFF = 1.25
_SWEEP = tuple((q, b) for q in SWEEP_QUANTILE for b in SWEEP_BACKOFF)


@attrs.frozen(kw_only=True)
class Row:
    """One client variant with its options, as a table row or a chart point.

    Attributes:
        key: Short unique id (file names, JSON).
        label: What the table shows.
        variant: ``ketchup``, ``webhooks``, ``naive`` or ``threads``.
        rate: ``PollPolicy.rate`` override, API queries per second.
        first_poll_quantile: ``PollPolicy.first_poll_quantile`` override.
        backoff: ``PollPolicy.backoff`` override.
        sweep_only: Only a chart point of the sweep (not a table row).
    """

    key: str
    label: str
    variant: str
    rate: float | None = None
    first_poll_quantile: float | None = None
    backoff: float | None = None
    sweep_only: bool = False

    def flags(self) -> list[str]:
        """Command-line flags of ``benchmarks.run_variant`` for this row's options."""
        flags: list[str] = []
        for name in ("rate", "first_poll_quantile", "backoff"):
            value = getattr(self, name)
            if value is not None:
                flags += [f"--{name.replace('_', '-')}", repr(value)]
        return flags

    @property
    def in_sweep(self) -> bool:
        """Whether this row is a point of the ``PollPolicy`` sweep."""
        return self.variant == "ketchup" and self.rate == LARGE_RATE


@attrs.frozen(kw_only=True)
class Workload:
    """One workload: the server's configuration, the job count and the rows run against it.

    Attributes:
        key: ``W1`` ... ``W4``.
        title: A one-line description.
        jobs: Inputs submitted at once (W3: the largest pending count).
        scale: Real seconds per API second.
        server_args: Extra flags of the fake server (render times, rate limit...).
        rows: The client variants (W3: none, it runs the ``scale`` variant).
        pending: W3 only: the pending-job steps.
        queries: W3 only: poller queries measured per step.
        query_limit: The server's query limit, queries per API second (None: unlimited).
    """

    key: str
    title: str
    jobs: int
    scale: float
    server_args: tuple[str, ...]
    rows: tuple[Row, ...] = ()
    pending: tuple[int, ...] = ()
    queries: int = 0
    query_limit: float | None = None

    def all_server_args(self, seed: int) -> list[str]:
        """The fake server's full flag list for one run."""
        return ["--time-scale", repr(self.scale), "--seed", str(seed), *self.server_args]


def _variant_rows() -> list[Row]:
    """The side-by-side rows every rate workload runs (W1 adds the sweep)."""
    return [
        Row(key="ketchup", label="ketchup-async (default `PollPolicy()`)", variant="ketchup"),
        Row(
            key="ketchup-large",
            label=f"ketchup-async, `PollPolicy(rate={int(LARGE_RATE)})`",
            variant="ketchup",
            rate=LARGE_RATE,
        ),
        Row(key="webhooks", label="ketchup-async + webhooks", variant="webhooks"),
        Row(key="naive", label="naive asyncio (poll every 1 s)", variant="naive"),
        Row(key="threads", label="threads + requests (64 workers)", variant="threads"),
    ]


def _w1_rows(sweep: tuple[tuple[float, float], ...]) -> tuple[Row, ...]:
    rows = _variant_rows()
    for quantile, backoff in sweep:
        if (quantile, backoff) == (_DEFAULT_QUANTILE, _DEFAULT_BACKOFF):
            continue  # that point is the ketchup-large row
        rows.append(
            Row(
                key=f"sweep-q{quantile}-b{backoff}",
                label=f"rate={int(LARGE_RATE)}, q={quantile}, backoff={backoff}",
                variant="ketchup",
                rate=LARGE_RATE,
                first_poll_quantile=quantile,
                backoff=backoff,
                sweep_only=True,
            )
        )
    return tuple(rows)


def _w2_rows() -> tuple[Row, ...]:
    return tuple(_variant_rows())


_RENDER = ("--render-time", "8", "--render-sigma", "0.5")


def _w4_rows() -> tuple[Row, ...]:
    return (
        Row(key="ketchup", label="ketchup-async (default policies)", variant="ketchup"),
        Row(key="naive", label="naive asyncio (resubmit every 1 s)", variant="naive"),
    )


def workloads(*, smoke: bool = False, sweep: bool = True) -> tuple[Workload, ...]:
    """The four workloads (tiny job counts and a fast clock when ``smoke``)."""
    w1_jobs, w2_jobs, w4_jobs = (40, 20, 40) if smoke else (2000, 1000, 2000)
    return (
        Workload(
            key="W1",
            title=f"unconstrained: {w1_jobs:,} jobs submitted at once",
            jobs=w1_jobs,
            scale=0.02 if smoke else 0.5,
            server_args=_RENDER,
            rows=_w1_rows(((0.5, 1.5),) if smoke else _SWEEP if sweep else ()),
        ),
        Workload(
            key="W2",
            title=f"rate-limited: {w2_jobs:,} jobs at once, the server allows 10 queries/s",
            jobs=w2_jobs,
            scale=0.02 if smoke else 0.25,
            server_args=(*_RENDER, "--query-rate-limit", "10", "--retry-after", "1"),
            rows=_w2_rows(),
            query_limit=10.0,
        ),
        Workload(
            key="W3",
            title="scale: jobs pending at once (nothing finishes), client memory and CPU",
            jobs=2000 if smoke else 100_000,
            scale=0.05,
            server_args=("--render-time", "10000", "--render-sigma", "0"),
            pending=(200, 2000) if smoke else (1000, 10_000, 100_000),
            queries=100 if smoke else 1000,
        ),
        Workload(
            key="W4",
            title=f"submit-limited: {w4_jobs:,} jobs at once, the server accepts 10 submits/s",
            jobs=w4_jobs,
            scale=0.02 if smoke else 0.1,
            server_args=(*_RENDER, "--submit-rate-limit", "10", "--retry-after", "1"),
            rows=_w4_rows(),
        ),
    )
