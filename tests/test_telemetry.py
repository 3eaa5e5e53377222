"""OpenTelemetry spans and metrics, against the fake server, with in-memory exporters."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import API_KEY, SCALE, make_client
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ketchup_async import KetchupClient, TaskFailedError, Telemetry
from ketchup_async.testing import FakeKetchupServer

pytestmark = pytest.mark.anyio

JOBS = 20
TOKEN = "tok-Zq8x3VbN1mP0aR7sLk2wYc"  # a webhook path token (never to be recorded)


def prompt(i: int) -> str:
    """A recognisable private prompt."""
    return f"secret prompt number {i} about a purple walrus"


class Otel:
    """An SDK tracer and meter provider with in-memory exporters."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def telemetry(self, **kwargs: Any) -> Telemetry:
        """A ``Telemetry`` reporting to these providers."""
        return Telemetry(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **kwargs
        )

    def finished(self) -> tuple[ReadableSpan, ...]:
        """The spans ended so far."""
        return tuple(self.spans.get_finished_spans())

    def metrics(self) -> dict[str, list[Any]]:
        """Data points by metric name."""
        points: dict[str, list[Any]] = {}
        data = self.reader.get_metrics_data()
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    points.setdefault(metric.name, []).extend(metric.data.data_points)
        return points


@pytest.fixture
def otel() -> Iterator[Otel]:
    """In-memory OpenTelemetry providers, shut down after the test."""
    providers = Otel()
    yield providers
    providers.tracer_provider.shutdown()
    providers.meter_provider.shutdown()


def total(points: list[Any], **attributes: object) -> float:
    """The sum of the data points whose attributes include ``attributes``."""
    return sum(
        p.value for p in points if all(p.attributes.get(k) == v for k, v in attributes.items())
    )


async def run_jobs(client: KetchupClient, callback_base: str) -> list[BaseException | None]:
    """Submit ``JOBS`` jobs (every fifth with a callback URL) and wait for each."""

    async def one(i: int) -> BaseException | None:
        callback = f"{callback_base}/{TOKEN}" if i % 5 == 0 else None
        job = await client.submit(prompt(i), callback_url=callback)
        try:
            await job.wait(60)
        except TaskFailedError as exc:
            return exc
        return None

    return await asyncio.gather(*(one(i) for i in range(JOBS)))


def attribute_values(spans: tuple[ReadableSpan, ...], otel: Otel) -> list[str]:
    """Every span, event, link and metric attribute value, as text."""
    values: list[str] = []
    for span in spans:
        values += [str(v) for v in (span.attributes or {}).values()]
        for link in span.links:
            values += [str(v) for v in (link.attributes or {}).values()]
        values.append(span.name)
    for points in otel.metrics().values():
        for point in points:
            values += [str(v) for v in point.attributes.values()]
    return values


