"""Fixtures for the webhook tests: a real Redis for the relay."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .._redis import RedisServer, redis_url_from_env


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis URL: ``$REDIS_URL``, or a ``redis-server`` started for this test session."""
    url = redis_url_from_env()
    if url is not None:
        yield url
        return
    server = RedisServer(Path(tmp_path_factory.mktemp("redis")))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def stream() -> str:
    """A stream key of this test's own, so tests sharing one Redis never see each other."""
    return f"ketchup-test:{uuid.uuid4().hex}"
