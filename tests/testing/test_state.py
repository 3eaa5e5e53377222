"""Tests of the fake server's pure parts: statuses, ids, buckets, stats, PNG, config."""

from __future__ import annotations

import json
import random
import re
import struct
import time
import zlib

import pytest

from ketchup_async.testing import FakeKetchupServer, FakeStats, FakeTask, Faults, make_png
from ketchup_async.testing._png import PNG_SIGNATURE, png_data_uri, prompt_png, prompt_rgb
from ketchup_async.testing._state import (
    FAILURE_REASONS,
    TaskStore,
    TokenBucket,
    format_retry_after,
    new_task_id,
)

TASK_ID_RE = re.compile(r"^ta[0-9a-f]{6}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def _store(**overrides: float) -> TaskStore:
    config = {
        "render_time": 10.0,
        "render_sigma": 0.0,
        "time_scale": 1.0,
        "failure_rate": 0.0,
        "visibility_delay": 0.0,
    }
    config.update(overrides)
    return TaskStore(rng=random.Random(0), **config)


def _task(now: float = 100.0) -> FakeTask:
    return _store().create("a cat", "google/gempix2", now=now)


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        (0.0, "pending"),
        (0.49, "pending"),
        (0.5, "submitted"),
        (1.49, "submitted"),
        (1.5, "in_progress"),
        (9.99, "in_progress"),
        (10.0, "success"),
        (1e6, "success"),
    ],
)
def test_status_follows_elapsed_fraction(elapsed: float, expected: str) -> None:
    """Status is pending < 5% < submitted < 15% < in_progress < 100% <= final."""
    task = _task(now=100.0)
    assert task.status(100.0 + elapsed) == expected


def test_completed_at_is_created_plus_scaled_render() -> None:
    """completed_at is created_at + render_seconds * time_scale."""
    task = _store(time_scale=0.5).create("p", "google/gempix2", now=10.0)
    assert task.render_seconds == pytest.approx(10.0)
    assert task.completed_at == pytest.approx(15.0)


def test_render_time_is_log_normal_around_median() -> None:
    """Render times are log-normal with the configured median."""
    store = _store(render_sigma=0.5)
    times = sorted(store.create("p", "google/gempix2", now=0.0).render_seconds for _ in range(401))
    assert 8.0 < times[200] < 12.0
    assert times[0] < 10.0 < times[-1]


def test_store_is_deterministic_for_a_seed() -> None:
    """Two stores seeded alike produce the same ids and render times."""
    a, b = _store(render_sigma=0.5), _store(render_sigma=0.5)
    drawn_a = [a.create("p", "m", now=0.0) for _ in range(5)]
    drawn_b = [b.create("p", "m", now=0.0) for _ in range(5)]
    assert [(t.task_id, t.render_seconds) for t in drawn_a] == [
        (t.task_id, t.render_seconds) for t in drawn_b
    ]
    assert len({t.task_id for t in drawn_a}) == 5


def test_failure_rate_one_fails_with_known_reason() -> None:
    """failure_rate=1 makes every task fail with a reason from the fixed list."""
    task = _store(failure_rate=1.0).create("p", "google/gempix2", now=0.0)
    assert task.status(1e9) == "failed"
    assert task.reason in FAILURE_REASONS


def test_complete_forces_final_state_now() -> None:
    """complete() makes a pending task final immediately, with the given reason."""
    store = _store()
    task = store.create("p", "google/gempix2", now=0.0)
    store.complete(task.task_id, "failed", "nope", now=1.0)
    assert (task.status(1.0), task.reason, task.completed_at) == ("failed", "nope", 1.0)


def test_complete_rejects_non_final_status() -> None:
    """complete() refuses a non-final status."""
    store = _store()
    task = store.create("p", "google/gempix2", now=0.0)
    with pytest.raises(ValueError, match="status"):
        store.complete(task.task_id, "pending", None, now=1.0)


def test_visible_at_is_scaled_delay() -> None:
    """visible_at is created_at + visibility_delay * time_scale."""
    task = _store(visibility_delay=4.0, time_scale=0.5).create("p", "m", now=1.0)
    assert task.visible_at == pytest.approx(3.0)


def test_new_task_id_format() -> None:
    """Task ids are uuid4 strings starting with 'ta'."""
    assert TASK_ID_RE.match(new_task_id(random.Random(1)))


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(1.0, "1"), (2.0, "2"), (0.05, "0.05"), (0.5, "0.5"), (1.25, "1.25"), (0.0, "0")],
)
def test_format_retry_after(seconds: float, expected: str) -> None:
    """Retry-After is an integer string when integral, else a short decimal."""
    assert format_retry_after(seconds) == expected


