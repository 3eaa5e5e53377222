"""Tests of downloading every image of a result into a directory (``_bulk_files``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ketchup_async import ImageResult, KetchupClient
from ketchup_async.bulk._files import download_result, file_stem, files_missing, safe_name
from ketchup_async.testing import FakeKetchupServer

from ..conftest import API_KEY, SCALE, make_client

pytestmark = pytest.mark.anyio


@pytest.fixture
async def two_image_server() -> AsyncIterator[FakeKetchupServer]:
    """A fake API whose results carry two images."""
    async with FakeKetchupServer(api_keys=(API_KEY,), time_scale=SCALE, images_per_task=2) as s:
        yield s


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def _images(server: FakeKetchupServer, client: KetchupClient) -> tuple[ImageResult, ...]:
    task_id = server.create_task("two cats")
    server.complete_now(task_id)
    return (await client.query(task_id)).images


async def test_every_image_gets_a_numbered_name(
    two_image_server: FakeKetchupServer, tmp_path: Path
) -> None:
    """{id}.png then {id}-2.png, in image order."""
    async with make_client(two_image_server) as client:
        images = await _images(two_image_server, client)
        report = await download_result(client, images, tmp_path, key="cats 7")
    assert report.files == ("cats_7.png", "cats_7-2.png")
    assert report.complete
    assert all((tmp_path / name).read_bytes()[:4] == b"\x89PNG" for name in report.files)


async def test_a_hostile_id_stays_inside_the_directory(
    two_image_server: FakeKetchupServer, tmp_path: Path
) -> None:
    """'../../x' is written as x.png inside the output directory, nothing outside."""
    out = tmp_path / "out"
    async with make_client(two_image_server) as client:
        images = await _images(two_image_server, client)
        report = await download_result(client, images[:1], out, key="../../escaped")
    assert report.files == ("escaped.png",)
    assert _names(tmp_path) == ["out"]


async def test_claimed_stems_are_used(server: FakeKetchupServer, tmp_path: Path) -> None:
    """The claim callback decides the stems (the journal's unique names)."""
    asked: list[int] = []

    async def claim(count: int) -> list[str]:
        asked.append(count)
        return ["chosen"]

    async with make_client(server) as client:
        images = await _images(server, client)
        report = await download_result(client, images, tmp_path, key="ignored", claim=claim)
    assert (asked, report.files) == ([1], ("chosen.png",))


async def test_a_failed_image_does_not_stop_the_others(
    two_image_server: FakeKetchupServer, tmp_path: Path
) -> None:
    """An image the CDN refuses is reported; the next image is still written."""
    async with make_client(two_image_server) as client:
        images = await _images(two_image_server, client)
        broken = ImageResult(images[0].image.replace("-0.png", "-9.png"))  # CDN: 404
        report = await download_result(client, (broken, images[1]), tmp_path, key="k")
    assert report.files == ("k-2.png",)
    assert len(report.errors) == 1
    assert "image 1: image host answered HTTP 404" in report.errors[0]
    assert not report.complete


def test_file_stem_is_the_sanitised_key() -> None:
    """The stem of an input is safe_name of its key, shortened."""
    assert file_stem("a/b c") == "a_b_c"
    assert len(file_stem("k" * 500)) == 80


def test_files_missing(tmp_path: Path) -> None:
    """Missing when fewer files than images are recorded, or one is gone from disk."""
    (tmp_path / "a.png").write_bytes(b"x")
    assert not files_missing(tmp_path, ["a.png"], 1)
    assert files_missing(tmp_path, ["a.png"], 2)
    assert files_missing(tmp_path, ["a.png", "gone.png"], 2)
    assert not files_missing(tmp_path, [], 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("../../etc/passwd", "etc_passwd"),
        ("a\x00b", "a_b"),
        ("", "image"),
        ("...", "image"),
        ("/", "image"),
        (".hidden", "hidden"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("caf\u00e9 au lait", "caf_au_lait"),
        ("line 42", "line_42"),
    ],
)
def test_safe_name_examples(text: str, expected: str) -> None:
    """Hostile names become plain, visible file names."""
    assert safe_name(text) == expected


def test_safe_name_caps_very_long_names() -> None:
    """A 10,000-character id gives a name of at most max_len characters."""
    assert len(safe_name("x" * 10_000)) == 100
    assert len(safe_name("y" * 500, max_len=20)) == 20


@given(st.text(max_size=300))
def test_safe_name_never_escapes(text: str) -> None:
    """Whatever the input: a non-empty plain name, no separator, no leading dot."""
    name = safe_name(text)
    assert 0 < len(name) <= 100
    assert "/" not in name
    assert "\\" not in name
    assert "\x00" not in name
    assert not name.startswith(".")
    assert name not in (".", "..")
