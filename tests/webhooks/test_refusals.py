"""Refused callbacks are logged at WARNING at most once per minute per reason, with a count."""

from __future__ import annotations

import logging

import pytest

from ketchup_async import KetchupClient
from ketchup_async.webhooks import WebhookReceiver
from ketchup_async.webhooks._refusals import RefusalLog

from ..conftest import API_KEY

TOKEN = "A" * 21 + "b"
WRONG = "Z" * 43


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_three_thousand_bad_tokens_give_one_line(caplog: pytest.LogCaptureFixture) -> None:
    """3,000 callbacks with a wrong token within a minute log one WARNING, not 3,000."""
    clock = FakeClock()
    client = KetchupClient(api_key=API_KEY, base_url="http://127.0.0.1:9")
    receiver = WebhookReceiver(client, tokens=[TOKEN], clock=clock)
    with caplog.at_level(logging.WARNING, logger="ketchup_async"):
        for _ in range(3000):
            clock.now += 0.01  # 30 s in all
            assert receiver.handle(WRONG, b"{}", remote="203.0.113.9")[0] == 404
    lines = _warnings(caplog)
    assert len(lines) == 1
    assert "wrong or missing token" in lines[0]
    assert receiver.stats.rejected["token"] == 3000


def test_the_next_line_counts_what_was_held_back(caplog: pytest.LogCaptureFixture) -> None:
    """After the minute, one line reports how many were refused since the last one."""
    clock = FakeClock()
    log = RefusalLog(clock=clock)
    with caplog.at_level(logging.WARNING, logger="ketchup_async"):
        for _ in range(1235):
            clock.now += 0.04  # 49.4 s
            log.refused("token")
        clock.now += 11.0
        assert log.refused("token") is True
    lines = _warnings(caplog)
    assert len(lines) == 2
    assert "1,235 callbacks with a wrong or missing token in the last" in lines[1]
    assert log.pending("token") == 0


def test_each_reason_has_its_own_budget(caplog: pytest.LogCaptureFixture) -> None:
    """A flood of one reason does not hide the first refusal of another."""
    clock = FakeClock()
    log = RefusalLog(clock=clock)
    with caplog.at_level(logging.WARNING, logger="ketchup_async"):
        for _ in range(100):
            log.refused("token")
        log.refused("malformed", "body: is not valid JSON")
    lines = _warnings(caplog)
    assert len(lines) == 2
    assert "malformed" in lines[1]
    assert log.pending("token") == 99
