"""`python -m tools.mutations`: run the mutation check and print the table.

--list              list the mutations and their tests, run nothing
--only NAME ...     run only these mutations
--tests T ...       run these tests for every selected mutation instead of each one's own
--suite             run the default suite (`-m "not slow"`) for every selected mutation;
                    the golden-number test is left out unless --with-golden, because it
                    kills any change of numbers without telling whether the change is wrong
--baseline          first run the selected tests on the unmutated copy (they must pass)
--timeout S         seconds per mutation (default 1800)
--keep              keep the temporary copies (their paths are printed on failure)
"""

import argparse
import sys

from ._catalogue import CATALOGUE
from ._runner import run_mutation

SUITE = ["-m", "not slow"]
GOLDEN = "tests/test_golden.py"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.mutations", description=__doc__)
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--only", nargs="+", metavar="NAME")
    parser.add_argument("--tests", nargs="+", metavar="TEST")
    parser.add_argument("--suite", action="store_true")
    parser.add_argument("--with-golden", action="store_true")
    parser.add_argument("--baseline", action="store_true")
    parser.add_argument("--all-failures", action="store_true")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)

    names = {m.name for m in CATALOGUE}
    unknown = set(args.only or ()) - names
    if unknown:
        parser.error(f"unknown mutation(s) {sorted(unknown)}; --list shows them")
    selected = [m for m in CATALOGUE if not args.only or m.name in args.only]
    if args.list:
        for m in selected:
            print(f"{m.name}\n    {m.path}: {m.description}\n    tests: {' '.join(m.tests)}")
        return 0

    def tests_for(mutation):
        if args.suite:
            return [] if args.with_golden else ["--deselect", GOLDEN]
        return list(args.tests or (mutation.tests if mutation else ()))

    extra = SUITE if args.suite else []
    rows = []
    if args.baseline:
        union = sorted({t for m in selected for t in tests_for(m)})
        rows.append(
            run_mutation(None, union, timeout=args.timeout, extra=extra, keep=args.keep, stop=False)
        )
        _print_row(rows[-1], union)
    for mutation in selected:
        tests = tests_for(mutation)
        outcome = run_mutation(
            mutation,
            tests,
            timeout=args.timeout,
            extra=extra,
            keep=args.keep,
            stop=not args.all_failures,
        )
        rows.append(outcome)
        _print_row(outcome, tests if not args.suite else ["default suite"])
    print()
    print("| mutation | result | seconds | failing tests / why |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row.name} | {row.status} | {row.seconds:.0f} | {row.detail} |")
    survived = [r for r in rows[1 if args.baseline else 0 :] if r.status != "killed"]
    baseline_ok = not args.baseline or rows[0].status == "survived"
    return 0 if baseline_ok and not survived else 1


def _print_row(outcome, tests):
    print(f"{outcome.name}: {outcome.status} ({outcome.seconds:.0f} s) -- {outcome.detail}")
    print(f"    tests: {' '.join(tests)}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
