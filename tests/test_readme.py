"""Every ```python block of README.md runs as written, against the fake server.

A block may start with ``# continued from the previous block`` (it runs in the namespace the
previous block left) or ``# not run: <reason>`` (skipped, with the reason). Blocks with a
top-level ``await`` run as ``python -m asyncio`` would run them.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ketchup_async.webhooks import new_token

from ._processes import FakeProcess

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parent.parent / "README.md"
CONTINUED = "# continued from the previous block"
NOT_RUN = "# not run:"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _blocks() -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


BLOCKS = _blocks()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProcess]:
    """The fake API in a process of its own (blocks run their own event loops)."""
    process = FakeProcess("--api-key", "dk-test", "--api-key", "dk-...", "--time-scale", "0.01")
    try:
        yield process
    finally:
        process.stop()


def _run(source: str, namespace: dict[str, Any], name: str) -> None:
    code = compile(source, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if inspect.iscoroutine(result):
        asyncio.run(result)


def test_the_readme_has_python_blocks() -> None:
    """The extraction finds the README's blocks (a broken pattern would test nothing)."""
    assert len(BLOCKS) >= 8
    assert sum(source.startswith(NOT_RUN) for _, source in BLOCKS) <= 2


@pytest.mark.parametrize(("line", "source"), BLOCKS, ids=[f"line{line}" for line, _ in BLOCKS])
def test_readme_block_runs(
    line: int,
    source: str,
    fake: FakeProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The block at this line of README.md runs without an error."""
    if source.startswith(NOT_RUN):
        pytest.skip(source.splitlines()[0][len(NOT_RUN) :].strip())
    port = _free_port()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prompts.txt").write_text("a red bicycle\na blue boat\n", encoding="utf-8")
    for name, value in {
        "KETCHUP_API_KEY": "dk-test",
        "KETCHUP_BASE_URL": fake.url,
        "KETCHUP_DOWNLOAD_HOSTS": "127.0.0.1",
        "KETCHUP_WEBHOOK_TOKEN": new_token(),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "PORT": str(port),
        "REDIS_URL": "redis://127.0.0.1:1/0",  # never connected: the relay is not started
    }.items():
        monkeypatch.setenv(name, value)
    chain = [source]
    index = next(i for i, (at, _) in enumerate(BLOCKS) if at == line)
    while chain[0].startswith(CONTINUED) and index > 0:  # run what it continues first
        index -= 1
        chain.insert(0, BLOCKS[index][1])
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    for part in chain:
        _run(part, namespace, f"README.md:{line}")
