"""``python -m benchmarks``: run the side-by-side benchmarks, write RESULTS.md and the chart."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .report import headline_table, render_markdown, write_chart
from .runner import RunOptions, run_all
from .targets import check_targets

__all__ = ["main"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; exit 0 once RESULTS.md is written (targets are reported, not
    enforced, unless ``--check``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every row")
    parser.add_argument("--sweep-rounds", type=int, default=1, help="rounds of sweep points")
    parser.add_argument("--smoke", action="store_true", help="tiny workloads, a few seconds")
    parser.add_argument("--seed", type=int, default=1, help="the fake server's seed")
    parser.add_argument("--only", nargs="*", default=[], help="workloads to run (W1 W2 W3 W4)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="output directory")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument(
        "--render", type=Path, metavar="JSON", help="only re-render a results.json (no runs)"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.sweep_rounds < 0:
        parser.error("--rounds must be >= 1 and --sweep-rounds >= 0")
    options = RunOptions(
        rounds=1 if args.smoke else args.rounds,
        sweep_rounds=min(args.sweep_rounds, args.rounds),
        smoke=args.smoke,
        seed=args.seed,
        only=tuple(args.only),
    )
    if args.render is not None:
        results = json.loads(args.render.read_text())
    else:
        results = run_all(options, _log)
        results["command"] = " ".join(
            ["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])]
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    if write_chart(results, args.out / "tradeoff.png"):
        _log(f"wrote {args.out / 'tradeoff.png'}")
    command = results.get("command", "python -m benchmarks")
    (args.out / "RESULTS.md").write_text(render_markdown(results, command))
    _log(f"wrote {args.out / 'RESULTS.md'}")
    for line in headline_table(results):
        print(line)
    missed = [target for target, _, met in check_targets(results) if not met]
    for target in missed:
        _log(f"target missed: {target}")
    return 1 if (args.check and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
