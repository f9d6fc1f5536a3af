"""Small, pure statistics for reporting rates honestly: every rate carries k/n and an interval.

Conventions:
- Binomial intervals are two-sided and lie within [0, 1].
- An empty sample (n=0) has rate nan and the vacuous interval (0, 1) (a difference: nan and (-1, 1)),
  so tables with empty cells still render instead of raising.
- Invalid counts (k < 0, k > n) raise ValueError.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as _st

__all__ = [
    "Difference",
    "DifferenceInDifferences",
    "FisherResult",
    "McNemarResult",
    "Mean",
    "PairedTable",
    "Rate",
    "accuracy",
    "auroc",
    "cohen_kappa",
    "confusion_matrix",
    "difference_in_paired_differences",
    "fisher_exact",
    "halfwidth",
    "holm",
    "jeffreys_interval",
    "mcnemar_test",
    "mean_interval",
    "newcombe_diff",
    "newcombe_paired_diff",
    "paired_diff",
    "paired_table",
    "rate",
    "required_n_for_halfwidth",
    "sign_flip_test",
    "wilson_interval",
]

RateMethod = Literal["wilson", "jeffreys"]
Alternative = Literal["two-sided", "less", "greater"]


# ---------------------------------------------------------------------------------------------- helpers


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(_st.norm.ppf(0.5 + confidence / 2.0))


def _check_counts(k: int, n: int) -> None:
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")


def _clip(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)


def _pct(x: float) -> str:
    return f"{100 * x:z.1f}"


def points(x: float) -> str:
    """A difference in percentage points, signed, never "-0.0"."""
    return f"{100 * x:+z.1f}"


def difference_text(estimate: float, low: float, high: float) -> str:
    """A difference with its interval, in percentage points: "+12.5 pp [+3.0, +22.1]"."""
    if math.isnan(estimate):
        return "n/a"
    return f"{points(estimate)} pp [{points(low)}, {points(high)}]"


# ---------------------------------------------------------------------------------------------- one rate


@dataclass(frozen=True)
class Rate:
    """k successes out of n, with a two-sided interval [low, high] at `confidence`."""

    k: int
    n: int
    rate: float  # nan when n == 0
    low: float
    high: float
    method: str
    confidence: float = 0.95

    def __str__(self) -> str:
        shown = "n/a" if self.n == 0 else f"{_pct(self.rate)}%"
        return f"{self.k}/{self.n} = {shown} [{_pct(self.low)}, {_pct(self.high)}]"


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k/n; (0.0, 1.0) when n == 0."""
    _check_counts(k, n)
    z = _z(confidence)
    if n == 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    dist = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # Exact bounds at k=0 / k=n, rather than 1e-17-ish rounding noise.
    low = 0.0 if k == 0 else _clip(centre - dist, 0.0, 1.0)
    high = 1.0 if k == n else _clip(centre + dist, 0.0, 1.0)
    return low, high


