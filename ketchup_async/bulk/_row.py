"""``Row``: one input as the journal holds it, decoded (and checked) from its SQL record."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import attrs

from ._states import State

__all__ = ["COLUMNS", "Row", "row_from_db"]

#: The columns a ``Row`` is built from, in order.
COLUMNS = (
    "seq, key, request, state, task_id, images, files, consumed, error, checksums, reused_from, "
    "saved"
)


@attrs.frozen
class Row:
    """One input as the journal holds it.

    Attributes:
        seq: Position in the run (1-based, in input order).
        key: The input's stable key (its ``id``, else its 1-based line number).
        request: The submit body (``model``, ``prompt``, ``images``...), as sent.
        state: Where the input stands.
        task_id: The API's task id, once known.
        images: The result images (URLs or data URIs) of a success.
        files: The files written for it, relative to the output directory.
        consumed: Credits consumed, as the API reported them.
        error: Why it failed / is uncertain / lacks files / was not sent (``budget``).
        checksums: The sha256 (hex) of each file, in ``files`` order.
        reused_from: For a ``reused`` input: ``run`` (the source directory), ``id`` and
            ``task_id`` of the input whose files it took.
        saved: For a ``reused`` input: the credits its source paid (this run paid none).
    """

    seq: int
    key: str
    request: dict[str, Any] = attrs.field(eq=False)
    state: State
    task_id: str | None = None
    images: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    consumed: str | None = None
    error: str | None = None
    checksums: tuple[str, ...] = ()
    reused_from: dict[str, Any] | None = attrs.field(default=None, eq=False)
    saved: str | None = None

    @property
    def prompt(self) -> str:
        """The prompt of the request."""
        return str(self.request.get("prompt", ""))


def _decoded(seq: object, column: str, text: object, kind: type) -> Any:
    try:
        value = json.loads(text) if isinstance(text, (str, bytes)) else None
    except ValueError:
        value = None
    if not isinstance(value, kind):
        raise ValueError(f"row #{seq}: column {column!r} is not a JSON {kind.__name__}")
    return value


def _state(seq: object, value: object) -> State:
    try:
        return State(value)
    except ValueError:
        raise ValueError(f"row #{seq}: unknown state {value!r}") from None


def row_from_db(record: Sequence[Any]) -> Row:
    """Build a ``Row`` from a ``SELECT`` of ``COLUMNS``.

    Raises:
        ValueError: The row is damaged (naming the row and the column).
    """
    seq, key, request, state, task_id, images, files, consumed, error, sums, source, saved = record
    if not isinstance(seq, int) or not isinstance(key, str):
        raise ValueError(f"row #{seq}: bad seq or key {key!r}")
    texts = (("task_id", task_id), ("consumed", consumed), ("error", error), ("saved", saved))
    for column, value in texts:
        if value is not None and not isinstance(value, str):
            raise ValueError(f"row #{seq}: column {column!r} is not text")
    return Row(
        seq=seq,
        key=key,
        request=_decoded(seq, "request", request, dict),
        state=_state(seq, state),
        task_id=task_id,
        images=tuple(_decoded(seq, "images", images, list)) if images else (),
        files=tuple(_decoded(seq, "files", files, list)) if files else (),
        consumed=consumed,
        error=error,
        checksums=tuple(_decoded(seq, "checksums", sums, list)) if sums else (),
        reused_from=_decoded(seq, "reused_from", source, dict) if source else None,
        saved=saved,
    )
