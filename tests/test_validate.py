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


@pytest.mark.parametrize(
    ("value", "problem"),
    [(None, "must be a string, got NoneType"), (7, "must be a string, got int")],
)
def test_task_id_of_the_wrong_type(value: object, problem: str) -> None:
    """A task id is a string."""
    error = _error(lambda: v.check_task_id(value))
    assert (error.field, error.problem) == ("task_id", problem)


def test_empty_task_id_is_refused() -> None:
    """An empty task id names the field given."""
    error = _error(lambda: v.check_task_id("", field="ids[2]"))
    assert (error.field, error.problem) == ("ids[2]", "must not be empty")


def test_task_id_at_its_length_limit_passes_and_one_more_is_refused() -> None:
    """MAX_TASK_ID_CHARS (256) is inclusive."""
    assert v.MAX_TASK_ID_CHARS == 256
    assert v.check_task_id("t" * 256) == "t" * 256
    error = _error(lambda: v.check_task_id("t" * 257))
    assert (error.field, error.problem) == (
        "task_id",
        "is 257 characters long; the limit is 256",
    )
    assert _error(lambda: v.check_task_id("t" * 1257)).problem.startswith("is 1,257 characters")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("ta\n1", "'ta\\n1'"),
        ("ta\x001", "'ta\\x001'"),
        ("   ", "'   '"),
        ("\t", "'\\t'"),
        ("\x7f" + "a" * 39, repr("\x7f" + "a" * 39)),
        ("\x7f" + "a" * 40, repr("\x7f" + "a" * 39) + "..."),
    ],
)
def test_task_id_not_printable_or_blank_is_refused_and_shown(value: str, shown: str) -> None:
    """Control characters and blank ids are refused, showing at most 40 characters."""
    error = _error(lambda: v.check_task_id(value))
    assert error.field == "task_id"
    assert error.problem == (
        f"must be printable text, not blank or with control characters (got {shown})"
    )


@pytest.mark.parametrize("value", ["ta1", "-x", "a_b", "t a", "é/ü?#%", " x "])
def test_printable_task_ids_pass_unchanged(value: str) -> None:
    """Any printable, non-blank id passes as it is (spaces inside included)."""
    assert v.check_task_id(value) is value


@pytest.mark.parametrize(
    ("value", "ok"), [(0, True), (5, True), (True, False), (1.0, False), ("1", False)]
)
def test_is_int(value: object, ok: bool) -> None:
    """is_int: an int, never a bool."""
    assert v.is_int(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"), [(0, True), (1.5, True), (False, False), ("1", False), (None, False)]
)
def test_is_number(value: object, ok: bool) -> None:
    """is_number: an int or a float, never a bool."""
    assert v.is_number(value) is ok


def test_check_int_bounds() -> None:
    """check_int accepts its minimum (0 by default) and refuses one less."""
    assert v.check_int(0, field="n") == 0
    assert v.check_int(3, field="n", minimum=3) == 3
    error = _error(lambda: v.check_int(-1, field="n"))
    assert (error.field, error.problem) == ("n", "must be an integer >= 0, got -1")
    error = _error(lambda: v.check_int(2, field="m", minimum=3))
    assert (error.field, error.problem) == ("m", "must be an integer >= 3, got 2")


@pytest.mark.parametrize(
    ("value", "shown"), [(True, "bool"), (1.5, "1.5"), ("3", "str"), (None, "NoneType")]
)
def test_check_int_refuses_non_integers(value: object, shown: str) -> None:
    """A bool, a float or a string is not an integer: numbers shown by value, others by type."""
    error = _error(lambda: v.check_int(value, field="retries"))
    assert (error.field, error.problem) == ("retries", f"must be an integer >= 0, got {shown}")


