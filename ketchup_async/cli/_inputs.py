"""Reading the ``generate`` INPUT: ``.txt`` (a prompt a line), ``.jsonl`` or ``-`` (stdin).

Every line is checked before anything is journaled or sent, so a mistake on line 90,000 costs
nothing and is reported with its line number.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from .. import BulkInput, GenerateRequest, ValidationError
from ._args import UsageError

__all__ = ["check_model_name", "load_inputs"]

_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._:-]*")


def check_model_name(model: object, *, where: str) -> str:
    """Return ``model`` if it looks like ``owner/name``; else raise ``UsageError``."""
    if not isinstance(model, str) or not _MODEL.fullmatch(model):
        raise UsageError(
            f"{where}: unknown model format {model!r} (expected owner/name, such as google/gempix2)"
        )
    return model


def _lines(source: Iterable[str | bytes], name: str) -> Iterator[tuple[int, str]]:
    number = 0
    try:
        for number, raw in enumerate(source, start=1):
            if isinstance(raw, bytes):
                raw = raw.decode("utf-8")
            yield number, raw.removeprefix("\ufeff") if number == 1 else raw
    except UnicodeDecodeError:
        raise UsageError(f"{name} line {max(number, 1)}: not valid UTF-8 text") from None


def _txt(
    lines: Iterable[tuple[int, str]],
    name: str,
    model: str | None,
    images: tuple[str, ...],
) -> Iterator[BulkInput]:
    for number, line in lines:
        prompt = line.strip()
        if not prompt:
            continue
        try:
            request = GenerateRequest(prompt, model=model, images=images)
        except ValidationError as exc:
            raise UsageError(f"{name} line {number}: invalid prompt: {exc.problem}") from None
        yield BulkInput(str(number), request)


def _column(line: str, error: json.JSONDecodeError) -> int:
    """The 1-based column of ``error`` in the file's line (not the parser's own position)."""
    content = line.rstrip("\r\n")
    return min(error.pos, len(content)) + 1


def _jsonl_entry(
    number: int, line: str, name: str, model: str | None, images: tuple[str, ...]
) -> BulkInput:
    where = f"{name} line {number}"
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        column = _column(line, exc)
        raise UsageError(f"{where}, column {column}: invalid JSON ({exc.msg})") from None
    except RecursionError:
        raise UsageError(f"{where}: invalid JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise UsageError(f"{where}: expected a JSON object, got {type(data).__name__}")
    key = data.get("id", number)
    if not (isinstance(key, (str, int)) and not isinstance(key, bool)) or str(key) == "":
        raise UsageError(f"{where}: id must be a non-empty string or an integer, got {key!r}")
    if "prompt" not in data:
        raise UsageError(f"{where}: prompt is required")
    line_model = data.get("model")
    if line_model is not None:
        check_model_name(line_model, where=f"{where}: model")
    try:
        request = GenerateRequest(
            data["prompt"],
            model=line_model if line_model is not None else model,
            images=data["images"] if data.get("images") is not None else images,
        )
    except ValidationError as exc:
        raise UsageError(f"{where}: invalid {exc.field}: {exc.problem}") from None
    return BulkInput(str(key), request)


def _jsonl(
    lines: Iterable[tuple[int, str]],
    name: str,
    model: str | None,
    images: tuple[str, ...],
) -> Iterator[BulkInput]:
    seen: dict[str, int] = {}
    for number, line in lines:
        if not line.strip():
            continue
        entry = _jsonl_entry(number, line, name, model, images)
        first = seen.setdefault(entry.key, number)
        if first != number:
            raise UsageError(f"{name} line {number}: duplicate id {entry.key!r} (see line {first})")
        yield entry


def load_inputs(
    source: str,
    *,
    model: str | None,
    images: Sequence[str],
    stdin: Iterable[str] | None = None,
) -> Callable[[], Iterator[BulkInput]]:
    """Check every input of ``source`` now; return a function that streams them again.

    A file is read twice (checked, then streamed); stdin is kept in memory as text.

    Raises:
        UsageError: The input cannot be read, has an unknown format, or a bad line (the
            message names the line).
    """
    if model is not None:
        check_model_name(model, where="--model")
    try:
        refs = GenerateRequest("--image", images=tuple(images)).images
    except ValidationError as exc:
        raise UsageError(f"--{exc.field.replace('images', 'image')}: {exc.problem}") from None
    if source == "-":
        text = list(stdin if stdin is not None else sys.stdin)
        name = "stdin"

        def read() -> Iterator[BulkInput]:
            return _txt(_lines(text, name), name, model, refs)

    else:
        path = Path(source)
        suffix = path.suffix.lower()
        if suffix not in (".txt", ".jsonl"):
            raise UsageError(
                f"cannot tell the format of {source!r}: INPUT must be a .txt file (a prompt a "
                "line), a .jsonl file, or - for stdin"
            )
        parse = _txt if suffix == ".txt" else _jsonl

        def read() -> Iterator[BulkInput]:
            try:
                with open(path, "rb") as handle:
                    yield from parse(_lines(handle, path.name), path.name, model, refs)
            except OSError as exc:
                raise UsageError(f"cannot read {source!r}: {exc.strerror or exc}") from None

    count = sum(1 for _ in read())
    if count == 0:
        raise UsageError(f"{'stdin' if source == '-' else repr(source)} has no prompts")
    return read
