"""Tests of durable bulk runs (``run_bulk`` / ``resume_bulk``) against the fake server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ketchup_async import (
    AuthenticationError,
    GenerateRequest,
    KetchupClient,
    PollPolicy,
    RetryPolicy,
)
from ketchup_async.bulk._journal import Journal, journal_path
from ketchup_async.bulk._run import (
    BulkError,
    BulkInput,
    BulkProgress,
    request_json,
    resume_bulk,
    run_bulk,
)
from ketchup_async.bulk._states import State
from ketchup_async.testing import FakeKetchupServer, Faults

from ..conftest import API_KEY, make_client

pytestmark = pytest.mark.anyio

FAST = 0.002  # real seconds per API second for the large runs


def _prompts(n: int, tag: str = "p") -> list[str]:
    return [f"{tag} prompt number {i}" for i in range(n)]


def _manifest(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _pngs(out: Path) -> list[Path]:
    return sorted(out.glob("*.png"))


def _submits(server: FakeKetchupServer) -> int:
    return sum(n for (endpoint, _), n in server.stats.requests.items() if endpoint == "submit")


@pytest.fixture
async def fast_server() -> AsyncIterator[FakeKetchupServer]:
    """A fake API at 1/500 time scale."""
    async with FakeKetchupServer(api_keys=(API_KEY,), time_scale=FAST, seed=3) as server:
        yield server


def _fast_client(server: FakeKetchupServer) -> KetchupClient:
    return make_client(server, polling=PollPolicy().scaled(FAST), retry=RetryPolicy().scaled(FAST))


async def _journal_with(out: Path, prompts: list[str], base_url: str) -> Journal:
    journal = await Journal.open(journal_path(out))
    await journal.set_meta("base_url", base_url)
    body = [
        (str(i + 1), request_json(GenerateRequest(p), default_model="google/gempix2"))
        for i, p in enumerate(prompts)
    ]
    await journal.add_inputs(body)
    return journal


async def test_a_thousand_prompts_become_files_and_manifest_lines(
    fast_server: FakeKetchupServer, tmp_path: Path
) -> None:
    """1,000 prompts: 1,000 manifest lines, a file per success, one task per prompt."""
    async with _fast_client(fast_server) as client:
        summary = await run_bulk(client, _prompts(1000), tmp_path, concurrency=200)
    assert summary.ok
    assert (summary.total, summary.succeeded, summary.submitted) == (
        1000,
        1000,
        1000,
    )
    lines = _manifest(tmp_path)
    assert len(lines) == 1000
    assert {line["status"] for line in lines} == {"succeeded"}
    assert all((tmp_path / str(line["files"][0])).is_file() for line in lines)  # type: ignore[index]
    assert set(fast_server.stats.created_per_prompt.values()) == {1}


async def test_running_again_sends_nothing(fast_server: FakeKetchupServer, tmp_path: Path) -> None:
    """A second identical run: no submit, no query, no download."""
    async with _fast_client(fast_server) as client:
        await run_bulk(client, _prompts(50), tmp_path)
        requests = sum(fast_server.stats.requests.values())
        again = await run_bulk(client, _prompts(50), tmp_path)
    assert again.ok
    assert (again.submitted, again.resumed, again.files_written) == (0, 0, 0)
    assert sum(fast_server.stats.requests.values()) == requests


async def test_resume_reattaches_submitted_tasks(server: FakeKetchupServer, tmp_path: Path) -> None:
    """Inputs whose task id was journaled are tracked, never submitted again."""
    prompts = _prompts(4)
    journal = await _journal_with(tmp_path, prompts, server.base_url)
    for seq in (1, 2):
        await journal.mark_submitting(seq)
        await journal.mark_submitted(seq, server.create_task(prompts[seq - 1]))
    await journal.close()
    async with make_client(server) as client:
        summary = await resume_bulk(client, tmp_path)
    assert summary.ok
    assert (summary.resumed, summary.submitted) == (2, 2)
    assert [server.stats.created_per_prompt[p] for p in prompts] == [1, 1, 1, 1]


async def test_an_interrupted_submit_is_left_uncertain(
    server: FakeKetchupServer, tmp_path: Path
) -> None:
    """An input that died in 'submitting' is uncertain after resume, and not submitted."""
    prompts = _prompts(2)
    journal = await _journal_with(tmp_path, prompts, server.base_url)
    await journal.mark_submitting(1)
    await journal.close()
    async with make_client(server) as client:
        summary = await resume_bulk(client, tmp_path)
    assert (summary.uncertain, summary.succeeded, summary.ok) == (1, 1, False)
    assert server.stats.created_per_prompt[prompts[0]] == 0
    assert _manifest(tmp_path)[0]["status"] == "uncertain"


async def test_resubmit_uncertain_submits_it_again(
    server: FakeKetchupServer, tmp_path: Path
) -> None:
    """With resubmit_uncertain, the uncertain input is submitted and succeeds."""
    prompts = _prompts(2)
    journal = await _journal_with(tmp_path, prompts, server.base_url)
    await journal.mark_submitting(1)
    await journal.mark_uncertain(1, "timed out")
    await journal.close()
    async with make_client(server) as client:
        summary = await resume_bulk(client, tmp_path, resubmit_uncertain=True)
    assert summary.ok
    assert summary.submitted == 2
    assert server.stats.created_per_prompt[prompts[0]] == 1


async def test_a_missing_file_is_downloaded_again(
    server: FakeKetchupServer, tmp_path: Path
) -> None:
    """A success whose file was deleted is downloaded on resume, without a new submit."""
    async with make_client(server) as client:
        await run_bulk(client, _prompts(3), tmp_path)
        (tmp_path / "2.png").unlink()
        summary = await resume_bulk(client, tmp_path)
    assert summary.ok
    assert (summary.submitted, summary.files_written) == (0, 1)
    assert (tmp_path / "2.png").is_file()


async def test_a_failed_task_is_final_with_its_reason(
    server: FakeKetchupServer, tmp_path: Path
) -> None:
    """A task that failed ends 'failed' with the API's reason in the manifest."""
    journal = await _journal_with(tmp_path, ["doomed"], server.base_url)
    task_id = server.create_task("doomed")
    server.complete_now(task_id, "failed", reason="content policy violation")
    await journal.mark_submitting(1)
    await journal.mark_submitted(1, task_id)
    await journal.close()
    async with make_client(server) as client:
        summary = await resume_bulk(client, tmp_path)
    assert (summary.failed, summary.ok) == (1, False)
    assert "content policy violation" in str(_manifest(tmp_path)[0]["error"])


