"""``make mutate``: mutation testing of the pure core, each module against its own tests.

For every module below, a scratch copy of the project is made under ``build/mutate/<name>``
holding the package, the shared test helpers and only that module's own test files; mutmut
mutates that one module and runs those tests. The table printed at the end gives, per module,
the mutants, how many were killed, the survivors (each shown as its diff), the mutants
excluded below (message text only, or equivalent: each with its reason), and the score:
killed / (mutants - excluded). The bar is 90% per module; the exit status is 1 below it.

    python -m tools.mutate            # every module
    python -m tools.mutate _retry     # one module
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "mutate"
BAR = 0.90


@dataclass(frozen=True)
class Target:
    """One pure module and its own tests."""

    name: str
    module: str
    tests: tuple[str, ...]


@dataclass(frozen=True)
class HandMutant:
    """A mutant mutmut does not make (it mutates function bodies only): module-level tables,
    regexes and enum members. ``old`` must occur exactly once in the module."""

    target: str
    old: str
    new: str


TARGETS = (
    Target("_states", "ketchup_async/bulk/_states.py", ("tests/bulk/test_states.py",)),
    Target("_schedule", "ketchup_async/_schedule.py", ("tests/test_schedule.py",)),
    Target("_retry", "ketchup_async/_retry.py", ("tests/test_retry.py",)),
    Target("_validate", "ketchup_async/_validate.py", ("tests/test_validate.py",)),
    Target("_converter", "ketchup_async/_converter.py", ("tests/test_converter.py",)),
    Target("_reactions", "ketchup_async/_reactions.py", ("tests/test_reactions.py",)),
    Target("_addresses", "ketchup_async/_addresses.py", ("tests/test_addresses.py",)),
    Target("_budget", "ketchup_async/_budget.py", ("tests/test_budget.py",)),
    Target("_rate", "ketchup_async/_rate.py", ("tests/test_rate.py",)),
)


def _hand(target: str, old: str, *news: str) -> tuple[HandMutant, ...]:
    return tuple(HandMutant(target, old, new) for new in news)


_FINAL = "{State.SUCCEEDED, State.FAILED, State.UNCERTAIN, State.REUSED}"
_RETRY = "frozenset({429, 500, 502, 503, 504})"
_DATA_URI = """re.compile(r"data:image/([a-z0-9.+-]+);base64,", re.IGNORECASE)"""
_NUMERIC = """re.compile(r"(?:0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)"""
_LABEL = "[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"

#: Hand-made mutants of module-level tables, regexes and enum members.
HAND_MUTANTS = (
    *_hand(
        "_states",
        _FINAL,
        "{State.SUCCEEDED, State.UNCERTAIN, State.REUSED}",
        "{State.SUCCEEDED, State.FAILED, State.REUSED}",
        "{State.FAILED, State.UNCERTAIN, State.REUSED}",
        "{State.SUCCEEDED, State.FAILED, State.UNCERTAIN}",
        "{State.SUCCEEDED, State.FAILED, State.UNCERTAIN, State.REUSED, State.SUBMITTED}",
    ),
    *_hand("_states", 'QUEUED = "queued"', 'QUEUED = "queue"'),
    *_hand("_states", 'UNCERTAIN = "uncertain"', 'UNCERTAIN = "unknown"'),
    *_hand("_states", 'REUSED = "reused"', 'REUSED = "reuse"'),
    *_hand("_states", "State.REUSED: frozenset(),", "State.REUSED: frozenset({State.QUEUED}),"),
    *_hand(
        "_states",
        "State.QUEUED: frozenset({State.SUBMITTING, State.REUSED}),",
        "State.QUEUED: frozenset({State.SUBMITTING}),",
        "State.QUEUED: frozenset({State.SUBMITTING, State.REUSED, State.FAILED}),",
    ),
    *_hand(
        "_states",
        "State.SUBMITTED: frozenset({State.SUCCEEDED, State.FAILED}),",
        "State.SUBMITTED: frozenset({State.SUCCEEDED}),",
        "State.SUBMITTED: frozenset({State.SUCCEEDED, State.FAILED, State.SUBMITTING}),",
    ),
    *_hand(
        "_states",
        "State.UNCERTAIN: frozenset({State.QUEUED}),",
        "State.UNCERTAIN: frozenset(),",
    ),
    *_hand(
        "_retry",
        _RETRY,
        "frozenset({429, 500, 503, 504})",
        "frozenset({429, 500, 502, 503})",
        "frozenset({500, 502, 503, 504})",
        "frozenset({429, 502, 503, 504})",
        "frozenset({429, 500, 502, 504})",
        "frozenset({429, 500, 502, 503, 504, 501})",
    ),
    *_hand(
        "_retry",
        "REFUSED_STATUSES = frozenset({429, 503})",
        "REFUSED_STATUSES = frozenset({429})",
        "REFUSED_STATUSES = frozenset({503})",
        "REFUSED_STATUSES = frozenset({429, 503, 502})",
    ),
    *_hand(
        "_retry",
        "RETRIED_STATUSES = frozenset({500})",
        "RETRIED_STATUSES = frozenset()",
        "RETRIED_STATUSES = frozenset({500, 502})",
        "RETRIED_STATUSES = frozenset({500, 504})",
    ),
    *_hand("_retry", 'ACCEPTED = "accepted"', 'ACCEPTED = "ok"'),
    *_hand("_retry", 'AMBIGUOUS = "ambiguous"', 'AMBIGUOUS = "uncertain"'),
    *_hand("_validate", "DEFAULT_MAX_IMAGES = 4", "DEFAULT_MAX_IMAGES = 5"),
    *_hand("_validate", "MAX_PROMPT_CHARS = 100_000", "MAX_PROMPT_CHARS = 100_001"),
    *_hand("_validate", "MAX_URL_CHARS = 8192", "MAX_URL_CHARS = 8191"),
    *_hand("_validate", "MAX_TASK_ID_CHARS = 256", "MAX_TASK_ID_CHARS = 255"),
    *_hand(
        "_validate",
        "MAX_DATA_URI_CHARS = 16 * 1024 * 1024",
        "MAX_DATA_URI_CHARS = 16 * 1024 * 1024 + 1",
    ),
    *_hand(
        "_validate",
        'MODEL_GEMPIX2 = "google/gempix2"',
        'MODEL_GEMPIX2 = "google/gempix"',
    ),
    *_hand(
        "_validate",
        _DATA_URI,
        _DATA_URI.replace(", re.IGNORECASE", ""),
        _DATA_URI.replace("[a-z0-9.+-]+", "[a-z0-9.-]+"),
        _DATA_URI.replace("[a-z0-9.+-]+", "[a-z0-9+-]+"),
        _DATA_URI.replace("[a-z0-9.+-]+", "[a-z.+-]+"),
        _DATA_URI.replace("[a-z0-9.+-]+", "[a-z0-9.+]+"),
        _DATA_URI.replace("[a-z0-9.+-]+", "[a-z0-9.+-]*"),
        _DATA_URI.replace("[a-z0-9.+-]+", "[a-z0-9.+_-]+"),
        _DATA_URI.replace("image/", "image.?/"),
        _DATA_URI.replace(";base64,", ";base64"),
    ),
    *_hand(
        "_converter", "MAX_CONSUMED = Decimal(1_000_000_000)", "MAX_CONSUMED = Decimal(999_999_999)"
    ),
    *_hand(
        "_converter",
        "_MAX_CONSUMED_PLACES = 18",
        "_MAX_CONSUMED_PLACES = 17",
        "_MAX_CONSUMED_PLACES = 19",
    ),
    *_hand(
        "_converter",
        "_MAX_CONSUMED_CHARS = 40",
        "_MAX_CONSUMED_CHARS = 39",
        "_MAX_CONSUMED_CHARS = 41",
    ),
    *_hand(
        "_converter",
        "_STATUSES = frozenset(status.value for status in TaskStatus)",
        "_STATUSES = frozenset(status.value for status in TaskStatus if status.is_final)",
    ),
    *_hand("_reactions", "NOT_FOUND_REPEATS = 3", "NOT_FOUND_REPEATS = 2", "NOT_FOUND_REPEATS = 4"),
    *_hand("_reactions", "STRAY_404_LIMIT = 3", "STRAY_404_LIMIT = 2", "STRAY_404_LIMIT = 4"),
    *_hand("_reactions", "UNEXPECTED_LIMIT = 3", "UNEXPECTED_LIMIT = 2", "UNEXPECTED_LIMIT = 4"),
    *_hand(
        "_reactions",
        'EMPTY_SUCCESS = "success without any image"',
        'EMPTY_SUCCESS = "success without an image"',
    ),
    *_hand("_reactions", 'FAIL_ALL = "fail_all"', 'FAIL_ALL = "fail-all"'),
    *_hand("_reactions", "    pause: float = 0.0\n", "    pause: float = 1.0\n"),
    *_hand(
        "_reactions", "    stray_404s: int = 0\n\n\n@attrs", "    stray_404s: int = 1\n\n\n@attrs"
    ),
    # Not made, being equivalent on every supported Python: narrowing 100.64.0.0/10 (never
    # is_global anyway) or 64:ff9b:1::/48 (inside ::/8, is_reserved), and dropping
    # re.IGNORECASE from _NUMERIC_LABEL (hosts are lower-cased before it is matched).
    *_hand(
        "_addresses",
        'ipaddress.ip_network("192.0.0.0/24"),',
        'ipaddress.ip_network("192.0.0.0/25"),',
    ),
    *_hand(
        "_addresses",
        _NUMERIC,
        _NUMERIC.replace("[0-9a-f]*", "[0-9a-f]+"),
        _NUMERIC.replace("[0-9a-f]*", "[0-9]*"),
        _NUMERIC.replace("|[0-9]+", ""),
    ),
    *_hand(
        "_addresses",
        f'r"{_LABEL}(?:\\.{_LABEL})*"',
        f'r"{_LABEL}(?:\\.{_LABEL})*".replace("_", "")',
        f'r"{_LABEL}(?:\\.{_LABEL})*".replace("61", "62")',
        f'r"{_LABEL}(?:\\.{_LABEL})*".replace("61", "60")',
        f'r"{_LABEL}(?:\\.{_LABEL})*".replace("-]", "]")',
        f'r"{_LABEL}(?:\\.{_LABEL})*".replace("[a-z0-9_](", "[a-z0-9_-](")',
        f'r"{_LABEL}(?:\\.{_LABEL})*".replace("[a-z0-9_])?", "[a-z0-9_-])?")',
    ),
    *_hand(
        "_addresses",
        'ENV_DOWNLOAD_HOSTS = "KETCHUP_DOWNLOAD_HOSTS"',
        'ENV_DOWNLOAD_HOSTS = "KETCHUP_DOWNLOAD_HOST"',
    ),
    *_hand(
        "_addresses",
        '_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")',
        '_MAPPED = ipaddress.IPv6Network("::ffff:0:0/95")',
    ),
    *_hand("_schedule", "TICK_FRACTION = 0.1", "TICK_FRACTION = 0.2"),
    *_hand("_budget", 'GO = "go"', 'GO = "ok"'),
    *_hand("_budget", 'WAIT = "wait"', 'WAIT = "later"'),
    *_hand("_budget", 'STOP = "stop"', 'STOP = "done"'),
)

#: Mutants that change no behaviour a caller can observe, by mutant name, with the text of
#: the mutated line (so an entry goes stale, and is reported, when the code changes) and why.
_PRIVATE = "equivalent: every loopback, link-local and unspecified address is also is_private"
_SPACE = "equivalent: chr(32) is a space, refused by isspace() already"
_CACHE = "equivalent: the cache is refreshed before its first use (model.count is never -1)"
_SCHEDULE = "ketchup_async._schedule.xǁScheduleǁ"
_RATE_FIRST_CUT = "equivalent: read only after a 429 has cut, which sets it first"
_RATE_AT_CEILING = "equivalent: before the first cut the rate is at its ceiling, which cuts"
EXCLUDED: dict[str, tuple[str, str]] = {
    **{
        f"{_SCHEDULE}__init____mutmut_{n}": (line, _CACHE)
        for n, line in (
            (7, "self._first_offset = None"),
            (8, "self._first_offset = 1.0"),
            (9, "self._dense_end = None"),
            (10, "self._dense_end = 1.0"),
            (11, "self._cached_count = None"),
            (13, "self._cached_count = -2"),
        )
    },
    f"{_SCHEDULE}_refresh__mutmut_11": (
        "self._cached_count = None",
        "equivalent: never caching recomputes the same values (it only costs time)",
    ),
    f"{_SCHEDULE}next_due__mutmut_13": (
        "if age <= self._first_offset:  # queried early (resumed, verified): wait for the window",
        "equivalent: at age == first offset both branches wait exactly min_interval",
    ),
    f"{_SCHEDULE}align__mutmut_11": (
        "return aligned if aligned > due else due",
        "equivalent: when aligned == due both branches return the same value",
    ),
    "ketchup_async._schedule.xǁDurationModelǁobserve_between__mutmut_26": (
        "if mass <= 1e-9:  # far out in a tail of the fit: fall back to the bracket's middle",
        "equivalent: a bracket holding exactly 1e-9 of the fit is a valid input to both updates",
    ),
    **{
        f"ketchup_async._rate.xǁRateControllerǁ{name}": (line, reason)
        for name, line, reason in (
            ("__init____mutmut_25", "self._since = +math.inf", _RATE_FIRST_CUT),
            ("__init____mutmut_26", "self._held = None", _RATE_FIRST_CUT),
            ("__init____mutmut_27", "self._held = 1", _RATE_FIRST_CUT),
            ("__init____mutmut_29", "self._last_cut = +math.inf", _RATE_AT_CEILING),
            (
                "on_answered__mutmut_6",
                "while answers[0] < horizon:",
                "equivalent: served() skips an answer on the horizon; pruning it later only "
                "costs memory",
            ),
            (
                "current_rate__mutmut_6",
                "if now >= start:",
                "equivalent: at now == start no whole step has passed; since stays start",
            ),
            (
                "current_rate__mutmut_11",
                "steps = int((now - start) / self.recovery_period)",
                "equivalent: int() of a positive quotient is its floor",
            ),
            (
                "current_rate__mutmut_13",
                "if steps >= 0:",
                "equivalent: zero steps recover nothing and move since to start, its value "
                "for the next call anyway",
            ),
            (
                "_recover__mutmut_7",
                "if level > ceiling:",
                "equivalent: a level at the ceiling ends the loop at or above it either way, "
                "and the cut is forgotten after the loop",
            ),
        )
    },
    **{
        f"ketchup_async._retry.x_classify_submit_answer__mutmut_{n}": (
            line,
            "equivalent: 500 is in RETRIED_STATUSES, classified before this test",
        )
        for n, line in ((15, "if status > 500:"), (16, "if status >= 501:"))
    },
    "ketchup_async._budget.xǁCreditBudgetǁlearn__mutmut_1": (
        "if cost >= self._highest.get(model, Decimal(-1)):",
        "equivalent: storing an equal cost again changes no value",
    ),
    "ketchup_async._budget.xǁCreditBudgetǁlearn__mutmut_8": (
        "if cost > self._highest.get(model, Decimal(-2)):",
        "equivalent: costs are never negative (settle passes as_credits-checked values)",
    ),
    "ketchup_async._validate.x_check_api_key__mutmut_26": (
        "if any(c.isspace() or ord(c) <= 32 for c in value):",
        _SPACE,
    ),
    "ketchup_async._validate.x_check_api_key__mutmut_27": (
        "if any(c.isspace() or ord(c) < 33 for c in value):",
        _SPACE,
    ),
    "ketchup_async._addresses.x_looks_numeric__mutmut_10": (
        'return ":" not in name and _NUMERIC_LABEL.fullmatch(name.rsplit(".", )[-1]) is not None',
        "equivalent: the last piece of rsplit is the same whatever the number of splits",
    ),
    "ketchup_async._addresses.x_looks_numeric__mutmut_13": (
        'return ":" not in name and _NUMERIC_LABEL.fullmatch(name.rsplit(".", 2)[-1]) is not None',
        "equivalent: the last piece of rsplit is the same whatever the number of splits",
    ),
    "ketchup_async._addresses.xǁHostAllowListǁparse__mutmut_41": (
        "networks.append(ipaddress.ip_network(text, strict=None))",
        "equivalent: None is as false as False",
    ),
    "ketchup_async._addresses.x_is_public_address__mutmut_10": (
        "or address.is_private and address.is_unspecified",
        _PRIVATE,
    ),
    "ketchup_async._addresses.x_is_public_address__mutmut_11": (
        "or address.is_link_local and address.is_private",
        _PRIVATE,
    ),
    "ketchup_async._addresses.x_is_public_address__mutmut_12": (
        "address.is_loopback and address.is_link_local",
        _PRIVATE,
    ),
    "ketchup_async._validate.x_check_http_url__mutmut_15": (
        "if any(c.isspace() or ord(c) <= 32 for c in value):",
        "equivalent: chr(32) is a space, refused by isspace() already",
    ),
    "ketchup_async._validate.x_check_http_url__mutmut_16": (
        "if any(c.isspace() or ord(c) < 33 for c in value):",
        "equivalent: chr(32) is a space, refused by isspace() already",
    ),
}


@dataclass
class Result:
    """What mutmut found for one target."""

    target: Target
    statuses: dict[str, str] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)
    stale: list[str] = field(default_factory=list)
    diffs: dict[str, str] = field(default_factory=dict)
    hand: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.statuses) + len(self.hand)

    @property
    def killed(self) -> int:
        statuses = [*self.statuses.values(), *self.hand.values()]
        return sum(1 for s in statuses if s == "killed")

    @property
    def survivors(self) -> list[str]:
        statuses = {**self.statuses, **self.hand}
        return [n for n, s in statuses.items() if s != "killed" and n not in self.excluded]

    @property
    def score(self) -> float:
        counted = self.total - len(self.excluded)
        return 1.0 if counted <= 0 else self.killed / counted


