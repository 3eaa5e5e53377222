"""BulkOptions (one frozen value for run_bulk and resume_bulk) and bulk/'s use of the core."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ketchup_async
from ketchup_async import BulkOptions, KetchupClient, ValidationError
from ketchup_async.bulk import _run

BULK = Path(ketchup_async.__file__).parent / "bulk"


def test_options_have_documented_defaults() -> None:
    """The defaults are the ones run_bulk always had."""
    options = BulkOptions()
    assert (options.concurrency, options.download, options.download_concurrency) == (128, True, 8)
    assert (options.resubmit_uncertain, options.progress, options.callback_url) == (
        False,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("concurrency", 0),
        ("concurrency", True),
        ("download_concurrency", "8"),
        ("download", 1),
        ("progress_interval", 0),
        ("progress", "print"),
        ("callback_url", "not a url"),
    ],
)
def test_a_bad_option_names_its_field(field: str, value: object) -> None:
    """A bad option is a ValidationError naming the option."""
    with pytest.raises(ValidationError, match=f"^{field}"):
        BulkOptions(**{field: value})  # type: ignore[arg-type]


def test_keywords_override_the_options_value() -> None:
    """run_bulk/resume_bulk keyword arguments override fields of ``options``."""
    chosen = _run._options(BulkOptions(concurrency=4), {"download": False})
    assert (chosen.concurrency, chosen.download) == (4, False)


def test_an_unknown_keyword_is_refused() -> None:
    """A keyword that is no bulk option is a ValidationError, not a TypeError."""
    with pytest.raises(ValidationError, match="concurency: is not a bulk option"):
        _run._options(None, {"concurency": 4})


def test_the_callback_token_is_masked_in_repr() -> None:
    """The callback URL (it carries a secret token) is not in the options' repr."""
    assert "s3cret" not in repr(BulkOptions(callback_url="https://h.example/cb/s3cret"))


def _core_imports() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted(BULK.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                module = node.module or ""
                found += [(path.name, module, alias.name) for alias in node.names]
    return found


def test_bulk_uses_only_public_names_of_the_core() -> None:
    """Every name bulk/ imports from the core is public (``ketchup_async.__all__``)."""
    public = set(ketchup_async.__all__)
    private = [
        f"{file}: {module}.{name}"
        for file, module, name in _core_imports()
        if module != "errors" and name not in public
    ]
    assert not private
    assert KetchupClient.__name__ in public
