"""Models: validation on construction, image helpers, policies."""

from __future__ import annotations

import base64

import pytest

from ketchup_async import (
    GenerateRequest,
    ImageResult,
    PollPolicy,
    RetryPolicy,
    TaskStatus,
    ValidationError,
)

PNG_URI = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nxx").decode()


def field_of(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return exc.value.field


def test_valid_request_keeps_its_fields() -> None:
    """A valid request stores prompt, model, images (as a tuple) and callback."""
    request = GenerateRequest(
        "a red bicycle",
        model="google/gempix2",
        images=["https://x.test/a.png"],
        callback_url="https://hooks.test/cb",
    )
    assert request.images == ("https://x.test/a.png",)
    assert request.model == "google/gempix2"


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_blank_prompt_is_refused(prompt: str) -> None:
    """An empty or whitespace-only prompt names the prompt field."""
    with pytest.raises(ValidationError) as exc:
        GenerateRequest(prompt)
    assert field_of(exc) == "prompt"
    assert "empty" in str(exc.value)


def test_non_string_prompt_is_refused() -> None:
    """A prompt that is not a string says which type it got."""
    with pytest.raises(ValidationError, match=r"prompt: must be a string, got int"):
        GenerateRequest(42)  # type: ignore[arg-type]


def test_huge_prompt_is_refused() -> None:
    """A prompt over the local limit is refused with its length."""
    with pytest.raises(ValidationError) as exc:
        GenerateRequest("x" * 100_001)
    assert field_of(exc) == "prompt"
    assert "100,001" in str(exc.value)


def test_nul_in_prompt_is_refused() -> None:
    """A prompt containing NUL is refused."""
    with pytest.raises(ValidationError, match="NUL"):
        GenerateRequest("a\x00b")


@pytest.mark.parametrize("model", ["", "  ", "google/ gempix2"])
def test_bad_model_is_refused(model: str) -> None:
    """An empty model, or one with whitespace, names the model field."""
    with pytest.raises(ValidationError) as exc:
        GenerateRequest("p", model=model)
    assert field_of(exc) == "model"


def test_unknown_model_name_is_allowed() -> None:
    """Model names beyond the two documented ones are allowed."""
    assert GenerateRequest("p", model="google/some-future-model").model


def test_five_images_are_refused_by_default() -> None:
    """More than 4 reference images is refused, naming the count and the limit."""
    with pytest.raises(ValidationError) as exc:
        GenerateRequest("p", images=[f"https://x.test/{i}.png" for i in range(5)])
    assert field_of(exc) == "images"
    assert "5 reference images; at most 4" in str(exc.value)


def test_image_limit_is_configurable() -> None:
    """``max_images`` raises the limit (the provider's prose says five)."""
    request = GenerateRequest("p", images=[PNG_URI] * 5, max_images=5)
    assert len(request.images) == 5


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "javascript:alert(1)",
        "ftp://x.test/a.png",
        "/relative.png",
        "https://",
        "http://exa mple.com/a.png",
    ],
)
def test_bad_image_url_names_its_index(url: str) -> None:
    """A reference image that is not an absolute http(s) URL names images[i]."""
    with pytest.raises(ValidationError) as exc:
        GenerateRequest("p", images=["https://ok.test/a.png", url])
    assert field_of(exc) == "images[1]"


def test_images_must_be_a_list() -> None:
    """A single string instead of a list of images is refused."""
    with pytest.raises(ValidationError) as exc:
        GenerateRequest("p", images="https://x.test/a.png")  # type: ignore[arg-type]
    assert field_of(exc) == "images"


def test_non_string_image_is_refused() -> None:
    """A reference image that is not a string names its index and type."""
    with pytest.raises(ValidationError, match=r"images\[0\]: must be a string URL, got int"):
        GenerateRequest("p", images=[3])  # type: ignore[list-item]


def test_data_uri_image_is_accepted() -> None:
    """An image data URI with valid base64 is a valid reference image."""
    assert GenerateRequest("p", images=[PNG_URI]).images == (PNG_URI,)


