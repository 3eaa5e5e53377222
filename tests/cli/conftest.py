"""Fixtures of the ``ketchup`` command's tests: fake APIs in their own processes, the key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .._processes import FakeProcess
from ._helpers import API_KEY, SCALE


def fake_api(time_scale: str, *flags: str) -> FakeProcess:
    """A fake Ketchup API in its own process, accepting the tests' key."""
    return FakeProcess("--time-scale", time_scale, "--api-key", API_KEY, *flags)


@pytest.fixture(scope="module")
def api() -> Iterator[FakeProcess]:
    """One fast fake API process per module (prompts are unique per test)."""
    fake = fake_api(SCALE)
    yield fake
    fake.stop()


@pytest.fixture
def slow_api() -> Iterator[FakeProcess]:
    """A fake API whose renders take ~0.16 s, so runs can be stopped mid-way."""
    fake = fake_api("0.02")
    yield fake
    fake.stop()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API key in the environment, no base URL."""
    monkeypatch.setenv("KETCHUP_API_KEY", API_KEY)
    monkeypatch.delenv("KETCHUP_BASE_URL", raising=False)
