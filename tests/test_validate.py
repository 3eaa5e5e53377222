"""Tests of local validation (``_validate``): every limit at its edge, each error's field."""

from __future__ import annotations

import base64
import math

import pytest

from ketchup_async import _validate as v
from ketchup_async.errors import ValidationError

PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake").decode()


def _error(call: object) -> ValidationError:
    assert callable(call)
    with pytest.raises(ValidationError) as info:
        call()
    return info.value


def test_prompt_at_its_length_limit_is_accepted() -> None:
    """A prompt of exactly MAX_PROMPT_CHARS characters passes."""
    prompt = "a" * v.MAX_PROMPT_CHARS
    assert v.check_prompt(prompt) is prompt


def test_prompt_one_past_its_length_limit_is_refused() -> None:
    """A prompt one character over the limit is refused, with both lengths in the message."""
    error = _error(lambda: v.check_prompt("a" * (v.MAX_PROMPT_CHARS + 1)))
    assert error.field == "prompt"
    assert error.problem == "is 100,001 characters long; the limit is 100,000"


def test_prompt_limit_is_one_hundred_thousand() -> None:
    """The documented prompt limit is 100,000 characters."""
    assert v.MAX_PROMPT_CHARS == 100_000


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "must be a string, got NoneType"),
        (b"bytes", "must be a string, got bytes"),
        ("", "must not be empty or only whitespace"),
        (" \t\n", "must not be empty or only whitespace"),
        ("a\x00b", "must not contain NUL characters"),
    ],
)
def test_bad_prompts_name_the_problem(value: object, problem: str) -> None:
    """Each kind of bad prompt gets its own message."""
    error = _error(lambda: v.check_prompt(value))
    assert (error.field, error.problem) == ("prompt", problem)


def test_prompt_error_names_the_given_field() -> None:
    """``field=`` is the name the error carries."""
    assert _error(lambda: v.check_prompt("", field="inputs[3].prompt")).field == "inputs[3].prompt"


def test_prompt_with_surrounding_spaces_is_kept_as_is() -> None:
    """A prompt is returned unchanged (not stripped)."""
    assert v.check_prompt("  a cat  ") == "  a cat  "


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (3, "must be a string, got int"),
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        (" google/gempix2", "must not contain whitespace, got ' google/gempix2'"),
        ("google/ gempix2", "must not contain whitespace, got 'google/ gempix2'"),
        ("google/gempix2\t", "must not contain whitespace, got 'google/gempix2\\t'"),
    ],
)
def test_bad_models_name_the_problem(value: object, problem: str) -> None:
    """Model names are non-empty strings without whitespace."""
    error = _error(lambda: v.check_model(value))
    assert (error.field, error.problem) == ("model", problem)


def test_model_error_names_the_given_field_and_unknown_models_pass() -> None:
    """An undocumented model name is allowed; the field name is the caller's."""
    assert v.check_model("vendor/new-model") == "vendor/new-model"
    assert _error(lambda: v.check_model("", field="--model")).field == "--model"


def test_known_models_are_the_documented_two() -> None:
    """The provider documents gempix2 and gemini-2.5-flash-image."""
    assert v.KNOWN_MODELS == ("google/gempix2", "google/gemini-2.5-flash-image")


def test_url_at_its_length_limit_is_accepted() -> None:
    """A URL of exactly MAX_URL_CHARS characters passes."""
    base = "https://cdn.example.com/"
    url = base + "a" * (v.MAX_URL_CHARS - len(base))
    assert len(url) == 8192
    assert v.check_http_url(url, field="u") == url


def test_url_one_past_its_length_limit_is_refused() -> None:
    """A URL one character over the limit is refused."""
    base = "https://cdn.example.com/"
    url = base + "a" * (v.MAX_URL_CHARS + 1 - len(base))
    error = _error(lambda: v.check_http_url(url, field="images[0]"))
    assert (error.field, error.problem) == ("images[0]", "URL is longer than 8192 characters")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "must be a string URL, got NoneType"),
        ("https://a.com/x y", "URL must not contain whitespace or control characters"),
        ("https://a.com/\x07", "URL must not contain whitespace or control characters"),
        ("https://a.com/\x1f", "URL must not contain whitespace or control characters"),
        ("ftp://a.com/x", "must be an absolute http(s) URL (scheme was 'ftp')"),
        ("file:///etc/passwd", "must be an absolute http(s) URL (scheme was 'file')"),
        ("a.com/x", "must be an absolute http(s) URL (scheme was 'none')"),
        ("https:///x", "must be an absolute http(s) URL with a host"),
    ],
)
def test_bad_urls_name_the_problem(value: object, problem: str) -> None:
    """Each kind of bad URL gets its own message, naming the caller's field."""
    error = _error(lambda: v.check_http_url(value, field="callback_url"))
    assert (error.field, error.problem) == ("callback_url", problem)


def test_url_with_a_bad_port_is_refused() -> None:
    """A port that is not a number is a clear error, not a ValueError from urllib."""
    error = _error(lambda: v.check_http_url("https://a.com:99999/x", field="base_url"))
    assert error.field == "base_url"
    assert error.problem.startswith("is not a valid URL: ")


@pytest.mark.parametrize("url", ["http://a.com", "HTTPS://A.COM/x?y=1", "https://[::1]:8080/p"])
def test_good_urls_pass_unchanged(url: str) -> None:
    """http and https (any case) with a host pass as they are."""
    assert v.check_http_url(url, field="u") == url