@pytest.mark.parametrize(
    "uri",
    [
        "data:text/plain;base64,aGk=",
        "data:image/png;base64,@@@",
        "data:image/png;base64,",
        "data:image/png,rawdata",
    ],
)
def test_bad_data_uri_is_refused(uri: str) -> None:
    """A data URI that is not base64 image data is refused, naming images[0]."""
    with pytest.raises(ValidationError) as exc:
        GenerateRequest("p", images=[uri])
    assert field_of(exc) == "images[0]"


def test_huge_data_uri_is_refused() -> None:
    """A data URI over the local size limit is refused before any encoding work."""
    uri = "data:image/png;base64," + "A" * (16 * 1024 * 1024)
    with pytest.raises(ValidationError, match="limit"):
        GenerateRequest("p", images=[uri])


@pytest.mark.parametrize("url", ["ftp://hooks.test/cb", "hooks.test/cb", "javascript:x"])
def test_bad_callback_url_is_refused(url: str) -> None:
    """A callback URL that is not absolute http(s) names callback_url."""
    with pytest.raises(ValidationError) as exc:
        GenerateRequest("p", callback_url=url)
    assert field_of(exc) == "callback_url"


def test_image_result_tells_url_from_data_uri() -> None:
    """``ImageResult`` exposes the URL only for URLs and decodes data URIs."""
    url = ImageResult("https://cdn.test/a.png")
    inline = ImageResult(PNG_URI)
    assert url.url == "https://cdn.test/a.png"
    assert not url.is_data_uri
    assert inline.url is None
    assert inline.is_data_uri
    assert inline.media_type == "image/png"
    assert inline.decode().startswith(b"\x89PNG")


def test_decoding_a_url_is_an_error() -> None:
    """``decode()`` on a URL result says to download it instead."""
    with pytest.raises(ValidationError, match="download"):
        ImageResult("https://cdn.test/a.png").decode()


def test_decoding_corrupt_data_uri_is_an_error() -> None:
    """``decode()`` on invalid base64 raises ValidationError, not binascii.Error."""
    with pytest.raises(ValidationError, match="base64"):
        ImageResult("data:image/png;base64,!!!").decode()


def test_status_finality() -> None:
    """Only success and failed are final."""
    assert {s for s in TaskStatus if s.is_final} == {TaskStatus.SUCCESS, TaskStatus.FAILED}


def test_poll_policy_rate_defaults_to_adaptive() -> None:
    """``PollPolicy()`` has no fixed query budget: ``rate`` is None (adaptive)."""
    assert PollPolicy().rate is None


def test_poll_policy_rejects_nonsense() -> None:
    """Non-positive numbers and an inverted interval range are refused, naming the field."""
    with pytest.raises(ValidationError, match="rate"):
        PollPolicy(rate=0)
    with pytest.raises(ValidationError, match="max_interval"):
        PollPolicy(min_interval=5, max_interval=1)
    with pytest.raises(ValidationError, match="first_poll_quantile"):
        PollPolicy(first_poll_quantile=1.5)
    with pytest.raises(ValidationError, match="dense_until"):
        PollPolicy(dense_until=1.0)


def test_policies_scale_durations_and_rates() -> None:
    """``scaled(f)`` multiplies durations by f and divides the query rate by f."""
    policy = PollPolicy(rate=10.0).scaled(0.05)
    assert policy.min_interval == pytest.approx(0.05)
    assert policy.rate == pytest.approx(200.0)
    assert PollPolicy().scaled(0.05).rate is None  # adaptive stays adaptive
    assert RetryPolicy().scaled(0.1).cap == pytest.approx(0.8)


def test_retry_policy_rejects_negative_retries() -> None:
    """A negative retry count is refused."""
    with pytest.raises(ValidationError, match="max_retries"):
        RetryPolicy(max_retries=-1)


def test_request_repr_hides_the_callback_token() -> None:
    """repr(request) shows the callback host but not its secret path."""
    request = GenerateRequest("p", callback_url="https://app.test/ketchup/callback/s3cr3tT0ken")
    assert "s3cr3tT0ken" not in repr(request)
    assert "https://app.test/" in repr(request)
