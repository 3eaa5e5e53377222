"""Shared fixtures: the asyncio backend, a time-scaled fake server and a client bound to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import pytest
from hypothesis import settings

from ketchup_async import KetchupClient, PollPolicy, RetryPolicy
from ketchup_async.testing import FakeKetchupServer

# The machine is shared and noisy: a property is judged on its examples, never on how long
# one example took (hypothesis' default 200 ms deadline turns CPU contention into failures).
settings.register_profile("ketchup", deadline=None)
settings.load_profile("ketchup")

#: Real seconds per API second in integration tests: everything runs 100x faster.
SCALE = 0.01
API_KEY = "dk-test0123456789"


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio (the SDK is asyncio-native)."""
    return "asyncio"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session, for speaking raw HTTP to a fake server."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def server() -> AsyncIterator[FakeKetchupServer]:
    """A fake API at a 1/100 time scale with one accepted key."""
    async with FakeKetchupServer(api_keys=(API_KEY,), time_scale=SCALE, seed=7) as fake:
        yield fake


def fake_hosts(server: FakeKetchupServer) -> list[str]:
    """The ``download_hosts`` that reach the fake's image host (on loopback, so not public)."""
    return [urlsplit(server.cdn_url).hostname or "127.0.0.1"]


def make_client(server: FakeKetchupServer, **kwargs: object) -> KetchupClient:
    """A client pointed at ``server`` with policies scaled to its time scale.

    Its downloads may reach the fake's image host through the allow-list.
    """
    options: dict[str, object] = {
        "api_key": API_KEY,
        "base_url": server.base_url,
        "polling": PollPolicy().scaled(SCALE),
        "retry": RetryPolicy().scaled(SCALE),
        "download_hosts": fake_hosts(server),
    }
    options.update(kwargs)
    return KetchupClient(**options)  # type: ignore[arg-type]


@pytest.fixture
async def client(server: FakeKetchupServer) -> AsyncIterator[KetchupClient]:
    """A client bound to the ``server`` fixture, closed after the test."""
    async with make_client(server) as ketchup:
        yield ketchup
