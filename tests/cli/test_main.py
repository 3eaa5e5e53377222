"""``ketchup_async.cli``: dispatch, logging, the fake-server command, the import graph."""

from __future__ import annotations

import ast
import graphlib
import select
import signal
import subprocess
import sys
from pathlib import Path

import ketchup_async.cli
from ketchup_async.cli import main

from .._processes import BANNER


def test_fake_server_subcommand(tmp_path: Path) -> None:
    """`ketchup fake-server` serves until SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ketchup_async.cli", "fake-server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20.0)
        assert ready
        assert BANNER.match(proc.stdout.readline())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_main_restores_the_library_log_level() -> None:
    """Running the CLI in process leaves the ketchup_async logger's level as it found it."""
    import logging

    logger = logging.getLogger("ketchup_async")
    before = logger.level
    logger.setLevel(logging.INFO)
    try:
        main(["status", "../not-a-task-id"])
        assert logger.level == logging.INFO
    finally:
        logger.setLevel(before)


CLI = Path(ketchup_async.cli.__file__).parent


def _imports(path: Path) -> list[tuple[ast.ImportFrom, bool]]:
    """Every ``from ... import`` of a module, and whether it sits inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[ast.ImportFrom, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found += [(n, True) for n in ast.walk(node) if isinstance(n, ast.ImportFrom)]
    nested = {id(n) for n, _ in found}
    found += [(n, False) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    return [(n, inside) for n, inside in found if inside or id(n) not in nested]


def test_the_cli_uses_only_public_names_and_has_no_import_cycle() -> None:
    """cli/ imports the package's public modules only, never inside a function, in a DAG."""
    graph: dict[str, set[str]] = {}
    for path in sorted(CLI.glob("*.py")):
        graph[path.stem] = set()
        for node, inside in _imports(path):
            if node.level == 0:
                assert not (node.module or "").startswith("ketchup_async"), path.name
                continue
            assert not inside, f"{path.name}: function-level import of {node.module}"
            if node.level == 1:
                graph[path.stem].add(node.module or "__init__")
            else:  # the package: its public modules only
                parts = (node.module or "").split(".")
                assert not any(p.startswith("_") for p in parts if p), (path.name, node.module)
    sorter = graphlib.TopologicalSorter(graph)
    sorter.prepare()  # raises CycleError on a cycle
