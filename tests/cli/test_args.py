"""``_args``: flags, help texts, global flags before or after the command."""

from __future__ import annotations

import pytest

from ._helpers import (
    ketchup,
    run,
)


def test_a_bad_flag_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse refuses --concurrency 0 with status 2."""
    with pytest.raises(SystemExit) as info:
        run("generate", "p.txt", "--out", "x", "--concurrency", "0")
    assert info.value.code == 2
    assert "must be a positive integer" in capsys.readouterr().err


COMMANDS = ["generate", "resume", "status", "fake-server", "demo"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_a_description(command: str) -> None:
    """`ketchup COMMAND --help` says what the command does, between usage and the flags."""
    done = ketchup(command, "--help")
    assert done.returncode == 0, done.stderr
    paragraphs = done.stdout.split("\n\n")
    assert paragraphs[0].startswith("usage: ketchup")
    assert not paragraphs[1].startswith(("positional arguments:", "options:")), done.stdout


def test_help_lists_the_exit_codes() -> None:
    """`ketchup --help` documents every exit status."""
    text = ketchup("--help").stdout
    assert "exit status:" in text
    for code in ("0 ", "1 ", "2 ", "4 ", "130 ", "143 "):
        assert f"\n  {code}" in text or f"; {code}" in text, code


def test_fake_server_help_shows_defaults() -> None:
    """`ketchup fake-server --help` shows the default of every flag that has a value."""
    text = " ".join(ketchup("fake-server", "--help", columns=200).stdout.split())
    text = text.split(" options: ", 1)[1]
    for flag, default in [
        ("--render-time RENDER_TIME", "8.0"),
        ("--time-scale TIME_SCALE", "1.0"),
        ("--failure-rate FAILURE_RATE", "0.0"),
        ("--seed SEED", "0"),
        ("--result-mode {url,data_uri}", "url"),
        ("--query-rate-limit QUERY_RATE_LIMIT", "no limit"),
        ("--latency LATENCY", "0.0"),
    ]:
        after = text.split(flag, 1)[1].split(" --", 1)[0]
        assert f"(default: {default})" in after, (flag, after)
