"""Tests of the fake server's process mode (``python -m ketchup_async.testing``)."""

from __future__ import annotations

import argparse
import json
import re
import select
import signal
import subprocess
import sys
import urllib.request

import pytest

from ketchup_async.testing._cli import add_arguments, build_server

LINE_RE = re.compile(
    r"^fake server listening on (http://127\.0\.0\.1:\d+) \(cdn (http://127\.0\.0\.1:\d+)\)$"
)


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_default_api_key_is_dk_test() -> None:
    """Without --api-key the process accepts 'dk-test'."""
    assert build_server(_parse()).api_keys == frozenset({"dk-test"})


def test_flags_configure_the_server() -> None:
    """Repeated --api-key and fault rates reach the server."""
    server = build_server(_parse("--api-key", "dk-a", "--api-key", "dk-b", "--reset-rate", "0.5"))
    assert server.api_keys == frozenset({"dk-a", "dk-b"})
    assert server.query_faults.reset == server.submit_faults.reset == 0.5


def test_out_of_range_flag_is_rejected() -> None:
    """A probability above 1 is a ValueError when building the server."""
    with pytest.raises(ValueError, match="error_500"):
        build_server(_parse("--error-500-rate", "3"))


def test_process_mode_serves_and_exits_cleanly_on_sigterm() -> None:
    """The process prints its URLs, answers requests and exits 0 on SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ketchup_async.testing", "--port", "0", "--time-scale", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 10.0)
        assert ready, "no startup line within 10 s"
        match = LINE_RE.match(proc.stdout.readline().strip())
        assert match, "unexpected startup line"
        base_url = match.group(1)
        request = urllib.request.Request(
            f"{base_url}/api/image/gen",
            data=json.dumps({"model": "google/gempix2", "prompt": "cat"}).encode(),
            headers={"Authorization": "Bearer dk-test", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.load(response)["data"]["task_id"].startswith("ta")
        with urllib.request.urlopen(f"{base_url}/_fake/stats", timeout=5) as response:
            assert json.load(response)["tasks"] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_adversarial_fault_flags_reach_their_endpoint() -> None:
    """--gateway-after-accept-rate configures submits, --html-404-rate queries, and so on."""
    server = build_server(
        _parse(
            "--gateway-after-accept-rate",
            "0.1",
            "--missing-task-id-rate",
            "0.2",
            "--html-404-rate",
            "0.3",
            "--nested-body-rate",
            "0.4",
            "--request-id-header",
            "CF-Ray",
        )
    )
    assert server.submit_faults.gateway_after_accept == 0.1
    assert server.submit_faults.missing_task_id == 0.2
    assert server.query_faults.html_404 == 0.3
    assert server.query_faults.nested_body == 0.4
    assert server.submit_faults.html_404 == server.query_faults.gateway_after_accept == 0.0
