"""``python -m ketchup_async.testing``: run the fake Ketchup server in its own process."""

from __future__ import annotations

import argparse
import sys

from ._cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the fake server; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m ketchup_async.testing",
        description="Run a fake Ketchup API (and its image CDN) for tests and benchmarks.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
