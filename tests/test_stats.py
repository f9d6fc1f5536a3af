import math
import random

import pytest
from scipy import stats as st
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from mislab.stats import (
    Difference,
    Rate,
    accuracy,
    auroc,
    cohen_kappa,
    confusion_matrix,
    fisher_exact,
    halfwidth,
    holm,
    jeffreys_interval,
    mcnemar_test,
    mean_interval,
    newcombe_diff,
    newcombe_paired_diff,
    paired_diff,
    paired_table,
    rate,
    required_n_for_halfwidth,
    wilson_interval,
)

COUNTS = [(0, 1), (1, 1), (0, 10), (1, 10), (7, 20), (10, 10), (3, 7), (50, 100), (999, 1000), (1, 3000)]


# ------------------------------------------------------------------------------------------- single rates


@pytest.mark.parametrize("k,n", COUNTS)
@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_wilson_matches_statsmodels(k, n, confidence):
    ref = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
    assert wilson_interval(k, n, confidence) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("k,n", COUNTS)
@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_jeffreys_matches_statsmodels_except_boundary_convention(k, n, confidence):
    # statsmodels leaves the plain Beta quantiles at k=0 / k=n; we pin those ends to 0 / 1.
    ref_low, ref_high = proportion_confint(k, n, alpha=1 - confidence, method="jeffreys")
    low, high = jeffreys_interval(k, n, confidence)
    assert low == (0.0 if k == 0 else pytest.approx(ref_low, abs=1e-12))
    assert high == (1.0 if k == n else pytest.approx(ref_high, abs=1e-12))


def test_jeffreys_is_beta_quantiles():
    low, high = jeffreys_interval(3, 12, 0.9)
    assert low == pytest.approx(st.beta.ppf(0.05, 3.5, 9.5))
    assert high == pytest.approx(st.beta.ppf(0.95, 3.5, 9.5))


def test_rate_str_and_fields():
    r = rate(7, 20)
    assert isinstance(r, Rate)
    assert (r.k, r.n, r.rate, r.method, r.confidence) == (7, 20, 0.35, "wilson", 0.95)
    assert str(r) == "7/20 = 35.0% [18.1, 56.7]"
    assert rate(7, 20, method="jeffreys").method == "jeffreys"


def test_rate_is_frozen():
    with pytest.raises(AttributeError):
        rate(1, 2).k = 3  # type: ignore[misc]


@pytest.mark.parametrize("method", ["wilson", "jeffreys"])
def test_rate_edges(method):
    zero = rate(0, 10, method)
    assert zero.rate == 0.0 and zero.low == 0.0 and 0 < zero.high < 1
    full = rate(10, 10, method)
    assert full.rate == 1.0 and full.high == 1.0 and 0 < full.low < 1
    empty = rate(0, 0, method)
    assert math.isnan(empty.rate) and (empty.low, empty.high) == (0.0, 1.0)
    assert str(empty) == "0/0 = n/a [0.0, 100.0]"


def test_rate_symmetry_and_containment():
    for k, n in COUNTS:
        for method in ("wilson", "jeffreys"):
            r, mirror = rate(k, n, method), rate(n - k, n, method)
            assert r.low <= r.rate <= r.high
            assert r.low == pytest.approx(1 - mirror.high) and r.high == pytest.approx(1 - mirror.low)


@pytest.mark.parametrize("k,n", [(-1, 5), (6, 5), (0, -1)])
def test_rate_rejects_bad_counts(k, n):
    with pytest.raises(ValueError):
        rate(k, n)


def test_rate_rejects_bad_method_and_confidence():
    with pytest.raises(ValueError):
        rate(1, 2, method="wald")  # type: ignore[arg-type]
    for c in (0.0, 1.0, 95):
        with pytest.raises(ValueError):
            wilson_interval(1, 2, c)
        with pytest.raises(ValueError):
            jeffreys_interval(1, 2, c)


def test_halfwidth():
    r = rate(7, 20)
    assert halfwidth(r) == pytest.approx((r.high - r.low) / 2)
    assert halfwidth(rate(0, 0)) == 0.5