def jeffreys_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Equal-tailed Jeffreys interval: Beta(k+1/2, n-k+1/2) quantiles, with low=0 if k=0 and high=1 if k=n
    (Brown, Cai & DasGupta 2001). (0.0, 1.0) when n == 0."""
    _check_counts(k, n)
    _z(confidence)  # validates confidence
    if n == 0:
        return 0.0, 1.0
    tail = (1.0 - confidence) / 2.0
    low = 0.0 if k == 0 else float(_st.beta.ppf(tail, k + 0.5, n - k + 0.5))
    high = 1.0 if k == n else float(_st.beta.isf(tail, k + 0.5, n - k + 0.5))
    return low, high


def rate(k: int, n: int, method: RateMethod = "wilson", confidence: float = 0.95) -> Rate:
    """k/n with an interval. n == 0 gives rate nan and interval (0, 1)."""
    if method == "wilson":
        low, high = wilson_interval(k, n, confidence)
    elif method == "jeffreys":
        low, high = jeffreys_interval(k, n, confidence)
    else:
        raise ValueError(f"unknown method {method!r}; use 'wilson' or 'jeffreys'")
    return Rate(k, n, k / n if n else math.nan, low, high, method, confidence)


@dataclass(frozen=True)
class Mean:
    """The mean of n numbers (a judge's score), with a two-sided Student t interval at `confidence`."""

    n: int
    mean: float  # nan when n == 0
    low: float  # nan when n < 2
    high: float
    confidence: float = 0.95

    def __str__(self) -> str:
        if self.n == 0:
            return "n/a"
        interval = "" if math.isnan(self.low) else f" [{self.low:.3f}, {self.high:.3f}]"
        return f"{self.mean:.3f}{interval} (n = {self.n})"


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Mean:
    """Mean and t interval of `values`: a score is not a yes/no, so it gets no Wilson rate."""
    n = len(values)
    if n == 0:
        return Mean(0, math.nan, math.nan, math.nan, confidence)
    mean = sum(values) / n
    if n < 2:
        return Mean(n, mean, math.nan, math.nan, confidence)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(_st.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return Mean(n, mean, mean - half, mean + half, confidence)


def halfwidth(r: Rate) -> float:
    """Half the interval width (the intervals are asymmetric, so this is not a +/- around the rate)."""
    return (r.high - r.low) / 2.0


def _wilson_halfwidth(p: float, n: float, z: float) -> float:
    return z * math.sqrt(n * p * (1 - p) + z * z / 4) / (n + z * z)


def required_n_for_halfwidth(p: float, halfwidth: float, confidence: float = 0.95) -> int:
    """Smallest n whose Wilson interval, at observed rate p, has half-width <= `halfwidth`.

    Use p=0.5 for the worst case. The Wilson half-width is decreasing in n for every p, so bisection is exact.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if not 0.0 < halfwidth < 0.5:
        raise ValueError(f"halfwidth must be in (0, 0.5), got {halfwidth}")
    z = _z(confidence)
    lo, hi = 0, 1  # invariant: halfwidth(lo) > target (or lo == 0), halfwidth(hi) <= target
    while _wilson_halfwidth(p, hi, z) > halfwidth:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _wilson_halfwidth(p, mid, z) <= halfwidth:
            hi = mid
        else:
            lo = mid
    return hi


# ---------------------------------------------------------------------------------------------- two rates


@dataclass(frozen=True)
class Difference:
    """p1 - p2 with an interval [low, high] at `confidence`."""

    estimate: float
    low: float
    high: float
    p1: float
    p2: float
    method: str
    confidence: float = 0.95

    def __str__(self) -> str:
        if math.isnan(self.estimate):
            return f"n/a [{points(self.low)}, {points(self.high)}] pp"
        return difference_text(self.estimate, self.low, self.high)


def newcombe_diff(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> Difference:
    """Independent samples: p1 - p2 with Newcombe's hybrid score interval (Newcombe 1998, method 10).

    If either sample is empty the estimate is nan and the interval is (-1, 1).
    """
    l1, u1 = wilson_interval(k1, n1, confidence)
    l2, u2 = wilson_interval(k2, n2, confidence)
    method = "newcombe-hybrid-score"
    if n1 == 0 or n2 == 0:
        p1 = k1 / n1 if n1 else math.nan
        p2 = k2 / n2 if n2 else math.nan
        return Difference(math.nan, -1.0, 1.0, p1, p2, method, confidence)
    p1, p2 = k1 / n1, k2 / n2
    d = p1 - p2
    low = d - math.hypot(p1 - l1, u2 - p2)
    high = d + math.hypot(u1 - p1, p2 - l2)
    return Difference(d, _clip(low, -1.0, 1.0), _clip(high, -1.0, 1.0), p1, p2, method, confidence)


@dataclass(frozen=True)
class FisherResult:
    odds_ratio: float  # sample odds ratio k1(n2-k2) / ((n1-k1)k2); may be 0, inf or nan
    pvalue: float


def fisher_exact(k1: int, n1: int, k2: int, n2: int, alternative: Alternative = "two-sided") -> FisherResult:
    """Fisher's exact test of k1/n1 vs k2/n2 (scipy). 'greater' tests p1 > p2."""
    _check_counts(k1, n1)
    _check_counts(k2, n2)
    res = _st.fisher_exact(np.array([[k1, n1 - k1], [k2, n2 - k2]]), alternative=alternative)
    return FisherResult(float(res.statistic), float(res.pvalue))


# ---------------------------------------------------------------------------------------------- paired


@dataclass(frozen=True)
class PairedTable:
    """Paired 2x2 counts: a = both, b = x only, c = y only, d = neither. b and c are the discordant pairs."""

    a: int
    b: int
    c: int
    d: int

    @property
    def n(self) -> int:
        return self.a + self.b + self.c + self.d


def paired_table(x: Sequence[bool], y: Sequence[bool]) -> PairedTable:
    """Counts of (x_i, y_i) outcomes, e.g. x = complied when monitored, y = complied when unmonitored."""
    if len(x) != len(y):
        raise ValueError(f"x and y must have equal length, got {len(x)} and {len(y)}")
    a = b = c = d = 0
    for xi, yi in zip(x, y, strict=True):
        if xi and yi:
            a += 1
        elif xi:
            b += 1
        elif yi:
            c += 1
        else:
            d += 1
    return PairedTable(a, b, c, d)


@dataclass(frozen=True)
class McNemarResult:
    statistic: float  # min(b, c) if exact, else the chi-square statistic
    pvalue: float
    b: int
    c: int
    exact: bool


def mcnemar_test(b: int, c: int, exact: bool | None = None) -> McNemarResult:
    """McNemar's test on the discordant counts b and c, matching statsmodels' `mcnemar` conventions.

    exact=None uses the exact binomial test when b + c < 25, else chi-square with continuity correction
    ((|b-c| - 1)^2 / (b+c), not clamped at 0, as in statsmodels and R). With b + c == 0 the p-value is 1.
    """
    if b < 0 or c < 0:
        raise ValueError(f"counts must be non-negative, got b={b}, c={c}")
    m = b + c
    if exact is None:
        exact = m < 25
    if exact:
        pvalue = min(1.0, 2.0 * float(_st.binom.cdf(min(b, c), m, 0.5)))
        return McNemarResult(float(min(b, c)), pvalue, b, c, True)
    if m == 0:
        # statsmodels divides 0/0 here; no discordant pairs is no evidence of a difference.
        return McNemarResult(0.0, 1.0, b, c, False)
    stat = (abs(b - c) - 1) ** 2 / m
    return McNemarResult(float(stat), float(_st.chi2.sf(stat, 1)), b, c, False)


def newcombe_paired_diff(a: int, b: int, c: int, d: int, confidence: float = 0.95) -> Difference:
    """Paired p1 - p2 = (b - c)/n, p1 = (a+b)/n, p2 = (a+c)/n, with Newcombe's (1998b) method 10.

    Wilson intervals for p1 and p2 are combined square-and-add style with the correlation estimate phi, where
    phi's numerator ad - bc is reduced by n/2 (floored at 0) when positive, as in Newcombe and in
    Fagerland, Lydersen & Laake (2017). n == 0 gives nan and (-1, 1).
    """
    if min(a, b, c, d) < 0:
        raise ValueError(f"counts must be non-negative, got {(a, b, c, d)}")
    n = a + b + c + d
    method = "newcombe-paired-score"
    if n == 0:
        _z(confidence)
        return Difference(math.nan, -1.0, 1.0, math.nan, math.nan, method, confidence)
    l1, u1 = wilson_interval(a + b, n, confidence)
    l2, u2 = wilson_interval(a + c, n, confidence)
    p1, p2 = (a + b) / n, (a + c) / n
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    phi = 0.0
    if margins > 0:
        cross: float = a * d - b * c
        cross = max(cross - n / 2, 0.0) if cross > 0 else cross
        phi = cross / math.sqrt(margins)
    est = (b - c) / n
    dl, du = p1 - l1, u2 - p2  # lower limit: p1 at its low end, p2 at its high end
    low = est - math.sqrt(max(dl * dl - 2 * phi * dl * du + du * du, 0.0))
    el, eu = p2 - l2, u1 - p1
    high = est + math.sqrt(max(el * el - 2 * phi * el * eu + eu * eu, 0.0))
    return Difference(est, _clip(low, -1.0, 1.0), _clip(high, -1.0, 1.0), p1, p2, method, confidence)


@dataclass(frozen=True)
class DifferenceInDifferences:
    """(p1A − p2A) − (p1B − p2B) over units observed in all four cells (a query asked in both tiers under both
    conditions), with its interval and an exact test; each gap's own paired interval in `a`, `b`."""

    estimate: float
    low: float
    high: float
    pvalue: float
    n: int  # units observed in all four cells
    a: Difference
    b: Difference
    correlation: float  # between the units' gaps under A and under B, as used in the interval
    method: str = "MOVER over Newcombe paired intervals; exact sign-flip test"
    confidence: float = 0.95

    def __str__(self) -> str:
        return difference_text(self.estimate, self.low, self.high)


def sign_flip_test(d: Sequence[int]) -> float:
    """Exact two-sided randomisation test of a zero mean for integer paired differences: under the null each
    difference's sign is a fair coin, so the sum's distribution is a convolution, computed exactly. p = P(|S| ≥
    |observed sum|); 1 when every difference is 0."""
    values = [abs(int(x)) for x in d if x]
    if not values:
        return 1.0
    counts: dict[int, int] = {0: 1}
    for v in values:
        nxt: dict[int, int] = {}
        for total, ways in counts.items():
            for signed in (v, -v):
                nxt[total + signed] = nxt.get(total + signed, 0) + ways
        counts = nxt
    observed = abs(sum(int(x) for x in d))
    extreme = sum(ways for total, ways in counts.items() if abs(total) >= observed)
    return min(1.0, extreme / float(2 ** len(values)))


def difference_in_paired_differences(
    units: Sequence[tuple[bool, bool, bool, bool]], confidence: float = 0.95
) -> DifferenceInDifferences:
    """Per unit (x1A, x2A, x1B, x2B): the difference between condition A's paired gap x1 − x2 and condition
    B's. The interval combines the two gaps' Newcombe paired intervals by MOVER (Zou & Donner 2008) with the
    correlation between the units' gaps, so it respects both pairings (x1 with x2 in a unit, A with B on the same
    units); the test flips each unit's difference of gaps (exact, any n). No unit: nan and (−2, 2)."""
    n = len(units)

    def gap(first: int, second: int) -> Difference:
        t = paired_table([u[first] for u in units], [u[second] for u in units])
        return newcombe_paired_diff(t.a, t.b, t.c, t.d, confidence)

    a, b = gap(0, 1), gap(2, 3)
    if n == 0:
        return DifferenceInDifferences(math.nan, -2.0, 2.0, math.nan, 0, a, b, 0.0, confidence=confidence)
    ga = [int(u[0]) - int(u[1]) for u in units]
    gb = [int(u[2]) - int(u[3]) for u in units]
    r = _correlation(ga, gb)
    est = a.estimate - b.estimate
    dl, du = a.estimate - a.low, b.high - b.estimate
    low = est - math.sqrt(max(dl * dl + du * du - 2 * r * dl * du, 0.0))
    el, eu = a.high - a.estimate, b.estimate - b.low
    high = est + math.sqrt(max(el * el + eu * eu - 2 * r * el * eu, 0.0))
    p = sign_flip_test([x - y for x, y in zip(ga, gb, strict=True)])
    return DifferenceInDifferences(est, max(low, -2.0), min(high, 2.0), p, n, a, b, r, confidence=confidence)


def _correlation(x: Sequence[int], y: Sequence[int]) -> float:
    """Pearson's r, 0 where either has no variance (nothing to borrow from it)."""
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((v - mx) ** 2 for v in x)
    syy = sum((v - my) ** 2 for v in y)
    if sxx == 0 or syy == 0:
        return 0.0
    return sum((u - mx) * (v - my) for u, v in zip(x, y, strict=True)) / math.sqrt(sxx * syy)


def paired_diff(x: Sequence[bool], y: Sequence[bool], confidence: float = 0.95) -> Difference:
    """mean(x) - mean(y) for paired outcomes, with Newcombe's paired interval (see newcombe_paired_diff)."""
    t = paired_table(x, y)
    return newcombe_paired_diff(t.a, t.b, t.c, t.d, confidence)


# ---------------------------------------------------------------------------------------------- many tests


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values, in the input order (monotone, capped at 1)."""
    m = len(pvalues)
    for p in pvalues:
        if not 0.0 <= p <= 1.0:  # also rejects nan
            raise ValueError(f"p-values must be in [0, 1], got {p}")
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


# ---------------------------------------------------------------------------------------------- agreement


def _labels(values: Sequence[Hashable]) -> list[Hashable]:
    seen = list(dict.fromkeys(values))
    try:
        return sorted(seen)  # type: ignore[type-var]  # Hashable need not be orderable: caught below
    except TypeError:  # mixed, unorderable labels: keep first-seen order
        return seen


def _check_pair(a: Sequence[object], b: Sequence[object]) -> None:
    if len(a) != len(b):
        raise ValueError(f"sequences must have equal length, got {len(a)} and {len(b)}")
    if len(a) == 0:
        raise ValueError("sequences are empty")


def confusion_matrix(a: Sequence[Hashable], b: Sequence[Hashable]) -> dict[tuple[Hashable, Hashable], int]:
    """Counts keyed (label in a, label in b) over every pair of labels seen in either, zeros included.

    Labels are sorted when orderable. `pandas.Series(cm).unstack()` gives the table with a as rows.
    """
    _check_pair(a, b)
    labels = _labels([*a, *b])
    counts = {(x, y): 0 for x in labels for y in labels}
    for x, y in zip(a, b, strict=True):
        counts[(x, y)] += 1
    return counts


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's kappa between two raters (unweighted).

    Returns nan when chance agreement is 1 (both raters give one and the same label throughout): kappa is
    0/0 there, and agreement beyond chance is unmeasurable. Report accuracy alongside.
    """
    _check_pair(a, b)
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    count_a: dict[Hashable, int] = {}
    count_b: dict[Hashable, int] = {}
    for x in a:
        count_a[x] = count_a.get(x, 0) + 1
    for y in b:
        count_b[y] = count_b.get(y, 0) + 1
    expected = sum(count_a[x] * count_b.get(x, 0) for x in count_a) / (n * n)
    if expected == 1.0:
        return math.nan
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(ratings: Sequence[Sequence[Hashable]]) -> float:
    """Fleiss' kappa: agreement among m raters (e.g. a judge's m votes) over N items, each row one item's m
    labels. Every row must have the same m ≥ 2. Returns nan when chance agreement is 1 (one label throughout)."""
    if not ratings:
        raise ValueError("no items")
    m = len(ratings[0])
    if m < 2 or any(len(row) != m for row in ratings):
        raise ValueError("every item needs the same number (≥ 2) of ratings")
    labels = _labels([x for row in ratings for x in row])
    counts = [[sum(x == lab for x in row) for lab in labels] for row in ratings]
    n_items = len(ratings)
    observed = sum((sum(c * c for c in row) - m) / (m * (m - 1)) for row in counts) / n_items
    shares = [sum(row[j] for row in counts) / (n_items * m) for j in range(len(labels))]
    expected = sum(p * p for p in shares)
    if expected == 1.0:
        return math.nan
    return (observed - expected) / (1.0 - expected)


def accuracy(
    pred: Sequence[Hashable],
    truth: Sequence[Hashable],
    method: RateMethod = "wilson",
    confidence: float = 0.95,
) -> Rate:
    """Fraction of pred equal to truth, as a Rate (k/n with interval); `.rate` is the plain accuracy."""
    _check_pair(pred, truth)
    k = sum(p == t for p, t in zip(pred, truth, strict=True))
    return rate(k, len(pred), method, confidence)


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve = P(score_pos > score_neg) + P(tie)/2 (Mann-Whitney U / (n_pos n_neg)).

    Returns nan when labels contain only one class (the AUROC is undefined).
    """
    _check_pair(scores, labels)
    if any(math.isnan(s) for s in scores):
        raise ValueError("scores contain nan")
    if any(lab not in (0, 1) for lab in labels):  # True == 1 and False == 0
        raise ValueError("labels must be bool (or 0/1)")
    n_pos = sum(1 for lab in labels if lab)
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _st.rankdata(scores)  # average ranks: a tie between classes counts 1/2
    rank_sum = float(sum(r for r, lab in zip(ranks, labels, strict=True) if lab))
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
