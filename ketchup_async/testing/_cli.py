"""Process mode: run ``FakeKetchupServer`` until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from ._server import FakeKetchupServer
from ._state import Faults

__all__ = ["add_arguments", "build_server", "run"]

DEFAULT_API_KEY = "dk-test"


_SUBMIT_FAULT_FLAGS = (
    ("error_500_after_accept", "probability a submit creates the task, then answers 500"),
    ("gateway_after_accept", "probability a submit creates the task, then an HTML 502/504"),
    ("missing_task_id", "probability a submit creates the task, then answers 200 without id"),
    ("duplicate_task_id", "probability a submit is answered with the previous task's id"),
    ("stuck_status", "probability a task stays in an undocumented status forever"),
    ("empty_success", "probability a task succeeds with an empty result"),
)
_QUERY_FAULT_FLAGS = (
    ("html_404", "probability a query gets an HTML 404 page"),
    ("undocumented_status", "probability a query answers an undocumented status"),
    ("nested_body", "probability a query answers deeply nested JSON"),
    ("huge_body", "probability a query answer is padded to megabytes"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the fake server's flags to ``parser``."""
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    add("--port", type=int, default=8787, help="API port, 0 = any free (default: %(default)s)")
    add("--cdn-port", type=int, default=0, help="image CDN port, 0 = any free (default: 0)")
    add(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help=f"accepted API key, repeatable (default: {DEFAULT_API_KEY})",
    )
    add(
        "--render-time",
        type=float,
        default=8.0,
        help="median render time, API seconds (default: %(default)s)",
    )
    add(
        "--render-sigma",
        type=float,
        default=0.5,
        help="log-normal sigma of render time (default: %(default)s)",
    )
    add(
        "--time-scale",
        type=float,
        default=1.0,
        help="real seconds per API second (default: %(default)s)",
    )
    add(
        "--failure-rate",
        type=float,
        default=0.0,
        help="probability a task fails (default: %(default)s)",
    )
    add("--seed", type=int, default=0, help="RNG seed (default: %(default)s)")
    add(
        "--result-mode",
        choices=("url", "data_uri"),
        default="url",
        help="result image form (default: %(default)s)",
    )
    add(
        "--images-per-task",
        type=int,
        default=1,
        help="images per successful task (default: %(default)s)",
    )
    add(
        "--visibility-delay",
        type=float,
        default=0.0,
        help="API seconds of 404 after submit (default: %(default)s)",
    )
    add(
        "--query-rate-limit",
        type=float,
        default=None,
        help="queries per API second (default: no limit)",
    )
    add(
        "--submit-rate-limit",
        type=float,
        default=None,
        help="submits per API second (default: no limit)",
    )
    add(
        "--retry-after",
        type=float,
        default=1.0,
        help="Retry-After on 429, API seconds (default: %(default)s)",
    )
    add(
        "--callback-drop-rate",
        type=float,
        default=0.0,
        help="probability a callback is lost (default: %(default)s)",
    )
    add(
        "--callback-duplicate-rate",
        type=float,
        default=0.0,
        help="probability of 2 callbacks (default: %(default)s)",
    )
    add(
        "--callback-delay",
        type=float,
        default=0.0,
        help="API seconds before a callback (default: %(default)s)",
    )
    add(
        "--error-500-rate",
        type=float,
        default=0.0,
        help="probability of a 500 answer (default: %(default)s)",
    )
    add(
        "--html-502-rate",
        type=float,
        default=0.0,
        help="probability of an HTML 502 answer (default: %(default)s)",
    )
    add(
        "--reset-rate",
        type=float,
        default=0.0,
        help="probability of a connection reset (default: %(default)s)",
    )
    add(
        "--reset-after-accept-rate",
        type=float,
        default=0.0,
        help="probability a submit creates the task, then resets the connection "
        "(default: %(default)s)",
    )
    add(
        "--latency",
        type=float,
        default=0.0,
        help="REAL seconds added to API answers (default: %(default)s)",
    )
    add(
        "--latency-rate",
        type=float,
        default=1.0,
        help="probability --latency applies (default: %(default)s)",
    )
    for flag, text in _SUBMIT_FAULT_FLAGS + _QUERY_FAULT_FLAGS:
        add(
            f"--{flag.replace('_', '-')}-rate",
            type=float,
            default=0.0,
            help=f"{text} (default: %(default)s)",
        )
    add(
        "--request-id-header",
        default="X-Request-Id",
        help="response header carrying request ids (default: %(default)s)",
    )
    add("--extra-fields", action="store_true", help="add unknown keys to JSON responses")
    add("--omit-consumed", action="store_true", help="leave `consumed` out of query answers")
    add(
        "--no-cdn-user-agent-check",
        dest="cdn_require_user_agent",
        action="store_false",
        help="let the CDN serve clients without a proper User-Agent",
    )


def build_server(args: argparse.Namespace) -> FakeKetchupServer:
    """Create (not start) a server configured from parsed ``args``.

    Raises:
        ValueError: If a value is out of range.
    """
    latency = args.latency_rate if args.latency > 0 else 0.0
    query_faults = Faults(
        error_500=args.error_500_rate,
        html_502=args.html_502_rate,
        reset=args.reset_rate,
        latency=latency,
        latency_seconds=args.latency,
        **{flag: getattr(args, f"{flag}_rate") for flag, _ in _QUERY_FAULT_FLAGS},
    )
    submit_faults = Faults(
        error_500=args.error_500_rate,
        html_502=args.html_502_rate,
        reset=args.reset_rate,
        reset_after_accept=args.reset_after_accept_rate,
        latency=latency,
        latency_seconds=args.latency,
        **{flag: getattr(args, f"{flag}_rate") for flag, _ in _SUBMIT_FAULT_FLAGS},
    )
    return FakeKetchupServer(
        api_keys=args.api_keys or (DEFAULT_API_KEY,),
        render_time=args.render_time,
        render_sigma=args.render_sigma,
        time_scale=args.time_scale,
        failure_rate=args.failure_rate,
        seed=args.seed,
        result_mode=args.result_mode,
        images_per_task=args.images_per_task,
        visibility_delay=args.visibility_delay,
        query_rate_limit=args.query_rate_limit,
        submit_rate_limit=args.submit_rate_limit,
        retry_after=args.retry_after,
        submit_faults=submit_faults,
        query_faults=query_faults,
        callback_drop_rate=args.callback_drop_rate,
        callback_duplicate_rate=args.callback_duplicate_rate,
        callback_delay=args.callback_delay,
        cdn_require_user_agent=args.cdn_require_user_agent,
        extra_fields=args.extra_fields,
        omit_consumed=args.omit_consumed,
        request_id_header=args.request_id_header or None,
        host=args.host,
        port=args.port,
        cdn_port=args.cdn_port,
    )


async def _serve(server: FakeKetchupServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        with contextlib.suppress(NotImplementedError):  # Windows
            loop.add_signal_handler(sig, stop.set)
    try:
        async with server:
            print(f"fake server listening on {server.base_url} (cdn {server.cdn_url})", flush=True)
            await stop.wait()
    finally:
        for sig in signals:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; return the process exit code (0 on a clean stop)."""
    try:
        server = build_server(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(server))
    except OSError as exc:
        print(f"error: cannot start fake server: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # pragma: no cover - signal arrived before handlers were set
        return 0
    return 0