@pytest.mark.parametrize("p", [0.0, 0.05, 0.3, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("target", [0.2, 0.05, 0.01])
def test_required_n_for_halfwidth_is_minimal(p, target):
    n = required_n_for_halfwidth(p, target)

    def hw(m: int) -> float:
        z = st.norm.ppf(0.975)
        return z * math.sqrt(p * (1 - p) / m + z * z / (4 * m * m)) / (1 + z * z / m)

    assert hw(n) <= target
    assert n == 1 or hw(n - 1) > target
    if round(p * n) == p * n:  # at an attainable k the real interval meets the target
        assert halfwidth(rate(round(p * n), n)) <= target + 1e-12


def test_required_n_for_halfwidth_known_values():
    # Close to, and a little below, the Wald planning formula z^2/(4 h^2) = 384.1 at p=0.5.
    assert required_n_for_halfwidth(0.5, 0.05) == 381
    # Worst case is p=0.5; rarer events need fewer samples, but never zero.
    assert required_n_for_halfwidth(0.05, 0.05) < 381
    assert required_n_for_halfwidth(0.0, 0.05) > 0
    assert required_n_for_halfwidth(0.5, 0.05, 0.99) > 381
    with pytest.raises(ValueError):
        required_n_for_halfwidth(0.5, 0.0)
    with pytest.raises(ValueError):
        required_n_for_halfwidth(1.5, 0.1)


# ------------------------------------------------------------------------------------------- unpaired


# Newcombe (1998) Stat Med 17:873-890, Table II, method 10 (hybrid score, no continuity correction).
# The zero-cell rows can be checked by hand: e.g. 0/10 has Wilson upper limit 0.2775, so 10/10 - 0/10 has
# lower limit 1 - sqrt(2) * 0.2775 = 0.6075.
NEWCOMBE_1998_TABLE_II = [
    ((56, 70, 48, 80), 0.2000, 0.0524, 0.3339),
    ((9, 10, 3, 10), 0.6000, 0.1705, 0.8090),
    ((6, 7, 2, 7), 0.5714, 0.0582, 0.8062),
    ((5, 56, 0, 29), 0.0893, -0.0381, 0.1926),
    ((0, 10, 0, 20), 0.0000, -0.1611, 0.2775),
    ((0, 10, 0, 10), 0.0000, -0.2775, 0.2775),
    ((10, 10, 0, 20), 1.0000, 0.6791, 1.0000),
    ((10, 10, 0, 10), 1.0000, 0.6075, 1.0000),
]


@pytest.mark.parametrize("counts,estimate,low,high", NEWCOMBE_1998_TABLE_II)
def test_newcombe_diff_published_examples(counts, estimate, low, high):
    d = newcombe_diff(*counts)
    assert isinstance(d, Difference)
    assert d.estimate == pytest.approx(estimate, abs=5e-5)
    assert d.low == pytest.approx(low, abs=5e-5)
    assert d.high == pytest.approx(high, abs=5e-5)


def test_newcombe_diff_fields_and_str():
    d = newcombe_diff(56, 70, 48, 80)
    assert (d.p1, d.p2) == (0.8, 0.6)
    assert str(d) == "+20.0 pp [+5.2, +33.4]"


def test_newcombe_diff_antisymmetric_and_wald_limit():
    d, r = newcombe_diff(7, 25, 2, 25), newcombe_diff(2, 25, 7, 25)
    assert (d.low, d.high) == pytest.approx((-r.high, -r.low))
    # For large n the score-based interval approaches the Wald interval.
    k1, n1, k2, n2 = 40_000, 100_000, 35_000, 100_000
    p1, p2 = k1 / n1, k2 / n2
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    z = st.norm.ppf(0.975)
    big = newcombe_diff(k1, n1, k2, n2)
    assert (big.low, big.high) == pytest.approx((p1 - p2 - z * se, p1 - p2 + z * se), abs=1e-5)


def test_newcombe_diff_empty_arm():
    d = newcombe_diff(0, 0, 3, 10)
    assert math.isnan(d.estimate) and (d.low, d.high) == (-1.0, 1.0)
    assert d.p2 == 0.3 and math.isnan(d.p1)


FISHER_TABLES = [(3, 10, 8, 12), (0, 5, 5, 5), (20, 40, 5, 40), (1, 1, 0, 1), (0, 3, 0, 4)]


@pytest.mark.parametrize("counts", FISHER_TABLES)
@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
def test_fisher_exact_matches_scipy(counts, alternative):
    k1, n1, k2, n2 = counts
    ref = st.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]], alternative=alternative)
    res = fisher_exact(k1, n1, k2, n2, alternative)
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-12)
    assert res.odds_ratio == pytest.approx(ref.statistic, nan_ok=True)