def _scratch(target: Target) -> Path:
    where = WORK / target.name
    shutil.rmtree(where, ignore_errors=True)
    (where / "tests").mkdir(parents=True)
    shutil.copytree(ROOT / "ketchup_async", where / "ketchup_async")
    for helper in (ROOT / "tests").glob("*.py"):
        if not helper.name.startswith("test_"):
            shutil.copy2(helper, where / "tests" / helper.name)
    for test in target.tests:
        dest = where / test
        dest.parent.mkdir(parents=True, exist_ok=True)
        init = dest.parent / "__init__.py"
        if not init.exists():
            init.touch()
        shutil.copy2(ROOT / test, dest)
    tests = ", ".join(f'"{t}"' for t in target.tests)
    (where / "pyproject.toml").write_text(
        "[tool.mutmut]\n"
        'source_paths = ["ketchup_async"]\n'
        f'only_mutate = ["{target.module}"]\n'
        f"pytest_add_cli_args_test_selection = [{tests}]\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]\n\n'
        "[tool.pytest.ini_options]\n"
        'pythonpath = ["tests"]\n'
        'filterwarnings = ["error"]\n',
        encoding="utf-8",
    )
    return where


def _mutmut(where: Path, *args: str) -> str:
    mutmut = Path(sys.executable).with_name("mutmut")
    proc = subprocess.run(
        [str(mutmut), *args],
        cwd=where,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(where)},
    )
    return proc.stdout + proc.stderr