def test_check_type() -> None:
    """check_type passes a matching value, None only when optional, and names the field."""
    v.check_type(1, int, field="f", what="an int")
    v.check_type(None, int, field="f", what="an int", optional=True)
    error = _error(lambda: v.check_type(None, int, field="f", what="an int"))
    assert (error.field, error.problem) == ("f", "must be an int, got NoneType")
    error = _error(lambda: v.check_type("x", (int, float), field="g", what="a number"))
    assert (error.field, error.problem) == ("g", "must be a number, got str")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (5, "must be a string, got int"),
        (None, "no API key: pass api_key=... or set the KETCHUP_API_KEY variable"),
        ("", "no API key: pass api_key=... or set the KETCHUP_API_KEY variable"),
        ("  ", "no API key: pass api_key=... or set the KETCHUP_API_KEY variable"),
        ("sk one", "must be a single token without whitespace"),
        ("sk\x01x", "must be a single token without whitespace"),
        ("sk\x1f", "must be a single token without whitespace"),
        (" sk", "must be a single token without whitespace"),
    ],
)
def test_bad_api_keys(value: object, problem: str) -> None:
    """A missing, blank or multi-token API key is refused under the field api_key."""
    error = _error(lambda: v.check_api_key(value))
    assert (error.field, error.problem) == ("api_key", problem)


def test_a_good_api_key_passes() -> None:
    """A single printable token passes unchanged."""
    assert v.check_api_key("sk-live_123 ".strip()) == "sk-live_123"
    assert v.check_api_key("a\x7fb") == "a\x7fb"


def test_images_that_are_not_iterable_are_refused() -> None:
    """A number is not a list of images; the field defaults to images."""
    error = _error(lambda: v.check_images(3, max_images=4))
    assert (error.field, error.problem) == ("images", "must be a list of image URLs, got int")
    assert _error(lambda: v.check_images("x", max_images=4, field="refs")).field == "refs"


def test_image_items_name_the_given_field() -> None:
    """Items are named after the list's field."""
    error = _error(lambda: v.check_images(["nope"], max_images=4, field="inputs[2].images"))
    assert error.field == "inputs[2].images[0]"


def test_a_space_or_a_control_character_in_a_url_is_refused() -> None:
    """Characters 0 to 31 and any whitespace are refused; 32 is a space."""
    for c in ("\x00", "\x1f", " ", "\u3000"):
        error = _error(lambda c=c: v.check_http_url(f"https://a.com/{c}", field="u"))
        assert error.problem == "URL must not contain whitespace or control characters"
    assert v.check_http_url("https://a.com/!~", field="u") == "https://a.com/!~"


def test_data_uri_default_limit_applies() -> None:
    """Without max_chars the limit is MAX_DATA_URI_CHARS."""
    head = "data:image/png;base64,"
    uri = head + "A" * (v.MAX_DATA_URI_CHARS + 1 - len(head))
    error = _error(lambda: v.check_data_uri(uri, field="f"))
    assert error.problem == "data URI is 16,777,217 characters; the limit is 16,777,216"


@pytest.mark.parametrize(
    "uri",
    [
        "data:image/png;base64,aGk=",
        "data:image/PNG;base64,aGk=",
        "data:image/a.b+c-9;base64,aGk=",
    ],
)
def test_data_uri_subtype_characters(uri: str) -> None:
    """Subtypes use letters (any case), digits, dots, pluses and dashes."""
    assert v.check_data_uri(uri, field="f") == uri


@pytest.mark.parametrize(
    "uri",
    [
        "data:image/p_g;base64,aGk=",
        "data:image/p g;base64,aGk=",
        "xdata:image/png;base64,aGk=",
        "data:images/png;base64,aGk=",
        "data:image/png;base32,aGk=",
    ],
)
def test_data_uri_shapes_refused(uri: str) -> None:
    """Anything but data:image/<subtype>;base64, at the very start is refused."""
    error = _error(lambda: v.check_data_uri(uri, field="f"))
    assert error.problem == "data URI must look like data:image/<type>;base64,<data>"


def test_model_names_documented() -> None:
    """The two documented model names."""
    assert (v.MODEL_GEMPIX2, v.MODEL_GEMINI_FLASH_IMAGE) == (
        "google/gempix2",
        "google/gemini-2.5-flash-image",
    )


@pytest.mark.parametrize("value", [{}, {"https://a.com/x": 1}])
def test_images_as_a_mapping_is_refused(value: object) -> None:
    """A mapping is not a list of images (not even an empty one)."""
    error = _error(lambda: v.check_images(value, max_images=4))
    assert (error.field, error.problem) == ("images", "must be a list of image URLs, got dict")