def test_fisher_exact_hand_value():
    # [[3, 1], [1, 3]]: hypergeometric probabilities 1,16,36,16,1 / 70; two-sided p = (1+16+16+1)/70.
    res = fisher_exact(3, 4, 1, 4)
    assert res.pvalue == pytest.approx(34 / 70)
    assert res.odds_ratio == pytest.approx(9.0)


# ------------------------------------------------------------------------------------------- paired


def test_paired_table():
    x = [True, True, False, False, True, False]
    y = [True, False, True, False, False, False]
    t = paired_table(x, y)
    assert (t.a, t.b, t.c, t.d, t.n) == (1, 2, 1, 2, 6)
    with pytest.raises(ValueError):
        paired_table([True], [True, False])


@pytest.mark.parametrize("b,c", [(0, 0), (0, 1), (3, 3), (5, 1), (2, 11), (12, 12), (30, 14), (7, 40)])
@pytest.mark.parametrize("exact", [True, False, None])
def test_mcnemar_matches_statsmodels(b, c, exact):
    res = mcnemar_test(b, c, exact)
    use_exact = (b + c < 25) if exact is None else exact
    assert res.exact is use_exact
    if not use_exact and b + c == 0:
        assert (res.statistic, res.pvalue) == (0.0, 1.0)  # statsmodels gives nan here
        return
    ref = sm_mcnemar([[10, b], [c, 10]], exact=use_exact, correction=True)
    assert res.statistic == pytest.approx(float(ref.statistic))
    assert res.pvalue == pytest.approx(float(ref.pvalue), rel=1e-12)


def test_mcnemar_hand_value():
    # b=5, c=1: P(X <= 1 | Bin(6, 1/2)) = 7/64, two-sided 14/64.
    assert mcnemar_test(5, 1).pvalue == pytest.approx(14 / 64)
    with pytest.raises(ValueError):
        mcnemar_test(-1, 2)


def test_newcombe_paired_published_example():
    # Fagerland, Lydersen & Laake (2017), "Statistical Analysis of Contingency Tables", ch. 8, Cavo et al.
    # (2012) table [[59, 6], [16, 80]]: Newcombe square-and-add -0.0621 (95% CI -0.1186 to -0.0046).
    d = newcombe_paired_diff(59, 6, 16, 80)
    assert d.estimate == pytest.approx(-0.0621, abs=5e-5)
    assert d.low == pytest.approx(-0.1186, abs=5e-5)
    assert d.high == pytest.approx(-0.0046, abs=5e-5)


def test_newcombe_paired_phi_correction():
    # ad - bc = 40*40 - 10*10 = 1500 > n/2, so phi = (1500 - 50) / sqrt(50^4) = 0.58.
    a, b, c, d = 40, 10, 10, 40
    l1, u1 = wilson_interval(50, 100)
    dl = 0.5 - l1
    expected = math.sqrt(2 * dl * dl - 2 * 0.58 * dl * dl)
    res = newcombe_paired_diff(a, b, c, d)
    assert res.estimate == 0.0
    assert (res.low, res.high) == pytest.approx((-expected, expected))


def test_paired_diff_from_sequences():
    x = [True] * 59 + [True] * 6 + [False] * 16 + [False] * 80
    y = [True] * 59 + [False] * 6 + [True] * 16 + [False] * 80
    assert paired_diff(x, y) == newcombe_paired_diff(59, 6, 16, 80)
    assert paired_diff(x, y, 0.9).confidence == 0.9