def _plus_line(diff: str) -> str:
    return "\n".join(
        line[1:].strip()
        for line in diff.splitlines()
        if line.startswith("+") and not line.startswith("+++")
    )


def _run_hand_mutants(target: Target, where: Path, result: Result) -> None:
    source = where / target.module
    original = source.read_text(encoding="utf-8")
    for number, mutant in enumerate(m for m in HAND_MUTANTS if m.target == target.name):
        name = f"{target.name}.hand_{number + 1}"
        if original.count(mutant.old) != 1:
            result.hand[name] = "stale (the code changed; review it)"
            result.diffs[name] = f"-{mutant.old}"
            continue
        source.write_text(original.replace(mutant.old, mutant.new), encoding="utf-8")
        try:
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-x",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    *target.tests,
                ],
                cwd=where,
                capture_output=True,
                check=False,
                env={**os.environ, "PYTHONPATH": str(where)},
            )
        finally:
            source.write_text(original, encoding="utf-8")
        result.hand[name] = "killed" if proc.returncode != 0 else "survived"
        result.diffs[name] = f"-{mutant.old}\n+{mutant.new}"


def run_target(target: Target) -> Result:
    """Mutate one module against its own tests and collect every mutant's status."""
    where = _scratch(target)
    result = Result(target)
    _run_hand_mutants(target, where, result)
    _mutmut(where, "run", "--max-children", str(os.cpu_count() or 2))
    for line in _mutmut(where, "results", "--all", "true").splitlines():
        match = re.match(r"\s*([\w.]+__mutmut_\d+): (.+)$", line)
        if match:
            result.statuses[match.group(1)] = match.group(2).strip()
    for name, status in result.statuses.items():
        if status == "killed" and name not in EXCLUDED:
            continue
        diff = _mutmut(where, "show", name)
        result.diffs[name] = diff
        if name in EXCLUDED:
            expected, reason = EXCLUDED[name]
            if _plus_line(diff) == expected:
                result.excluded[name] = reason
            else:
                result.stale.append(name)
    return result


