"""The one rule that turns a fitted rate (or an optimum located over sizes) into words and a
verdict; `compare`, `demo` and `audit` all call it, so they never disagree on what counts as
evidence.

A rate fitted through fewer than `MIN_SIZES` resolved sizes is reported as such and can never
"hold": two sizes fit any power law exactly, so they cannot tell the rate from the curvature of
a pre-asymptotic range (the same holds for an optimum located at fewer than three sizes: two
depths always "agree" within a coarse grid by chance). A 95% interval that excludes the
expected value is said so in words, whatever else is said about the fit.
"""

from typing import Any

HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive at this scale"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE)
MIN_SIZES = 3

RATE_RULE = (
    "holds if the fitted rate's 95% interval contains the predicted rate and excludes 0; fails "
    "if the interval excludes the predicted rate; otherwise inconclusive at this scale, and "
    f"always so with fewer than {MIN_SIZES} resolved sizes (two sizes fit any power law "
    "exactly, so they cannot tell the rate from the curvature of a pre-asymptotic range)"
)


def too_few_sizes(count: int, what: str = "a rate") -> str | None:
    """The caveat for a rate or an optimum from `count` resolved sizes; None when enough."""
    if count >= MIN_SIZES:
        return None
    return (
        f"from only {count} resolved size{'' if count == 1 else 's'} (fewer than {MIN_SIZES}): "
        f"not evidence of {what}"
    )


def excludes_expected(ci95, expected: float | None, symbol: str = "") -> str | None:
    """The caveat for a 95% interval that excludes the expected exponent; None otherwise."""
    if ci95 is None or expected is None or None in ci95:
        return None
    low, high = ci95
    if low <= expected <= high:
        return None
    power = f"{symbol}^{expected:g}" if symbol else f"{expected:g}"
    return f"the interval [{low:.2f}, {high:.2f}] excludes the expected {power}"


def rate_caveats(fit: dict[str, Any] | None, symbol: str = "") -> list[str]:
    """Every caveat of a fit (`_compare_fits` fit or a dict with `sizes`/`points`, `ci95`,
    `expected`): too few sizes, an interval that excludes the expected value."""
    if not fit or fit.get("slope") is None:
        return []
    caveats = [
        too_few_sizes(fit_sizes(fit)),
        excludes_expected(fit.get("ci95"), fit.get("expected"), symbol),
    ]
    return [c for c in caveats if c]


def fit_sizes(fit: dict[str, Any]) -> int:
    """How many resolved sizes a fit went through."""
    if fit.get("sizes") is not None:
        return len(fit["sizes"])
    return int(fit.get("points") or 0)


def rate_outcome(fit: dict[str, Any] | None, expected: float, what: str) -> tuple[str, str]:
    """`RATE_RULE` applied to one fit with `ci95`: (one of `VERDICTS`, the reason in words)."""
    if not fit or fit.get("ci95") is None or fit.get("slope") is None:
        reason = "no fit"
        if fit and fit.get("excluded"):
            left = [f"{e['size']}: {e['reason']}" for e in fit["excluded"]]
            reason += " (left out " + "; ".join(left) + ")"
        return INCONCLUSIVE, f"{what}: {reason}"
    low, high = fit["ci95"]
    if low is None or high is None:  # two points without error bars: an infinite interval
        return INCONCLUSIVE, f"{what}: {fit['slope']:.3f}, interval unbounded (two points)"
    where = f"{what}: {fit['slope']:.3f} [{low:.3f}, {high:.3f}], predicted {expected:g}"
    few = too_few_sizes(fit_sizes(fit)) if fit_sizes(fit) else None
    if few:
        return INCONCLUSIVE, f"{where}; {few}"
    if not low <= expected <= high:
        return FAILS, f"{where}; the interval excludes the predicted rate"
    if low <= 0 <= high:
        return INCONCLUSIVE, f"{where}; the interval also contains 0"
    return HOLDS, f"{where}; contains the prediction, excludes 0"