def test_newcombe_paired_properties():
    rng = random.Random(1)
    for _ in range(300):
        a, b, c, d = (rng.randint(0, 15) for _ in range(4))
        if a + b + c + d == 0:
            continue
        res = newcombe_paired_diff(a, b, c, d)
        assert -1.0 <= res.low <= res.estimate <= res.high <= 1.0
        swapped = newcombe_paired_diff(a, c, b, d)
        assert (res.low, res.high) == pytest.approx((-swapped.high, -swapped.low))
        assert newcombe_paired_diff(a, b, c, d, 0.99).low <= res.low


def test_newcombe_paired_extremes():
    all_b = newcombe_paired_diff(0, 10, 0, 0)  # every pair discordant in x's favour
    assert all_b.estimate == 1.0 and all_b.high == 1.0 and 0 < all_b.low < 1
    none = newcombe_paired_diff(0, 0, 0, 0)
    assert math.isnan(none.estimate) and (none.low, none.high) == (-1.0, 1.0)
    concordant = newcombe_paired_diff(5, 0, 0, 5)
    assert concordant.estimate == 0.0 and concordant.low < 0 < concordant.high


def test_newcombe_paired_wald_limit():
    a, b, c, d = 30_000, 12_000, 8_000, 50_000
    n = a + b + c + d
    est = (b - c) / n
    se = math.sqrt(b + c - (b - c) ** 2 / n) / n
    z = st.norm.ppf(0.975)
    res = newcombe_paired_diff(a, b, c, d)
    assert (res.low, res.high) == pytest.approx((est - z * se, est + z * se), abs=1e-4)


# ------------------------------------------------------------------------------------------- holm


@pytest.mark.parametrize(
    "pvalues",
    [[0.01, 0.04, 0.03, 0.005], [0.5], [0.2, 0.2, 0.2], [0.001, 0.3, 0.9, 0.02, 0.04, 0.6], [0.0, 1.0]],
)
def test_holm_matches_statsmodels(pvalues):
    ref = multipletests(pvalues, method="holm")[1]
    assert holm(pvalues) == pytest.approx(list(ref))


def test_holm_hand_value_and_edges():
    # Sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, max(1*0.04, 0.06).
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.6, 0.7]) == [1.0, 1.0]
    assert holm([]) == []
    with pytest.raises(ValueError):
        holm([0.1, math.nan])
    with pytest.raises(ValueError):
        holm([1.2])


# ------------------------------------------------------------------------------------------- agreement


def test_confusion_matrix():
    a = ["yes", "no", "yes", "yes", "maybe"]
    b = ["yes", "yes", "no", "yes", "maybe"]
    cm = confusion_matrix(a, b)
    assert cm[("yes", "yes")] == 2 and cm[("no", "yes")] == 1 and cm[("yes", "no")] == 1
    assert cm[("maybe", "maybe")] == 1 and cm[("no", "no")] == 0
    assert len(cm) == 9 and sum(cm.values()) == 5
    assert list(cm)[0] == ("maybe", "maybe")  # sorted labels
    bools = confusion_matrix([True, False, True], [True, True, True])
    assert bools == {(False, False): 0, (False, True): 1, (True, False): 0, (True, True): 2}


def test_cohen_kappa_hand_example():
    # 50 items: both yes 20, a yes/b no 5, a no/b yes 10, both no 15.
    # po = 35/50 = 0.7; pe = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.2/0.5 = 0.4.
    a = [True] * 25 + [False] * 25
    b = [True] * 20 + [False] * 5 + [True] * 10 + [False] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(b, a) == pytest.approx(0.4)


def test_cohen_kappa_three_labels():
    # Confusion rows a, cols b: [[2,1,0],[0,2,1],[1,0,3]], n=10; po=0.7,
    # a margins 3,3,4, b margins 3,3,4 -> pe = (9+9+16)/100 = 0.34; kappa = 0.36/0.66.
    a = ["x", "x", "x", "y", "y", "y", "z", "z", "z", "z"]
    b = ["x", "x", "y", "y", "y", "z", "x", "z", "z", "z"]
    assert cohen_kappa(a, b) == pytest.approx(0.36 / 0.66)