async def test_a_refused_request_fails_without_stopping_the_run(
    server: FakeKetchupServer, tmp_path: Path
) -> None:
    """A 400 (an unknown model) fails that input; the others succeed."""
    inputs = [
        BulkInput("bad", GenerateRequest("x", model="acme/unknown")),
        BulkInput("good", GenerateRequest("y")),
    ]
    async with make_client(server) as client:
        summary = await run_bulk(client, inputs, tmp_path)
    bad, good = _manifest(tmp_path)
    assert (bad["status"], good["status"]) == ("failed", "succeeded")
    assert "submit refused" in str(bad["error"])
    assert summary.failed == 1


async def test_a_bad_key_stops_the_run_and_charges_nothing(
    server: FakeKetchupServer, tmp_path: Path
) -> None:
    """401 on submit: the run raises, inputs stay queued, a good key then finishes them."""
    async with make_client(server, api_key="dk-wrong000000000") as client:
        with pytest.raises(AuthenticationError):
            await run_bulk(client, _prompts(20), tmp_path, concurrency=4)
    assert {line["status"] for line in _manifest(tmp_path)} == {"queued"}
    async with make_client(server) as client:
        assert (await resume_bulk(client, tmp_path)).ok


async def test_server_errors_leave_inputs_queued_for_later(
    server: FakeKetchupServer, tmp_path: Path
) -> None:
    """500s past the retries charge nothing: the inputs are pending, a resume finishes them."""
    server.submit_faults = Faults(error_500=1.0)
    async with make_client(server, retry=RetryPolicy(max_retries=0)) as client:
        first = await run_bulk(client, _prompts(5), tmp_path)
    assert (first.pending, first.failed, first.ok) == (5, 0, False)
    server.submit_faults = Faults()
    async with make_client(server) as client:
        assert (await resume_bulk(client, tmp_path)).ok


async def test_a_submit_cut_after_acceptance_is_uncertain(
    server: FakeKetchupServer, tmp_path: Path
) -> None:
    """The task was created but the answer lost: uncertain, and a resume leaves it alone."""
    server.submit_faults = Faults(reset_after_accept=1.0)
    async with make_client(server) as client:
        first = await run_bulk(client, _prompts(3), tmp_path)
        server.submit_faults = Faults()
        again = await resume_bulk(client, tmp_path)
    assert (first.uncertain, again.uncertain, again.submitted) == (3, 3, 0)
    assert set(server.stats.created_per_prompt.values()) == {1}


async def test_cancelling_a_run_loses_nothing(
    fast_server: FakeKetchupServer, tmp_path: Path
) -> None:
    """Cancelled mid-run, then resumed: every input succeeds, none was created twice."""
    started = asyncio.Event()

    def progress(p: BulkProgress) -> None:
        if p.counts[State.SUCCEEDED] >= 20:
            started.set()

    async with _fast_client(fast_server) as client:
        run = asyncio.ensure_future(
            run_bulk(
                client,
                _prompts(300),
                tmp_path,
                concurrency=50,
                progress=progress,
                progress_interval=0.001,
            )
        )
        await started.wait()
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        assert len(_manifest(tmp_path)) == 300
        summary = await resume_bulk(client, tmp_path, resubmit_uncertain=False)
    assert summary.succeeded + summary.uncertain == 300
    assert summary.pending == 0
    assert max(fast_server.stats.created_per_prompt.values()) == 1