def report(results: list[Result]) -> bool:
    """Print the table and the survivors; True if every module meets the bar."""
    heads = ("mutants", "killed", "excluded", "survived", "score")
    print(f"\n{'module':<12} " + " ".join(f"{h:>9}" for h in heads))
    ok = True
    for r in results:
        total = r.total
        mark = "" if r.score >= BAR else "  < 90%"
        ok &= r.score >= BAR and total > 0
        cells = (total, r.killed, len(r.excluded), len(r.survivors))
        print(
            f"{r.target.name:<12} " + " ".join(f"{c:>9}" for c in cells) + f" {r.score:>9.1%}{mark}"
        )
    for r in results:
        for name in r.survivors:
            status = r.statuses.get(name) or r.hand.get(name)
            print(f"\nsurvived ({status}): {name}\n{_strip_header(r.diffs.get(name, ''))}")
        for name, reason in r.excluded.items():
            print(f"excluded: {name}: {reason}")
        for name in r.stale:
            print(f"stale exclusion (the code changed; review it): {name}")
    return ok


def _strip_header(diff: str) -> str:
    return "\n".join(line for line in diff.splitlines() if line[:1] in "-+@" and line[:3] != "---")


def main() -> int:
    """Run the targets named on the command line (all by default)."""
    parser = argparse.ArgumentParser(prog="python -m tools.mutate", description=__doc__)
    parser.add_argument("names", nargs="*", help="targets to run (default: all)")
    args = parser.parse_args()
    chosen = [t for t in TARGETS if not args.names or t.name in args.names]
    if not chosen:
        parser.error(f"no such target; choose from {', '.join(t.name for t in TARGETS)}")
    results = []
    for target in chosen:
        print(f"mutating {target.module} against {', '.join(target.tests)} ...", flush=True)
        results.append(run_target(target))
    return 0 if report(results) else 1


if __name__ == "__main__":
    sys.exit(main())