async def test_twenty_jobs_report_spans_links_and_metrics(otel: Otel) -> None:
    """20 jobs with failures and 429s: spans per request and per job, links, metric values."""
    async with FakeKetchupServer(
        api_keys=(API_KEY,),
        time_scale=SCALE,
        seed=11,
        render_time=3.0,
        failure_rate=0.3,
        query_rate_limit=0.5,
    ) as server:
        async with make_client(server, telemetry=otel.telemetry()) as client:
            outcomes = await run_jobs(client, "http://127.0.0.1:9/ketchup/callback")
            stats = client.stats()
    failed = sum(1 for outcome in outcomes if outcome is not None)
    assert 0 < failed < JOBS
    assert server.stats.rate_limited > 0

    spans = otel.finished()
    jobs = [s for s in spans if s.name == "ketchup.job"]
    submits = [s for s in spans if s.name == "POST /api/image/gen"]
    queries = [s for s in spans if s.name == "GET /api/task/query"]
    assert len(jobs) == JOBS
    assert len(submits) == JOBS  # no submit was refused here
    assert len(queries) == stats.queries
    # Each job span is linked to its submit's span, carries its task id and its outcome.
    submit_by_task = {s.attributes["ketchup.task_id"]: s for s in submits}  # type: ignore[index]
    for job in jobs:
        task_id = job.attributes["ketchup.task_id"]  # type: ignore[index]
        (link,) = job.links
        assert link.context.span_id == submit_by_task[task_id].context.span_id
        assert job.start_time == submit_by_task[task_id].start_time
    outcomes_seen = [job.attributes["ketchup.job.outcome"] for job in jobs]  # type: ignore[index]
    assert outcomes_seen.count("failed") == failed
    # Query spans are children of their job's span; HTTP semantic conventions are followed.
    job_by_task = {j.attributes["ketchup.task_id"]: j for j in jobs}  # type: ignore[index]
    for query in queries:
        attributes = query.attributes or {}
        job = job_by_task[attributes["ketchup.task_id"]]
        assert query.parent is not None
        assert query.parent.span_id == job.context.span_id
        assert attributes["http.request.method"] == "GET"
        assert attributes["server.address"] == "127.0.0.1"
        assert attributes["server.port"] == urlsplit(server.base_url).port
        assert attributes["http.response.status_code"] in (200, 429)
    limited = [q for q in queries if (q.attributes or {})["http.response.status_code"] == 429]
    assert limited
    assert all((q.attributes or {})["error.type"] == "429" for q in limited)

    points = otel.metrics()
    assert total(points["ketchup.jobs.pending"]) == 0
    assert total(points["ketchup.queries"]) == stats.queries
    assert total(points["ketchup.queries"], **{"ketchup.query.outcome": "rate_limited"}) == len(
        limited
    )
    assert total(points["ketchup.rate_limited"]) == stats.rate_limited == len(limited)
    durations = points["ketchup.job.duration"]
    assert sum(p.count for p in durations) == JOBS
    assert sum(p.count for p in durations if p.attributes["ketchup.job.outcome"] == "failed") == (
        failed
    )
    assert sum(p.count for p in points["ketchup.job.resolution_lag"]) == JOBS
    assert total(points["ketchup.credits.consumed"]) == float(stats.credits_consumed) > 0

    # Never the key, the webhook token or a prompt.
    values = attribute_values(spans, otel)
    for secret in (API_KEY, TOKEN, "walrus"):
        assert not any(secret in value for value in values), secret


async def test_prompts_are_recorded_only_when_asked(otel: Otel, server: FakeKetchupServer) -> None:
    """``record_prompts=True`` puts the prompt on the job span; the default does not."""
    for record in (False, True):
        async with make_client(server, telemetry=otel.telemetry(record_prompts=record)) as client:
            await (await client.submit(prompt(record))).wait(30)
    first, second = [s for s in otel.finished() if s.name == "ketchup.job"]
    assert "ketchup.prompt" not in (first.attributes or {})
    assert (second.attributes or {})["ketchup.prompt"] == prompt(True)


async def test_disabled_telemetry_reports_nothing(otel: Otel, server: FakeKetchupServer) -> None:
    """``Telemetry(enabled=False)``: no span and no metric, while ``stats()`` still counts."""
    async with make_client(server, telemetry=otel.telemetry(enabled=False)) as client:
        await (await client.submit("a red bicycle")).wait(30)
        assert client.stats().succeeded == 1
    assert otel.finished() == ()
    data = otel.reader.get_metrics_data()
    assert data is None or not data.resource_metrics


async def test_a_download_gets_a_client_span(
    otel: Otel, server: FakeKetchupServer, tmp_path: Any
) -> None:
    """A URL result's download is one CLIENT span without the URL's query string."""
    async with make_client(server, telemetry=otel.telemetry()) as client:
        result = await client.generate("a red bicycle", timeout=30)
        await client.download(result.images[0], tmp_path / "out")
    (span,) = [
        s
        for s in otel.finished()
        if s.attributes and s.attributes.get("ketchup.operation") == "download"
    ]
    assert span.name == "GET"
    assert (span.attributes or {})["http.response.status_code"] == 200
    assert "?" not in str((span.attributes or {})["url.full"])


def test_telemetry_is_validated() -> None:
    """A wrong ``telemetry`` argument is a ``ValidationError`` naming the field."""
    from ketchup_async import ValidationError

    with pytest.raises(ValidationError, match="telemetry"):
        KetchupClient(api_key=API_KEY, telemetry={"enabled": True})  # type: ignore[arg-type]