async def test_only_submits_on_the_wire_are_journaled_submitting(tmp_path: Path) -> None:
    """Inputs waiting for a request slot stay queued: a kill cannot make them uncertain."""
    slow_submits = Faults(latency=1.0, latency_seconds=0.02)
    seen: list[int] = []
    async with FakeKetchupServer(
        api_keys=(API_KEY,), time_scale=FAST, seed=3, submit_faults=slow_submits
    ) as server:
        client = make_client(
            server,
            polling=PollPolicy().scaled(FAST),
            retry=RetryPolicy().scaled(FAST),
            max_concurrency=2,
        )
        async with client:
            summary = await run_bulk(
                client,
                _prompts(40),
                tmp_path,
                concurrency=30,
                progress=lambda p: seen.append(p.counts[State.SUBMITTING]),
                progress_interval=0.001,
            )
    assert summary.succeeded == 40
    assert max(seen) >= 1
    # The client's 2 request slots, plus at most one answer per slot that landed and is being
    # journaled `submitted`: 30 inputs were in flight at once, 26 or more of them waiting.
    assert max(seen) <= 4


async def test_progress_reports_the_end(server: FakeKetchupServer, tmp_path: Path) -> None:
    """The last progress snapshot has every input done."""
    seen: list[BulkProgress] = []
    async with make_client(server) as client:
        await run_bulk(client, _prompts(5), tmp_path, progress=seen.append)
    assert (seen[-1].done, seen[-1].total, seen[-1].counts[State.SUCCEEDED]) == (5, 5, 5)


async def test_without_downloads_no_file_is_written(
    server: FakeKetchupServer, tmp_path: Path
) -> None:
    """download=False: successes without files, and the run is still ok."""
    async with make_client(server) as client:
        summary = await run_bulk(client, _prompts(3), tmp_path, download=False)
    assert summary.ok
    assert summary.missing_files == 3
    assert _pngs(tmp_path) == []


async def test_ids_that_sanitise_alike_get_different_files(
    server: FakeKetchupServer, tmp_path: Path
) -> None:
    """'a/b' and 'A_b' would both be a_b.png: the second gets another name."""
    inputs = [BulkInput("a/b", GenerateRequest("one")), BulkInput("A_b", GenerateRequest("two"))]
    async with make_client(server) as client:
        await run_bulk(client, inputs, tmp_path)
    files = [line["files"][0] for line in _manifest(tmp_path)]  # type: ignore[index]
    assert files[0] == "a_b.png"
    assert files[1].lower() != "a_b.png"
    assert len(_pngs(tmp_path)) == 2


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([BulkInput("k", GenerateRequest("a")), BulkInput("k", GenerateRequest("b"))], "duplicate"),
        (["fine", "   "], "input 2: prompt"),
        ([42], "input 1: must be a prompt"),
    ],
)
async def test_bad_inputs_are_refused_before_any_submit(
    server: FakeKetchupServer, tmp_path: Path, inputs: list[object], message: str
) -> None:
    """Duplicates, blank prompts and odd items: BulkError naming the input, nothing sent."""
    async with make_client(server) as client:
        with pytest.raises(BulkError, match=message):
            await run_bulk(client, inputs, tmp_path)
    assert _submits(server) == 0


async def test_a_journal_of_another_api_is_refused(
    server: FakeKetchupServer, tmp_path: Path
) -> None:
    """Task ids belong to one API: once a task exists, another base URL is refused."""
    journal = await _journal_with(tmp_path, ["x"], "https://elsewhere.example")
    await journal.mark_submitting(1)
    await journal.mark_submitted(1, "ta-elsewhere")
    await journal.close()
    async with make_client(server) as client:
        with pytest.raises(BulkError, match=r"belong to https://elsewhere\.example"):
            await resume_bulk(client, tmp_path)
    assert _submits(server) == 0


async def test_resume_needs_a_journal(server: FakeKetchupServer, tmp_path: Path) -> None:
    """Resuming a directory without a run says so."""
    async with make_client(server) as client:
        with pytest.raises(BulkError, match="no bulk run to resume"):
            await resume_bulk(client, tmp_path)


async def test_a_run_without_tasks_can_move_to_the_right_api(
    server: FakeKetchupServer, tmp_path: Path
) -> None:
    """A run that never created a task (wrong base URL) resumes against the right one."""
    async with KetchupClient(
        api_key=API_KEY, base_url="http://127.0.0.1:9", retry=RetryPolicy(max_retries=0)
    ) as wrong:
        summary = await run_bulk(wrong, ["a red bicycle"], tmp_path)
    assert summary.pending == 1
    async with make_client(server) as client:
        summary = await resume_bulk(client, tmp_path)
    assert summary.ok
    assert _submits(server) == 1