@pytest.mark.parametrize(
    "uri",
    [
        PNG,
        "DATA:IMAGE/PNG;BASE64,aGk=",
        "data:image/svg+xml;base64,aGk=",
        "data:image/x-icon;base64,aGk=",
        "data:image/vnd.microsoft.icon;base64,aGk=",
    ],
)
def test_image_data_uris_pass(uri: str) -> None:
    """Any image subtype, in any case, with valid base64 passes."""
    assert v.check_data_uri(uri, field="f") == uri


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("data:image/;base64,aGk=", "data URI must look like data:image/<type>;base64,<data>"),
        ("data:text/plain;base64,aGk=", "data URI must look like data:image/<type>;base64,<data>"),
        ("data:image/png,aGk=", "data URI must look like data:image/<type>;base64,<data>"),
        ("data:image/png;base64,", "data URI has no image data"),
        ("data:image/png;base64,!!!!", "data URI payload is not valid base64"),
        ("data:image/png;base64,aGk", "data URI payload is not valid base64"),
    ],
)
def test_bad_data_uris_name_the_problem(uri: str, problem: str) -> None:
    """Each kind of bad data URI gets its own message."""
    error = _error(lambda: v.check_data_uri(uri, field="images[1]"))
    assert (error.field, error.problem) == ("images[1]", problem)


def test_data_uri_at_its_size_limit_is_accepted_and_one_past_refused() -> None:
    """``max_chars`` is inclusive."""
    uri = "data:image/png;base64,aGk="
    assert v.check_data_uri(uri, field="f", max_chars=len(uri)) == uri
    error = _error(lambda: v.check_data_uri(uri, field="f", max_chars=len(uri) - 1))
    assert error.problem == f"data URI is {len(uri):,} characters; the limit is {len(uri) - 1:,}"


def test_data_uri_default_limit_is_sixteen_mebibytes() -> None:
    """The default data URI limit is 16 MiB of characters."""
    assert v.MAX_DATA_URI_CHARS == 16 * 1024 * 1024


def test_image_ref_dispatches_on_the_data_prefix() -> None:
    """A ``data:`` value (any case) is checked as a data URI, anything else as a URL."""
    assert v.check_image_ref(PNG, field="f") == PNG
    assert v.check_image_ref("https://a.com/i.png", field="f") == "https://a.com/i.png"
    bad = _error(lambda: v.check_image_ref("DaTa:image/png;base64,", field="f"))
    assert bad.problem == "data URI has no image data"
    assert _error(lambda: v.check_image_ref(7, field="f")).problem == (
        "must be a string URL, got int"
    )


@pytest.mark.parametrize("value", ["", "https://a.com/i.png", b"x"])
def test_images_as_a_string_is_refused(value: object) -> None:
    """A string (even empty) is not a list of images."""
    error = _error(lambda: v.check_images(value, max_images=4))
    assert error.field == "images"
    assert error.problem == f"must be a list of image URLs, got {type(value).__name__}"


def test_images_at_the_limit_pass_and_one_more_is_refused() -> None:
    """``max_images`` is inclusive, and the error says how many there were."""
    urls = [f"https://a.com/{i}.png" for i in range(5)]
    assert v.check_images(urls[:4], max_images=4) == tuple(urls[:4])
    error = _error(lambda: v.check_images(urls, max_images=4))
    assert (error.field, error.problem) == (
        "images",
        "has 5 reference images; at most 4 are allowed",
    )


def test_images_name_the_bad_item_by_index() -> None:
    """A bad item is named ``images[i]``."""
    error = _error(lambda: v.check_images(["https://a.com/x", "nope"], max_images=4))
    assert error.field == "images[1]"


def test_images_accept_any_iterable_and_return_a_tuple() -> None:
    """Generators and tuples are read into a tuple; the default limit is 4."""
    assert v.check_images(iter(["https://a.com/x"]), max_images=1) == ("https://a.com/x",)
    assert v.check_images((), max_images=0) == ()
    assert v.DEFAULT_MAX_IMAGES == 4


@pytest.mark.parametrize(
    ("value", "integer", "problem"),
    [
        (True, False, "must be a positive number, got bool"),
        (True, True, "must be a positive integer, got bool"),
        (1.5, True, "must be a positive integer, got float"),
        ("3", False, "must be a positive number, got str"),
        (0, False, "must be a positive number, got 0"),
        (-1, True, "must be a positive integer, got -1"),
        (math.inf, False, "must be a positive number, got inf"),
        (math.nan, False, "must be a positive number, got nan"),
    ],
)
def test_bad_positive_numbers_name_the_problem(value: object, integer: bool, problem: str) -> None:
    """Booleans, wrong types, zero, negatives and non-finite numbers are refused."""
    error = _error(lambda: v.check_positive(value, field="timeout", integer=integer))
    assert (error.field, error.problem) == ("timeout", problem)


@pytest.mark.parametrize(("value", "integer"), [(1, True), (0.001, False), (3, False)])
def test_positive_numbers_pass_unchanged(value: float, integer: bool) -> None:
    """Finite numbers above zero pass (ints as numbers too)."""
    assert v.check_positive(value, field="f", integer=integer) == value


def test_data_uri_errors_name_the_field_whatever_went_wrong() -> None:
    """The size error and a data URI checked through ``check_image_ref`` name the field."""
    uri = "data:image/png;base64,aGk="
    assert _error(lambda: v.check_data_uri(uri, field="x", max_chars=3)).field == "x"
    assert _error(lambda: v.check_image_ref("data:image/png;base64,", field="y")).field == "y"


def test_positive_accepts_fractions_unless_asked_for_an_integer() -> None:
    """``integer`` defaults to False: a fraction passes; ``integer=True`` refuses it."""
    assert v.check_positive(0.5, field="f") == 0.5
    assert _error(lambda: v.check_positive(0.5, field="f", integer=True)).field == "f"
