"""Observability in one place: OpenTelemetry spans and metrics, and ``client.stats()``.

The core reports through a ``Recorder`` (one per client) and a handful of calls:
``http_call`` (a span per HTTP request: submit, query, download), ``job_started``,
``job_resolved`` and ``job_ended`` (a span per job, linked to its submit's span, and the job
metrics) and ``query_done`` (queries by outcome). The recorder keeps plain counters for
``ClientStats`` whatever happens, and uses only ``opentelemetry-api``, only if it is installed
(``ketchup-async[otel]``): without it, or without an SDK configured, those calls cost a few
attribute look-ups.

Attributes never carry the API key (it only travels in a header, never recorded), a webhook
token (a callback URL is never recorded, only whether there is one) or a prompt (unless
``Telemetry(record_prompts=True)``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from decimal import Decimal
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import attrs

from . import _validate
from ._models import GenerateRequest, GenerationResult, PollPolicy
from ._stats import ClientStats, Counts, PollerFigures, snapshot
from ._version import __version__

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, trace
except ImportError:  # the ``otel`` extra is not installed: counters only
    otel_context = None  # type: ignore[assignment]
    metrics = None  # type: ignore[assignment]
    trace = None  # type: ignore[assignment]

__all__ = ["HttpCall", "JobTrace", "Recorder", "Telemetry"]

T = TypeVar("T")

SCOPE = "ketchup_async"
TASK_ID = "ketchup.task_id"
OPERATION = "ketchup.operation"
QUERY_OUTCOME = "ketchup.query.outcome"
JOB_OUTCOME = "ketchup.job.outcome"
_MAX_SUBMIT_LINKS = 4096  # submit spans waiting for their job span (popped at once, normally)


@attrs.frozen(kw_only=True)
class Telemetry:
    """How a client reports to OpenTelemetry (``KetchupClient(telemetry=...)``).

    Without ``opentelemetry-api`` installed (``pip install 'ketchup-async[otel]'``) or without
    an OpenTelemetry SDK configured, nothing is reported and nothing is slowed down.

    Attributes:
        enabled: False: no spans and no metrics (``client.stats()`` counts all the same).
        record_prompts: Put each job's prompt on its span (``ketchup.prompt``). Off by
            default: prompts may be private.
        tracer_provider: The ``TracerProvider`` for spans (default: the global one).
        meter_provider: The ``MeterProvider`` for metrics (default: the global one).
    """

    enabled: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    record_prompts: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    tracer_provider: Any = attrs.field(default=None, repr=False)
    meter_provider: Any = attrs.field(default=None, repr=False)


@attrs.define(slots=True, eq=False)
class JobTrace:
    """What the recorder keeps for one tracked job (held by the poller's record of it)."""

    task_id: str
    started: float
    span: Any = None
    lag: float | None = None
    ended: bool = False


class HttpCall:
    """One HTTP request being made: a context manager around it, ending its span.

    The transport sets ``status`` once the response arrived; ``done(data)`` notes the task id
    of a submit's answer.
    """

    __slots__ = (
        "_recorder",
        "_token",
        "failure",
        "operation",
        "span",
        "started_ns",
        "status",
        "task_id",
    )

    def __init__(self, recorder: Recorder, operation: str, span: Any, task_id: str | None) -> None:
        self._recorder = recorder
        self._token: object = None
        self.operation = operation
        self.span = span
        self.status: int | None = None
        self.failure: str | None = None  # no answer: why (the exception's class name)
        self.task_id = task_id
        self.started_ns = 0

    def __enter__(self) -> HttpCall:
        if self.span is not None and self.span.is_recording():
            self._token = otel_context.attach(trace.set_span_in_context(self.span))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
        self._recorder.end_call(self, exc)

    @property
    def recording(self) -> bool:
        """Whether a span records this request (else noting details is wasted work)."""
        return self.span is not None and bool(self.span.is_recording())

    def done(self, data: T) -> T:
        """Note the task id of a submit's answer; return ``data`` unchanged."""
        if self.operation == "submit" and isinstance(data, Mapping):
            task_id = data.get("task_id")
            if isinstance(task_id, str):
                self.task_id = task_id
        return data


def _origin(url: str) -> tuple[str, str, int]:
    """``scheme://host[:port]`` without any user info, the host and the port of ``url``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    shown = f"[{host}]" if ":" in host else host
    netloc = shown if parts.port is None else f"{shown}:{parts.port}"
    return f"{parts.scheme}://{netloc}", host, port


class Recorder:
    """One client's instrumentation: plain counters always, OpenTelemetry when available.

    Args:
        config: The client's ``Telemetry``.
        base_url: The API root (for ``server.address`` and ``server.port``).
    """

    def __init__(self, config: Telemetry, base_url: str) -> None:
        self.config = config
        self._origin, self._host, self._port = _origin(base_url)
        self.counts = Counts()
        self._submits: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._jobs: dict[str, Any] = {}  # live, recording job spans: parents of their queries
        self._tracer: Any = None
        self._meter: Any = None
        if trace is None or not config.enabled:
            return
        self._tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=config.tracer_provider)
        meter = metrics.get_meter(SCOPE, __version__, meter_provider=config.meter_provider)
        self._meter = meter
        self._pending = meter.create_up_down_counter(
            "ketchup.jobs.pending", unit="{job}", description="Jobs being watched"
        )
        self._queries = meter.create_counter(
            "ketchup.queries", unit="{query}", description="Task queries by outcome"
        )
        self._429s = meter.create_counter(
            "ketchup.rate_limited", unit="{response}", description="HTTP 429 answers"
        )
        self._duration = meter.create_histogram(
            "ketchup.job.duration", unit="s", description="From the submit's answer to the end"
        )
        self._lag = meter.create_histogram(
            "ketchup.job.resolution_lag",
            unit="s",
            description="At most this long between a task finishing and its job resolving",
        )
        self._credits = meter.create_counter(
            "ketchup.credits.consumed", unit="{credit}", description="Credits the API reported"
        )

    @classmethod
    def off(cls) -> Recorder:
        """A recorder that reports to nothing (counters only)."""
        return cls(Telemetry(enabled=False), "")

    @classmethod
    def for_client(cls, config: object, base_url: str) -> Recorder:
        """The recorder of a client given ``telemetry=config`` (None: the default).

        Raises:
            ValidationError: ``config`` is not a ``Telemetry``.
        """
        _validate.check_type(
            config, Telemetry, field="telemetry", what="a Telemetry", optional=True
        )
        return cls(config if isinstance(config, Telemetry) else Telemetry(), base_url)

    # -- HTTP requests ----------------------------------------------------------------------

    def http_call(
        self,
        method: str,
        path: str,
        attempt: int,
        params: Mapping[str, str] | None = None,
    ) -> HttpCall:
        """A span for one API request (one attempt): a submit (POST) or a query (GET)."""
        operation = "submit" if method == "POST" else "query"
        task_id = None if params is None else params.get("task_id")
        return self._call(
            operation, method, path, self._origin, self._host, self._port, attempt, task_id
        )

    def download_call(self, url: str, attempt: int) -> HttpCall:
        """A span for one image download request (query string and fragment not recorded)."""
        if self._tracer is None:
            return HttpCall(self, "download", None, None)
        origin, host, port = _origin(url)
        path = urlsplit(url).path
        return self._call("download", "GET", path, origin, host, port, attempt, None)

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        origin: str,
        host: str,
        port: int,
        attempt: int,
        task_id: str | None,
    ) -> HttpCall:
        tracer = self._tracer
        if tracer is None:
            return HttpCall(self, operation, None, task_id)
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "server.address": host,
            "server.port": port,
            "url.full": origin + path,
            OPERATION: operation,
        }
        if attempt:
            attributes["http.request.resend_count"] = attempt
        if task_id is not None:
            attributes[TASK_ID] = task_id
        job = self._jobs.get(task_id) if task_id is not None else None
        parent = trace.set_span_in_context(job) if job is not None else None
        name = method if operation == "download" else f"{method} {path}"
        call = HttpCall(self, operation, None, task_id)
        call.started_ns = time.time_ns()
        call.span = tracer.start_span(
            name,
            context=parent,
            kind=trace.SpanKind.CLIENT,
            attributes=attributes,
            start_time=call.started_ns,
        )
        return call

    def end_call(self, call: HttpCall, exc: BaseException | None) -> None:
        """End ``call``'s span (``exc``: what it raised; the transport's wrapper is unwrapped)."""
        error = None if exc is None else getattr(exc, "error", exc)
        status = call.status
        failure = call.failure if error is None else type(error).__name__
        if status is None and error is not None:
            code = getattr(error, "status_code", None)
            status = code if isinstance(code, int) else None
        if status == 429:
            self.counts.rate_limited += 1
            if self._meter is not None:
                self._429s.add(1, {OPERATION: call.operation})
        span = call.span
        if span is None:
            return
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if call.task_id is not None:
            span.set_attribute(TASK_ID, call.task_id)
        if failure is not None or (status is not None and status >= 400):
            failed = status is not None and status >= 400
            span.set_attribute("error.type", str(status) if failed else str(failure))
            span.set_status(trace.StatusCode.ERROR)
        recording = span.is_recording()
        span.end()
        if recording and call.operation == "submit" and call.task_id is not None:
            self._submits[call.task_id] = (span.get_span_context(), call.started_ns)
            if len(self._submits) > _MAX_SUBMIT_LINKS:
                self._submits.popitem(last=False)

    # -- jobs -------------------------------------------------------------------------------

    def job_started(
        self, task_id: str, request: GenerateRequest | None, now: float, *, resumed: bool
    ) -> JobTrace:
        """A job is tracked from ``now``: its span starts (at its submit's start, linked)."""
        if resumed:
            self.counts.tracked += 1
        else:
            self.counts.submitted += 1
        job = JobTrace(task_id, now)
        if self._tracer is None:
            return job
        self._pending.add(1)
        submit = self._submits.pop(task_id, None)
        attributes: dict[str, Any] = {TASK_ID: task_id, "ketchup.job.resumed": resumed}
        if request is not None:
            if request.model is not None:
                attributes["ketchup.model"] = request.model
            attributes["ketchup.images"] = len(request.images)
            attributes["ketchup.has_callback"] = request.callback_url is not None
            if self.config.record_prompts:
                attributes["ketchup.prompt"] = request.prompt
        job.span = self._tracer.start_span(
            "ketchup.job",
            links=[] if submit is None else [trace.Link(submit[0])],
            start_time=None if submit is None else submit[1],
            attributes=attributes,
        )
        if job.span.is_recording():
            self._jobs[task_id] = job.span
        return job

    def job_resolved(
        self, job: JobTrace | None, now: float, last_running: float | None, exact: bool
    ) -> None:
        """The task was seen final at ``now`` (``exact``: told by a webhook as it happened).

        Its resolution lag is at most the time since a query last saw it running (or since
        the submit); a webhook's is taken as zero.
        """
        if job is None:
            return
        since = job.started if last_running is None else max(job.started, last_running)
        job.lag = 0.0 if exact else max(0.0, now - since)

    def job_ended(self, job: JobTrace | None, outcome: object, now: float) -> None:
        """The job ended: a ``GenerationResult``, an exception, or None when cancelled."""
        if job is None or job.ended:
            return
        job.ended = True
        consumed = getattr(outcome, "consumed", None)
        if outcome is None:
            kind = "cancelled"
            self.counts.cancelled += 1
        elif isinstance(outcome, GenerationResult):
            kind = "succeeded"
            self.counts.succeeded += 1
        else:
            kind = "failed"
            self.counts.failed += 1
        credits = consumed if isinstance(consumed, Decimal) and consumed.is_finite() else None
        if credits is not None:
            self.counts.credits += credits
        if self._meter is None:
            return
        self._pending.add(-1)
        self._duration.record(max(0.0, now - job.started), {JOB_OUTCOME: kind})
        if job.lag is not None:
            self._lag.record(job.lag)
        if credits is not None:
            self._credits.add(float(credits))
        span = job.span
        if span is None:
            return
        self._jobs.pop(job.task_id, None)
        span.set_attribute(JOB_OUTCOME, kind)
        if credits is not None:
            span.set_attribute("ketchup.credits", float(credits))
        if kind == "failed":
            span.set_attribute("error.type", type(outcome).__name__)
            span.set_status(trace.StatusCode.ERROR)
        span.end()

    def query_done(self, outcome: str) -> None:
        """One poller query ended with ``outcome`` (the poller's verdict: running, retry...)."""
        if self._meter is not None:
            self._queries.add(1, {QUERY_OUTCOME: outcome})

    # -- snapshot ---------------------------------------------------------------------------

    def stats(self, poller: PollerFigures | None, policy: PollPolicy) -> ClientStats:
        """A ``ClientStats`` from these counters and the poller's figures (if it started)."""
        return snapshot(self.counts, poller, policy)
