"""``ketchup status TASK_ID...``: one query per task, as lines a person reads or JSON lines.

Values are never cut: a task id and each image URL are printed whole on their own line (the
terminal may wrap them, nothing truncates them), piped or not. ``--json`` prints one JSON
object per task id, in the order given, for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from .. import (
    AuthenticationError,
    ImageResult,
    KetchupError,
    Task,
    TaskNotFoundError,
    ValidationError,
)
from ._args import UsageError
from ._runtime import (
    EXIT_FAILED,
    EXIT_OK,
    Interrupted,
    client_options,
    console,
    make_client,
    read_api_key,
    run_async,
)

__all__ = ["cmd_status", "status_record"]

Answer = Task | KetchupError

_STYLES = {"success": "green", "failed": "red", "not found": "red", "error": "red"}


def _image(image: ImageResult) -> str:
    """The image's URL, whole; a data URI is summarised (it can be megabytes long)."""
    if image.url is not None:
        return image.url
    return f"{image.image[:30]}... (data URI, {len(image.image):,} characters)"


def status_record(task_id: str, answer: Answer) -> dict[str, Any]:
    """The ``--json`` object for one task id."""
    if isinstance(answer, Task):
        return {
            "task_id": task_id,
            "status": answer.status.value,
            "consumed": None if answer.consumed is None else str(answer.consumed),
            "images": [image.image for image in answer.images],
            "reason": answer.reason,
            "error": None,
        }
    return {
        "task_id": task_id,
        "status": "not found" if isinstance(answer, TaskNotFoundError) else "error",
        "consumed": None,
        "images": [],
        "reason": None,
        "error": str(answer),
    }


def _print_human(records: list[tuple[dict[str, Any], Answer]]) -> None:
    from rich.markup import escape

    out = console()
    for record, answer in records:
        status = record["status"]
        style = _STYLES.get(status, "yellow")
        head = f"[bold]{escape(record['task_id'])}[/]  [{style}]{escape(status)}[/]"
        if record["consumed"] is not None:
            head += f"  {escape(record['consumed'])} credits"
        lines = [head]
        if isinstance(answer, Task):
            lines += [f"  {escape(_image(image))}" for image in answer.images]
        detail = record["reason"] or record["error"]
        if detail:
            lines.append(f"  {escape(detail)}")
        for line in lines:
            out.print(line, soft_wrap=True)  # soft wrap: the terminal folds, nothing is cut


def cmd_status(args: argparse.Namespace) -> int:
    """``ketchup status TASK_ID...``; exit 1 when a task could not be read."""
    key = read_api_key(args)
    options = client_options(args, key)

    async def go() -> list[Answer]:
        async with make_client(options) as client:

            async def one(task_id: str) -> Answer:
                try:
                    return await client.query(task_id)  # checks the id before sending
                except AuthenticationError:
                    raise
                except KetchupError as exc:
                    return exc

            return list(await asyncio.gather(*(one(t) for t in args.task_ids)))

    try:
        answers = run_async(go)
    except Interrupted as stop:
        return stop.code
    except AuthenticationError as exc:
        raise UsageError(f"the API refused the key: {exc}") from None
    for answer in answers:
        if isinstance(answer, ValidationError):
            raise UsageError(f"bad task id: {answer.problem}")
    records = [(status_record(t, a), a) for t, a in zip(args.task_ids, answers, strict=True)]
    if args.json:
        for record, _ in records:
            print(json.dumps(record, ensure_ascii=False), file=sys.stdout)
    else:
        _print_human(records)
    failures = sum(1 for _, answer in records if not isinstance(answer, Task))
    return EXIT_FAILED if failures else EXIT_OK
