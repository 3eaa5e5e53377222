"""The ``ketchup`` command line: argparse definitions, and the one-line user error."""

from __future__ import annotations

import argparse
import math

from .. import __version__
from ..testing import add_server_arguments

__all__ = ["DEFAULT_DEMO_DIR", "UsageError", "build_parser"]

DEFAULT_DEMO_DIR = "ketchup-demo"


class UsageError(Exception):
    """A user mistake: printed as one ``ketchup: error: ...`` line, exit status 2."""


class _RefuseApiKey(argparse.Action):
    """``--api-key VALUE`` exists only to refuse it clearly (it would leak into ps/history)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        raise UsageError(
            "--api-key is not accepted: a key on the command line leaks into shell history and "
            "process lists; set KETCHUP_API_KEY or use --api-key-file FILE"
        )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


EXIT_STATUS_HELP = """\
exit status:
  0    every input succeeded (status: every task was read)
  1    some inputs failed, are uncertain or not finished (see the summary)
  2    usage error (bad flag, input file, key or directory): nothing was sent
  4    the run's journal cannot be used (locked by another run, corrupt, or a write
       failed, e.g. a full disk): fix the cause, then `ketchup resume DIR`
  5    the credit budget (--max-credits) was reached and nothing failed: inputs not
       sent stay queued; go on with `ketchup resume DIR --max-credits M`
  130  interrupted (Ctrl-C); 143 terminated (SIGTERM): `ketchup resume DIR` continues
"""

EPILOG = (
    EXIT_STATUS_HELP
    + """

