"""Files of a bulk run: every image of a result into one directory, under sanitised names.

Names come from the input's key through ``safe_name`` (``{safe_id}.png``, ``{safe_id}-2.png``
for a second image...), without a trailing image extension of the key itself; the journal
reserves each stem for one input (ignoring case), so two keys that sanitise alike never
overwrite each other. The extension always comes from the image's content type, so an input's
file never has the name of one of the run's own files (``manifest.jsonl``, ``.ketchup/``).

An image is written to a staging directory first, then linked into place with ``os.link``,
which never replaces an existing file: a name already taken on disk (a file the run did not
write) gets a short digest suffix instead. Nothing is written outside the directory.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import attrs

from .._models import ImageResult
from ..errors import KetchupError, ValidationError

if TYPE_CHECKING:
    from .._client import KetchupClient

__all__ = [
    "FILE_STEM_CHARS",
    "DownloadReport",
    "download_result",
    "file_stem",
    "files_missing",
    "place",
    "safe_name",
    "sha256_file",
]

#: Longest stem made from a key (room is left for ``-2`` and a digest suffix).
FILE_STEM_CHARS = 80

#: Reserves ``count`` stems for an input, e.g. ``Journal.claim_names`` bound to its row.
ClaimNames = Callable[[int], Awaitable[list[str]]]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_IMAGE_SUFFIX = re.compile(r"\.(png|jpe?g|webp|gif|avif)$", re.IGNORECASE)
# Device names Windows refuses as file names, whatever the extension.
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
)
_PLACE_ATTEMPTS = 32


def safe_name(text: str, *, max_len: int = 100) -> str:
    """A file name made from ``text`` that cannot leave its directory or hide itself.

    Only ASCII letters, digits, ``.``, ``_`` and ``-`` are kept (runs of anything else become
    one ``_``); leading and trailing dots and underscores are dropped, so the result is never
    ``.``, ``..`` or a hidden file; Windows device names get a ``_`` prefix; an empty result
    becomes ``image``.
    """
    name = _UNSAFE.sub("_", text).strip("._")[: max(1, max_len)].strip("._")
    if not name:
        return "image"
    if name.split(".", 1)[0].upper() in _RESERVED:
        name = f"_{name}"[: max(1, max_len)]
    return name


@attrs.frozen
class DownloadReport:
    """What ``download_result`` wrote.

    Attributes:
        files: Names of the files written (relative to the directory), in image order.
        errors: One message per image that could not be written.
        checksums: The sha256 (hex) of each file written, in ``files`` order.
    """

    files: tuple[str, ...]
    errors: tuple[str, ...]
    checksums: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """True when every image was written."""
        return not self.errors


def sha256_file(path: Path) -> str:
    """The sha256 (hex) of the file at ``path`` (blocking: run it in a thread)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_stem(key: str) -> str:
    """The file stem (no extension) an input's first image is named after.

    A trailing image extension of the key is dropped (``cat.png`` -> ``cat``): the file's
    extension always comes from the image itself.
    """
    return safe_name(_IMAGE_SUFFIX.sub("", key), max_len=FILE_STEM_CHARS)


def place(src: Path, directory: Path, stem: str) -> Path:
    """Move the staged file ``src`` to ``directory/{stem}{suffix}`` without replacing a file.

    A name already taken gets a short digest suffix (``cat-1a2b3c4d.png``).

    Raises:
        FileExistsError: No free name was found (practically impossible).
    """
    for attempt in range(_PLACE_ATTEMPTS):
        name = stem
        if attempt:
            name = f"{stem}-{hashlib.sha256(f'{stem}:{attempt}'.encode()).hexdigest()[:8]}"
        target = _inside(directory, name + src.suffix)
        try:
            os.link(src, target)
        except FileExistsError:
            continue
        except OSError:  # no hard links here: exclusive create, then copy
            try:
                with open(target, "xb") as out, open(src, "rb") as data:
                    shutil.copyfileobj(data, out)
                    out.flush()
                    os.fsync(out.fileno())
            except FileExistsError:
                continue
        src.unlink()
        return target
    raise FileExistsError(f"no free file name for {stem!r} in {str(directory)!r}")


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
    staging: str | os.PathLike[str] | None = None,
) -> DownloadReport:
    """Download (or decode) every image of one result into ``directory``.

    The first image is ``{stem}.<ext>``, the next ``{stem}-2.<ext>``... where ``stem`` is the
    sanitised ``key`` (default ``image``), unless ``claim`` hands out other stems; a name
    taken by an existing file gets a digest suffix (nothing is ever replaced). The extension
    comes from the content type. A failed image does not stop the others.

    Args:
        client: The client whose session, User-Agent, retries and size cap are used.
        images: The result's images.
        directory: Where to write (created if missing).
        key: The input's key the names derive from (default ``image``).
        claim: Reserves the stems (the bulk runner passes the journal's ``claim_names``).
        staging: Where images are written before they are moved into place (same file
            system; default ``directory``, under hidden names).

    Returns:
        The files written and the errors of the images that failed.
    """
    folder = Path(directory)
    stage = Path(staging) if staging is not None else folder
    if claim is not None:
        stems = await claim(len(images))
    else:
        base = file_stem(key or "image")
        stems = [base if i == 0 else f"{base}-{i + 1}" for i in range(len(images))]
    await anyio.to_thread.run_sync(lambda: folder.mkdir(parents=True, exist_ok=True))
    files: list[str] = []
    sums: list[str] = []
    errors: list[str] = []
    for index, (image, stem) in enumerate(zip(images, stems, strict=True)):
        try:
            _inside(folder, stem)
            staged = await client.download(image, stage / f".ketchup-{secrets.token_hex(8)}")
            try:
                digest = await anyio.to_thread.run_sync(sha256_file, staged)
                path = await anyio.to_thread.run_sync(place, staged, folder, stem)
            finally:
                staged.unlink(missing_ok=True)
        except (KetchupError, OSError) as exc:
            errors.append(f"image {index + 1}: {exc}")
            continue
        files.append(path.name)
        sums.append(digest)
    return DownloadReport(tuple(files), tuple(errors), tuple(sums))


def files_missing(directory: Path, files: Sequence[str], expected: int) -> bool:
    """True when fewer than ``expected`` files are recorded or one of them is not on disk."""
    if len(files) < expected:
        return True
    return not all((directory / name).is_file() for name in files)