def test_cohen_kappa_edges():
    assert cohen_kappa(["a", "b", "a"], ["a", "b", "a"]) == 1.0
    assert cohen_kappa([True, False], [False, True]) == pytest.approx(-1.0)
    # Both raters constant and identical: chance agreement is 1, kappa is undefined -> nan.
    assert math.isnan(cohen_kappa([True] * 5, [True] * 5))
    # Both constant but different: no agreement at all, and none expected -> 0.
    assert cohen_kappa(["a"] * 4, ["b"] * 4) == 0.0
    with pytest.raises(ValueError):
        cohen_kappa([], [])
    with pytest.raises(ValueError):
        cohen_kappa([1, 2], [1])


def test_accuracy():
    acc = accuracy(["a", "b", "c", "a"], ["a", "b", "a", "a"])
    assert (acc.k, acc.n, acc.rate) == (3, 4, 0.75)
    assert (acc.low, acc.high) == wilson_interval(3, 4)
    assert accuracy([True], [True], method="jeffreys").method == "jeffreys"
    with pytest.raises(ValueError):
        accuracy([], [])


def test_auroc_hand_example_with_ties():
    # Positives 0.9, 0.5, 0.5; negatives 0.5, 0.1.
    # Pairs: (0.9 > 0.5, 0.9 > 0.1) = 2; each 0.5 vs (0.5 tie = 1/2, > 0.1 = 1) = 1.5 each -> 5 / 6.
    assert auroc([0.9, 0.5, 0.5, 0.5, 0.1], [True, True, True, False, False]) == pytest.approx(5 / 6)


def test_auroc_matches_brute_force_and_mann_whitney():
    rng = random.Random(7)
    scores = [rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]) for _ in range(60)]
    labels = [rng.random() < 0.4 for _ in range(60)]
    pos = [s for s, lab in zip(scores, labels, strict=True) if lab]
    neg = [s for s, lab in zip(scores, labels, strict=True) if not lab]
    brute = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / (len(pos) * len(neg))
    assert auroc(scores, labels) == pytest.approx(brute)
    u = st.mannwhitneyu(pos, neg).statistic
    assert auroc(scores, labels) == pytest.approx(u / (len(pos) * len(neg)))


def test_auroc_edges():
    assert auroc([1, 2, 3, 4], [False, False, True, True]) == 1.0
    assert auroc([1, 2, 3, 4], [True, True, False, False]) == 0.0
    assert auroc([0.3] * 6, [True, False] * 3) == 0.5  # all ties
    assert auroc([1, 0, 1], [1, 0, 1]) == 1.0  # 0/1 labels accepted
    assert math.isnan(auroc([0.1, 0.2], [True, True]))  # one class: undefined
    with pytest.raises(ValueError):
        auroc([0.1, 0.2], [True, 2])
    with pytest.raises(ValueError):
        auroc([0.1, math.nan], [True, False])
    with pytest.raises(ValueError):
        auroc([], [])


def test_mean_interval_known_value_and_small_n() -> None:
    # [1, 2, 3, 4]: mean 2.5, sd sqrt(5/3), t(0.975, 3) = 3.1824463: half-width 3.1824463 * sqrt(5/3) / 2
    m = mean_interval([1, 2, 3, 4])
    half = 3.1824463052842638 * math.sqrt(5 / 3) / 2
    assert (m.n, m.mean) == (4, 2.5) and m.low == pytest.approx(2.5 - half) and m.high == pytest.approx(2.5 + half)
    assert str(m) == f"2.500 [{2.5 - half:.3f}, {2.5 + half:.3f}] (n = 4)"
    one = mean_interval([0.5])
    assert one.mean == 0.5 and math.isnan(one.low) and str(one) == "0.500 (n = 1)"
    assert str(mean_interval([])) == "n/a"


def test_differences_never_print_a_negative_zero() -> None:
    from mislab.stats import difference_text

    assert difference_text(-1e-6, -4e-4, 0.1) == "+0.0 pp [+0.0, +10.0]"
    assert difference_text(float("nan"), 0.0, 0.0) == "n/a"