The API key comes from $KETCHUP_API_KEY or --api-key-file, never from the command line.
-v, --base-url and --api-key-file may come before or after the command.
"""
)


def _add_global(parser: argparse.ArgumentParser, *, top: bool, connection: bool) -> None:
    """The flags accepted before and after the command.

    After the command, they default to ``SUPPRESS`` so that they do not undo the same flag
    given before it.
    """

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    add = parser.add_argument
    add(
        "-v",
        "--verbose",
        action="store_true",
        default=default(False),
        help="log what the SDK does (every request, every retry) on stderr",
    )
    if not connection:
        return
    add(
        "--base-url",
        metavar="URL",
        default=default(None),
        help="API root (default: $KETCHUP_BASE_URL, else https://api.defapi.org)",
    )
    add(
        "--api-key-file",
        metavar="FILE",
        default=default(None),
        help="read the API key from FILE (default: $KETCHUP_API_KEY); mode 600 or stricter",
    )


def _credits(text: str) -> str:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of credits, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number of credits >= 0, got {text!r}")
    return text.strip()  # kept as text: credits are Decimals


def _add_budget(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--max-credits",
        type=_credits,
        metavar="N",
        help="never submit a job that could push this run's spend (credits consumed, earlier "
        "runs in DIR included, plus a reservation per job in flight) past N; the rest stays "
        "queued (exit status 5)",
    )
    add(
        "--price",
        type=_credits,
        metavar="P",
        help="credits one job costs at most, reserved per job from the start (default: learned "
        "from results, one job at a time until then)",
    )


def _add_connection(parser: argparse.ArgumentParser) -> None:
    _add_global(parser, top=False, connection=True)
    add = parser.add_argument
    add("--api-key", nargs="?", action=_RefuseApiKey, help=argparse.SUPPRESS)
    add(
        "--time-scale",
        type=_positive_float,
        default=1.0,
        metavar="F",
        help="scale the client's timings (polling, retries) by F, to match a fake server "
        "started with --time-scale F",
    )


def _add_run(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--concurrency",
        type=_positive_int,
        default=128,
        metavar="N",
        help="jobs in flight at once (default: %(default)s)",
    )
    add("--submit-rate", type=_positive_float, metavar="R", help="submits per second at most")
    add(
        "--query-rate",
        type=_positive_float,
        metavar="R",
        help="task queries per second, for the whole run (default: 10)",
    )
    add("--no-download", dest="download", action="store_false", help="do not download images")


def build_parser() -> argparse.ArgumentParser:
    """The ``ketchup`` parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="ketchup",
        description="Generate images with the Ketchup API (google/gempix2), many at once.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ketchup-async {__version__}")
    _add_global(parser, top=True, connection=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    gen = commands.add_parser(
        "generate",
        help="generate an image per prompt into a directory (running it again resumes)",
        description="Generate an image per input into DIR, durably: the run is journaled in "
        "DIR/.ketchup, so running the same command again (or `ketchup resume DIR`) picks up "
        "where it stopped without paying twice.",
        epilog=EXIT_STATUS_HELP,
    )
    gen.add_argument(
        "input",
        metavar="INPUT",
        help="a .txt file (a prompt a line), a .jsonl file (id, prompt, images, model), "
        "or - for stdin (a prompt a line)",
    )
    gen.add_argument("--out", required=True, metavar="DIR", help="output directory")
    gen.add_argument("--model", metavar="M", help="model for inputs that name none")
    gen.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="URL",
        help="reference image for inputs that have none (repeatable)",
    )
    _add_run(gen)
    _add_budget(gen)
    gen.add_argument(
        "--reuse",
        action="append",
        default=[],
        metavar="DIR",
        help="take the files of identical requests (model, prompt, images) that succeeded in "
        "the earlier run DIR instead of paying again (repeatable; checksums verified)",
    )
    _add_connection(gen)

    resume = commands.add_parser(
        "resume",
        help="finish a run that stopped",
        description="Finish the run journaled in DIR: re-attach submitted tasks, download "
        "missing files, submit what was never sent. Inputs whose submit was in flight when the "
        "run stopped are 'uncertain' (they may have been charged) and are left alone unless "
        "--resubmit-uncertain is given.",
        epilog=EXIT_STATUS_HELP,
    )
    resume.add_argument("dir", metavar="DIR", help="the output directory of the run")
    resume.add_argument(
        "--resubmit-uncertain",
        action="store_true",
        help="submit uncertain inputs again (each may then be paid twice)",
    )
    _add_run(resume)
    _add_budget(resume)
    _add_connection(resume)

    status = commands.add_parser(
        "status",
        help="query tasks by id (a line each, or --json)",
        description="Query each task once and print its status, credits and image URLs "
        "(whole, never cut: piped output is the same). Exit status 1 if a task could not be "
        "read (not found, or an error).",
    )
    status.add_argument("task_ids", nargs="+", metavar="TASK_ID", help="task ids (ta...)")
    status.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per task id, in order: task_id, status, consumed, images, "
        "reason, error",
    )
    _add_connection(status)

    fake = commands.add_parser(
        "fake-server",
        help="run a fake Ketchup API (for tests and benchmarks)",
        description="Run a fake Ketchup API and its image CDN until Ctrl-C.",
    )
    add_server_arguments(fake)
    _add_global(fake, top=False, connection=False)

    demo = commands.add_parser(
        "demo",
        help="generate sample prompts against an in-process fake API",
        description="Start a fake Ketchup API in this process and generate sample prompts "
        "into DIR: a progress bar, real PNG files and a manifest, no key, no credits.",
    )
    demo.add_argument(
        "--count", type=_positive_int, default=24, metavar="N", help="images (default: 24)"
    )
    demo.add_argument(
        "--out",
        default=DEFAULT_DEMO_DIR,
        metavar="DIR",
        help="output directory (default: ./%(default)s)",
    )
    demo.add_argument(
        "--concurrency",
        type=_positive_int,
        default=8,
        metavar="N",
        help="jobs in flight (default: %(default)s)",
    )
    demo.add_argument(
        "--time-scale",
        type=_positive_float,
        default=0.1,
        metavar="F",
        help="real seconds per API second (default: %(default)s, ten times real speed)",
    )
    _add_global(demo, top=False, connection=False)
    return parser
