"""Noise tests behind the paper report's verdicts: Welch's t-test over seeds.

Each claim of the report is split into parts ("KSOM reaches +10 % in
fewer steps", "KSOM's best MSE is within 5 % of EMA-VQ's", ...).  A part
compares two groups of per-seed figures with Welch's t-test
(``scipy.stats.ttest_ind(a, b, equal_var=False)``) and reads the
confidence interval of the difference of means that goes with it:

- "a below b" holds when the two-sided (1 - alpha) interval of
  mean(a) - mean(b) lies below 0 (Welch p < alpha, a lower), and fails
  when it lies above 0 at the failing level;
- "a about equal to b within a margin" holds when the (1 - 2 alpha)
  interval lies inside (-margin, +margin) (two one-sided tests), and
  fails when the (1 - alpha) interval lies wholly outside the margin.

A part that neither holds nor fails is "not resolved at this scale".
When a claim has m parts, a single failing part decides against it, so
parts fail only at the Bonferroni level alpha / m.  With fewer than two
seeds in a group, or no spread at all in either, the test is undefined
and the part is not resolved.
"""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass

ALPHA = 0.05
HOLDS, FAILS, UNRESOLVED = "holds", "fails", "not resolved at this scale"
REPRODUCED, NOT_REPRODUCED, MIXED = "reproduced", "not reproduced", "mixed"


@dataclass(frozen=True)
class Comparison:
    """Welch's t-test of mean(a) - mean(b) over seeds."""

    difference: float
    standard_error: float
    df: float
    p_value: float  # two-sided, for a zero difference; nan when undefined
    n: tuple  # seeds in a and in b

    @property
    def defined(self) -> bool:
        return min(self.n) >= 2 and self.standard_error > 0

    def interval(self, confidence: float) -> tuple[float, float]:
        """Two-sided Welch confidence interval of the difference (nan, nan when undefined)."""
        if not self.defined:
            return math.nan, math.nan
        from scipy import stats

        half = stats.t.ppf(0.5 + confidence / 2, self.df) * self.standard_error
        return self.difference - half, self.difference + half

    def describe(self, scale=1.0, digits=2, confidence=1 - ALPHA) -> str:
        """'difference -17.40 (95 % CI -26.34 to -7.92; Welch p = 0.023)'."""
        text = f"difference {self.difference * scale:+.{digits}f}"
        if not self.defined:
            why = "fewer than 2 seeds" if min(self.n) < 2 else "no spread over seeds"
            return text + f" (Welch test undefined: {why})"
        low, high = self.interval(confidence)
        p = format_p(self.p_value)
        return (text + f" ({confidence * 100:.4g} % CI {low * scale:+.{digits}f} to {high * scale:+.{digits}f}; "
                f"Welch p {p if p.startswith('<') else '= ' + p})")


def percent(x: float, digits: int = 0, sign: bool = False) -> str:
    """``x`` in percent, written as the report writes it: '5 %', '+27.6 %', '98.33 %' for confidence levels."""
    return f"{x * 100:{'+' if sign else ''}.{digits}f} %"


def format_p(p: float) -> str:
    """'0.023', or '< 0.001' below that."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def welch(a, b) -> Comparison:
    """Welch's t-test of the per-seed figures ``a`` against ``b`` (None entries are left out)."""
    a = [float(v) for v in a if v is not None]
    b = [float(v) for v in b if v is not None]
    if not a or not b:
        raise ValueError("welch needs at least one value in each group; got "
                         f"{len(a)} and {len(b)}.")
    difference = statistics.fmean(a) - statistics.fmean(b)
    if min(len(a), len(b)) < 2:
        return Comparison(difference, math.nan, math.nan, math.nan, (len(a), len(b)))
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Comparison(difference, 0.0, math.nan, math.nan, (len(a), len(b)))
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # near-constant groups: scipy warns, the test stands
        result = stats.ttest_ind(a, b, equal_var=False)
    return Comparison(difference, se, float(result.df), float(result.pvalue), (len(a), len(b)))


# ------------------------------------------------------------- the tests


def below(c: Comparison, bound: float, alpha: float) -> bool:
    """mean(a) - mean(b) < bound, two-sided at ``alpha``."""
    return c.defined and c.interval(1 - alpha)[1] < bound


def above(c: Comparison, bound: float, alpha: float) -> bool:
    """mean(a) - mean(b) > bound, two-sided at ``alpha``."""
    return c.defined and c.interval(1 - alpha)[0] > bound