def test_token_bucket_burst_then_refill() -> None:
    """A bucket allows max(1, rate) at once, then refills over scaled time."""
    bucket = TokenBucket(2.0, time_scale=0.5)  # 2 per API second = 4 per real second
    assert [bucket.try_acquire(0.0) for _ in range(3)] == [True, True, False]
    assert bucket.try_acquire(0.25) is True
    assert bucket.try_acquire(0.25) is False


def test_token_bucket_fractional_rate_bursts_one() -> None:
    """A rate below 1 still allows a burst of one."""
    bucket = TokenBucket(0.5, time_scale=1.0)
    assert [bucket.try_acquire(0.0), bucket.try_acquire(1.0), bucket.try_acquire(2.0)] == [
        True,
        False,
        True,
    ]


def test_faults_validate_probabilities() -> None:
    """Faults rejects probabilities outside [0, 1]."""
    with pytest.raises(ValueError, match="error_500"):
        Faults(error_500=1.5)


def test_faults_active_flag() -> None:
    """Faults.active is False for the default and True when any fault can fire."""
    assert not Faults().active
    assert Faults(reset=0.1).active
    assert not Faults(latency=1.0).active  # latency without seconds is a no-op


def test_min_poll_gap() -> None:
    """min_poll_gap returns the smallest gap between queries of one task."""
    stats = FakeStats()
    for t in (1.0, 1.5, 1.6, 3.0):
        stats.record_query("a", t)
    stats.record_query("b", 0.0)
    assert stats.min_poll_gap("a") == pytest.approx(0.1)
    assert stats.min_poll_gap("b") is None


def test_min_poll_gap_all() -> None:
    """min_poll_gap_all is the smallest same-task gap over all tasks (None if none)."""
    stats = FakeStats()
    assert stats.min_poll_gap_all() is None
    for task_id, t in (("a", 0.0), ("b", 0.1), ("a", 1.0), ("b", 0.4)):
        stats.record_query(task_id, t)
    assert stats.min_poll_gap_all() == pytest.approx(0.3)


def test_cdn_requests_keep_last_thousand() -> None:
    """Only the last 1000 CDN requests are kept."""
    stats = FakeStats()
    for i in range(1005):
        stats.record_cdn_request({"X-N": str(i)})
    assert len(stats.cdn_requests) == 1000
    assert stats.cdn_requests[0] == {"X-N": "5"}


def test_as_dict_is_json_and_drops_large_maps() -> None:
    """as_dict is JSON-serialisable and omits per-task maps above max_items."""
    stats = FakeStats()
    stats.requests[("query", 200)] += 3
    for i in range(5):
        stats.record_query(f"t{i}", float(i))
    summary = json.loads(json.dumps(stats.as_dict(max_items=4)))
    assert summary["requests"] == {"query:200": 3}
    assert summary["queries"] == 5
    assert "polls" not in summary


def test_make_png_is_valid() -> None:
    """make_png emits a signature, CRC-checked chunks and decompressible IDAT."""
    png = make_png(3, 2, (10, 20, 30))
    assert png.startswith(PNG_SIGNATURE)
    pos, chunks = len(PNG_SIGNATURE), {}
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + data)
        chunks[kind] = data
        pos += 12 + length
    assert struct.unpack(">II", chunks[b"IHDR"][:8]) == (3, 2)
    assert zlib.decompress(chunks[b"IDAT"]) == (b"\x00" + bytes((10, 20, 30)) * 3) * 2
    assert b"IEND" in chunks


def test_make_png_rejects_bad_input() -> None:
    """make_png refuses empty sizes and out-of-range channels."""
    with pytest.raises(ValueError, match="dimensions"):
        make_png(0, 1, (0, 0, 0))
    with pytest.raises(ValueError, match="rgb"):
        make_png(1, 1, (0, 0, 256))


def test_prompt_png_colour_depends_on_prompt() -> None:
    """The rendered colour is stable per prompt and differs between prompts."""
    assert prompt_rgb("cat") == prompt_rgb("cat") != prompt_rgb("dog")
    assert png_data_uri("cat").startswith("data:image/png;base64,")
    assert prompt_png("cat") != prompt_png("dog")


def test_complete_now_unknown_task() -> None:
    """complete_now raises KeyError for an unknown task."""
    with pytest.raises(KeyError):
        FakeKetchupServer().complete_now("ta-missing")


def test_invalid_config_rejected() -> None:
    """Out-of-range configuration raises ValueError."""
    with pytest.raises(ValueError, match="failure_rate"):
        FakeKetchupServer(failure_rate=2.0)


def test_holds_many_pending_tasks_cheaply() -> None:
    """100,000 pending tasks are plain records: no timers or asyncio tasks."""
    server = FakeKetchupServer(render_time=1000.0, render_sigma=0.0)
    started = time.perf_counter()
    for i in range(100_000):
        server.create_task(f"p{i % 10}")
    assert len(server.tasks) == 100_000
    assert time.perf_counter() - started < 5.0
