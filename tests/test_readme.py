"""Every ```python block of README.md runs as written, against the fake server.

A block may start with ``# continued from the previous block`` (it runs in the namespace the
previous block left) or ``# not run: <reason>`` (skipped, with the reason). Blocks with a
top-level ``await`` run as ``python -m asyncio`` would run them.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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


#: Runs README blocks (given as files) one after the other in one namespace, as
#: ``python -m asyncio`` would (top-level ``await`` allowed).
RUNNER = """
import ast, asyncio, inspect, sys
namespace = {"__name__": "__readme__"}
for path in sys.argv[1:]:
    code = compile(open(path).read(), path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if inspect.iscoroutine(result):
        asyncio.run(result)
"""


def _chain(index: int) -> list[str]:
    """The block at ``index`` and the blocks it continues, first to last."""
    chain = [BLOCKS[index][1]]
    while chain[0].startswith(CONTINUED) and index > 0:
        index -= 1
        chain.insert(0, BLOCKS[index][1])
    return chain


@pytest.fixture(scope="module")
def results(
    fake: FakeProcess, tmp_path_factory: pytest.TempPathFactory
) -> dict[int, tuple[int, str]]:
    """Every runnable block run at once, each in a process and a directory of its own.

    The blocks mostly wait for images (the default polling schedule is in real time), so
    running them side by side takes as long as the slowest one, not as long as all of them.
    """
    procs: dict[int, tuple[subprocess.Popen[bytes], Path]] = {}
    for index, (line, source) in enumerate(BLOCKS):
        if source.startswith(NOT_RUN):
            continue
        where = tmp_path_factory.mktemp(f"line{line}")
        (where / "prompts.txt").write_text("a red bicycle\na blue boat\n", encoding="utf-8")
        files = []
        for number, part in enumerate(_chain(index)):
            path = where / f"block{number}.py"
            path.write_text(part, encoding="utf-8")
            files.append(str(path))
        port = _free_port()
        env = {
            **os.environ,
            "KETCHUP_API_KEY": "dk-test",
            "KETCHUP_BASE_URL": fake.url,
            "KETCHUP_DOWNLOAD_HOSTS": "127.0.0.1",
            "KETCHUP_WEBHOOK_TOKEN": new_token(),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "PORT": str(port),
            "REDIS_URL": "redis://127.0.0.1:1/0",  # never connected: the relay is not started
        }
        proc = subprocess.Popen(
            [sys.executable, "-c", RUNNER, *files],
            cwd=where,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        procs[line] = (proc, where)
    done: dict[int, tuple[int, str]] = {}
    for line, (proc, _) in procs.items():
        try:
            _, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        done[line] = (proc.returncode, err.decode("utf-8", "replace")[-3000:])
    return done


def test_the_readme_has_python_blocks() -> None:
    """The extraction finds the README's blocks (a broken pattern would test nothing)."""
    assert len(BLOCKS) >= 8
    assert sum(source.startswith(NOT_RUN) for _, source in BLOCKS) <= 2


@pytest.mark.parametrize(("line", "source"), BLOCKS, ids=[f"line{line}" for line, _ in BLOCKS])
def test_readme_block_runs(line: int, source: str, results: dict[int, tuple[int, str]]) -> None:
    """The block at this line of README.md runs without an error."""
    if source.startswith(NOT_RUN):
        pytest.skip(source.splitlines()[0][len(NOT_RUN) :].strip())
    code, stderr = results[line]
    assert code == 0, f"README.md:{line} failed:\n{stderr}"
