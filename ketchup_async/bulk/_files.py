"""Files of a bulk run: every image of a result into one directory, under sanitised names.

Names come from the input's key through ``safe_name`` (``{safe_id}.png``, ``{safe_id}-2.png``
for a second image...); the journal reserves each stem for one input (ignoring case), so two
keys that sanitise alike never overwrite each other. Nothing is written outside the directory.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from .._download import safe_name
from .._models import ImageResult
from ..errors import KetchupError, ValidationError

if TYPE_CHECKING:
    from .._client import KetchupClient

__all__ = ["FILE_STEM_CHARS", "DownloadReport", "download_result", "file_stem", "files_missing"]

#: Longest stem made from a key (room is left for ``-2`` and a digest suffix).
FILE_STEM_CHARS = 80

#: Reserves ``count`` stems for an input, e.g. ``Journal.claim_names`` bound to its row.
ClaimNames = Callable[[int], Awaitable[list[str]]]


@attrs.frozen
class DownloadReport:
    """What ``download_result`` wrote.

    Attributes:
        files: Names of the files written (relative to the directory), in image order.
        errors: One message per image that could not be written.
    """

    files: tuple[str, ...]
    errors: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """True when every image was written."""
        return not self.errors


def file_stem(key: str) -> str:
    """The file stem (no extension) an input's first image is named after."""
    return safe_name(key, max_len=FILE_STEM_CHARS)


def _inside(directory: Path, stem: str) -> Path:
    if not stem or stem in (".", "..") or os.sep in stem or (os.altsep and os.altsep in stem):
        raise ValidationError("stem", f"{stem!r} is not a plain file name")
    return directory / stem


async def download_result(
    client: KetchupClient,
    images: Sequence[ImageResult | str],
    directory: str | os.PathLike[str],
    *,
    key: str | None = None,
    claim: ClaimNames | None = None,
) -> DownloadReport:
    """Download (or decode) every image of one result into ``directory``.

    The first image is ``{stem}.<ext>``, the next ``{stem}-2.<ext>``... where ``stem`` is the
    sanitised ``key`` (or the task id of a URL), unless ``claim`` hands out other stems. The
    extension comes from the content type. A failed image does not stop the others.

    Args:
        client: The client whose session, User-Agent, retries and size cap are used.
        images: The result's images.
        directory: Where to write (created if missing).
        key: The input's key the names derive from (default ``image``).
        claim: Reserves the stems (the bulk runner passes the journal's ``claim_names``).

    Returns:
        The files written and the errors of the images that failed.
    """
    folder = Path(directory)
    if claim is not None:
        stems = await claim(len(images))
    else:
        base = file_stem(key or "image")
        stems = [base if i == 0 else f"{base}-{i + 1}" for i in range(len(images))]
    files: list[str] = []
    errors: list[str] = []
    for index, (image, stem) in enumerate(zip(images, stems, strict=True)):
        try:
            path = await client.download(image, _inside(folder, stem))
        except (KetchupError, OSError) as exc:
            errors.append(f"image {index + 1}: {exc}")
            continue
        files.append(path.name)
    return DownloadReport(tuple(files), tuple(errors))


def files_missing(directory: Path, files: Sequence[str], expected: int) -> bool:
    """True when fewer than ``expected`` files are recorded or one of them is not on disk."""
    if len(files) < expected:
        return True
    return not all((directory / name).is_file() for name in files)