def within(c: Comparison, margin: float, alpha: float) -> bool:
    """|mean(a) - mean(b)| < margin by two one-sided tests at ``alpha``."""
    if not c.defined:
        return False
    low, high = c.interval(1 - 2 * alpha)
    return -margin < low and high < margin


def outside(c: Comparison, margin: float, alpha: float) -> bool:
    """|mean(a) - mean(b)| > margin, two-sided at ``alpha``."""
    return above(c, margin, alpha) or below(c, -margin, alpha)


# ------------------------------------------------------------- the parts


@dataclass(frozen=True)
class Part:
    """One tested statement of a claim and how its test came out."""

    statement: str
    outcome: str  # HOLDS, FAILS or UNRESOLVED
    evidence: str  # the figures and the test

    def describe(self) -> str:
        return f"{self.statement}: {self.outcome} ({self.evidence})"


def _outcome(holds: bool, fails: bool) -> str:
    return HOLDS if holds else FAILS if fails else UNRESOLVED


def lower_part(statement, c: Comparison, *, alpha=ALPHA, alpha_fail=ALPHA, evidence="") -> Part:
    """``a`` is lower than ``b``: holds if significantly lower, fails if significantly higher."""
    return Part(statement, _outcome(below(c, 0.0, alpha), above(c, 0.0, alpha_fail)), evidence)


def equal_part(statement, c: Comparison, margin: float, *, alpha=ALPHA, alpha_fail=ALPHA, evidence="") -> Part:
    """``a`` is about ``b`` (within ``margin``): holds by two one-sided tests, fails if outside the margin."""
    return Part(statement, _outcome(within(c, margin, alpha), outside(c, margin, alpha_fail)), evidence)


def any_differs_part(statement, comparisons, margin: float, *, alpha=ALPHA, evidence="") -> Part:
    """Some ``a`` differs from its ``b``: holds if one does at alpha / m, fails if all are within ``margin``."""
    m = len(comparisons)
    holds = any(below(c, 0.0, alpha / m) or above(c, 0.0, alpha / m) for c in comparisons)
    fails = all(within(c, margin, alpha) for c in comparisons)
    return Part(statement, _outcome(holds, fails), evidence)


def all_equal_part(statement, comparisons, margins, *, alpha=ALPHA, evidence="") -> Part:
    """Every ``a`` is about its ``b``: holds if all are within their margins, fails if one is outside at alpha / m."""
    m = len(comparisons)
    holds = all(within(c, margin, alpha) for c, margin in zip(comparisons, margins))
    fails = any(outside(c, margin, alpha / m) for c, margin in zip(comparisons, margins))
    return Part(statement, _outcome(holds, fails), evidence)


def combine(parts) -> str:
    """The claim's verdict from its parts' outcomes.

    Reproduced when every part holds; not reproduced when none holds and
    some fail; mixed when some hold and some fail; otherwise (some part
    unresolved, none failing) not resolved at this scale.
    """
    outcomes = [p.outcome for p in parts]
    if not outcomes:
        raise ValueError("combine needs at least one part.")
    held, failed = outcomes.count(HOLDS), outcomes.count(FAILS)
    if held == len(outcomes):
        return REPRODUCED
    if failed and held:
        return MIXED
    if failed:
        return NOT_REPRODUCED
    return UNRESOLVED


def rule(margin: float) -> str:
    """The rules above in the report's words; "about equal" is within ``margin`` (a fraction of B's mean)."""
    return (
        f"Noise tests: Welch's t-test over seeds (`scipy.stats.ttest_ind`, `equal_var=False`), α = {ALPHA}. "
        "A part \"A lower than B\" holds when the 95 % Welch confidence interval of mean(A) − mean(B) lies "
        "below 0 (p < α) and fails when it lies above 0. \"A about equal to B\" holds when the 90 % interval "
        f"lies inside ±{percent(margin)} of B's mean (two one-sided tests at α) and fails when the 95 % interval "
        "lies wholly outside it. \"Some of m variants differs\" holds when one differs at α / m and fails when "
        "all are about equal; \"all m variants are about equal\" holds when each is and fails when one lies "
        "outside at α / m. In a claim of m parts a part fails only at α / m (Bonferroni), since one failing "
        "part decides the claim. A part that neither holds nor fails is *not resolved at this scale*, and so "
        "is a test without spread (fewer than 2 seeds, or identical figures). A claim is *reproduced* when "
        "all its parts hold, *not reproduced* when none holds and some fail, *mixed* when some hold and some "
        "fail, and *not resolved at this scale* otherwise."
    )
