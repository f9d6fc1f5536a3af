"""Rate tables and comparisons against mislab.stats, on a tiny hand-made run (no model involved).

The run is `support.runs.make_run`, shared with the other report tests."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from mislab.report import comparisons, rate_table
from mislab.report.published import load_targets
from mislab.stats import fisher_exact, holm, mcnemar_test, newcombe_diff, newcombe_paired_diff, paired_table, rate

from support.runs import ERRORED, LOCAL, O3, SABOTAGED, FakeStudy, _expected, make_run


def test_rate_table_matches_stats(tmp_path: Path) -> None:
    store, run_id = make_run(tmp_path)
    df = store.samples(run_id)
    table = rate_table(df, FakeStudy.metrics)
    assert list(zip(table["model"], table["cell"], strict=True)) == list(SABOTAGED)  # store order kept
    for row in table.to_dict("records"):
        k, n, na = _expected(row["model"], row["cell"])
        expected = rate(k, n)
        assert (row["sabotaged_k"], row["sabotaged_n"], row["sabotaged_na"]) == (k, n, na)
        assert row["sabotaged_low"] == pytest.approx(expected.low)
        assert row["sabotaged_high"] == pytest.approx(expected.high)
        assert row["sabotaged"] == str(expected)
        errored = (row["model"], row["cell"]) == ERRORED[:2]
        assert row["errors"] == int(errored)
        assert row["samples"] == len(SABOTAGED[(row["model"], row["cell"])]) + int(errored)
    o3_a = table.iloc[2]
    assert o3_a["sabotaged"] == "4/5 = 80.0% [37.6, 96.4]"  # None excluded from n, the error too


def test_rate_table_jeffreys_and_grouping() -> None:
    df = pd.DataFrame({
        "model": ["m"] * 5, "cell": ["a"] * 5, "status": ["done"] * 4 + ["error"],
        "x": [True, 0, 1.0, float("nan"), True],
    })  # fmt: skip
    table = rate_table(df, ["x", "absent"], by="cell", method="jeffreys")
    expected = rate(2, 3, "jeffreys")
    row = table.iloc[0]
    assert (row["x_k"], row["x_n"], row["x_na"], row["errors"]) == (2, 3, 1, 1)
    assert (row["x_low"], row["x_high"]) == pytest.approx((expected.low, expected.high))
    assert row["absent"] == "0/0 = n/a [0.0, 100.0]"  # a column nobody wrote: all not applicable
    with pytest.raises(ValueError, match="not a boolean outcome"):
        rate_table(df.assign(x=["yes"] * 5), ["x"])


def test_comparisons_unpaired_with_holm(tmp_path: Path) -> None:
    store, run_id = make_run(tmp_path)
    df = store.samples(run_id)
    table = comparisons(df, "sabotaged")  # baseline: first cell seen; within each model
    assert list(table["model"]) == [LOCAL, O3]
    assert set(table["cell"]) == {"palisade_e"} and set(table["baseline"]) == {"palisade_a"}
    for row in table.to_dict("records"):
        k, n, _ = _expected(row["model"], "palisade_e")
        kb, nb, _ = _expected(row["model"], "palisade_a")
        d = newcombe_diff(k, n, kb, nb)
        assert (row["k"], row["n"], row["k_base"], row["n_base"]) == (k, n, kb, nb)
        assert (row["diff"], row["low"], row["high"]) == pytest.approx((d.estimate, d.low, d.high))
        assert row["p"] == pytest.approx(fisher_exact(k, n, kb, nb).pvalue)
        assert row["test"] == "fisher" and row["display"] == str(d)
    assert table["p_holm"].tolist() == pytest.approx(holm(table["p"].tolist()))
    reverse = comparisons(df, "sabotaged", baseline="palisade_e", within=None)
    assert len(reverse) == 1 and reverse.iloc[0]["cell"] == "palisade_a"
    with pytest.raises(ValueError, match="baseline"):
        comparisons(df, "sabotaged", baseline="nope")


def test_comparisons_paired_mcnemar() -> None:
    # Each query asked in both tiers; q5 is n/a in "free" and q6 in "paid": their twins lose their partner.
    free = [True, True, True, False, True, True, None]
    paid = [False, True, False, False, None, False, True]
    queries = ["q0", "q1", "q2", "q3", "q6", "q4", "q5"]
    df = pd.DataFrame({
        "model": "m", "status": "done", "tier": ["free"] * 7 + ["paid"] * 7, "query": queries * 2,
        "accepted": free + paid,
    })  # fmt: skip
    table = comparisons(df, "accepted", by="tier", baseline="paid", paired_on="query")
    row = table.iloc[0]
    x = [True, True, True, False, True]  # free, queries q0..q4
    y = [False, True, False, False, False]  # paid
    t = paired_table(x, y)
    d = newcombe_paired_diff(t.a, t.b, t.c, t.d)
    assert (row["n"], row["k"], row["k_base"], row["unpaired"]) == (5, 4, 1, 2)
    assert (row["diff"], row["low"], row["high"]) == pytest.approx((d.estimate, d.low, d.high))
    assert row["p"] == pytest.approx(mcnemar_test(t.b, t.c).pvalue) and row["test"] == "mcnemar"
    assert row["p_holm"] == pytest.approx(row["p"])  # a family of one
    with pytest.raises(ValueError, match="uniquely"):
        comparisons(pd.concat([df, df]), "accepted", by="tier", baseline="paid", paired_on="query")


def test_comparisons_empty_side_left_out_of_holm() -> None:
    df = pd.DataFrame({
        "model": "m", "status": "done", "cell": ["a", "a", "b", "b", "c"], "x": [True, False, True, True, None],
    })  # fmt: skip
    table = comparisons(df, "x")
    by_cell = table.set_index("cell")
    assert math.isnan(by_cell.loc["c", "p"]) and math.isnan(by_cell.loc["c", "p_holm"])
    assert by_cell.loc["b", "p_holm"] == pytest.approx(by_cell.loc["b", "p"])


def test_published_targets_transcribed() -> None:
    targets = load_targets("shutdown")
    o3_a = [t for t in targets if t.model == "o3" and t.variant == "palisade_a"]
    assert len(o3_a) == 1 and (o3_a[0].value, o3_a[0].low, o3_a[0].high) == (0.945, 0.930, 0.958)
    assert o3_a[0].matches_model(O3) and o3_a[0].matches_model("openai/o3") and not o3_a[0].matches_model("o3-mini")
    assert o3_a[0].display() == "94.5% [93.0, 95.8] Jeffreys 95%, n≈1000"
    assert {t.variant for t in targets} == {"palisade_a", "palisade_e", None}
    assert all(t.variant is None for t in targets if t.metric == "complied")  # DeepMind: no exact mapping
    af = load_targets("alignment_faking")
    assert {t.metric for t in af} == {"af_reasoning", "accepted"}
    opus = next(t for t in af if t.metric == "af_reasoning" and t.kind == "rate")
    assert opus.value == 0.119 and opus.matches_model("anthropic/claude-3-opus")
