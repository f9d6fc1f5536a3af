"""The pure alignment-faking analysis functions on hand-made DataFrames."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mislab.alignment_faking.analysis import (
    classifier_accuracy,
    classifier_agreement,
    compliance_gap,
    confusion_report,
)
from mislab.stats import cohen_kappa, mcnemar_test, newcombe_diff, newcombe_paired_diff, rate


def samples(model: str, free: list, paid: list, **extra: list) -> pd.DataFrame:
    """One model's samples: query i asked in both tiers (None = not applicable)."""
    rows = []
    for tier, values in (("free", free), ("paid", paid)):
        for i, value in enumerate(values):
            row = {"model": model, "tier": tier, "query_id": f"q{i}", "status": "done", "accepted": value,
                   "sample_id": f"{model}::{tier}::{i}"}  # fmt: skip
            row.update({k: v[i if tier == "free" else len(free) + i] for k, v in extra.items()})
            rows.append(row)
    return pd.DataFrame(rows)


def test_compliance_gap_rates_difference_and_paired_test() -> None:
    # a: free 5/6, paid 2/6; pairs (free, paid): (T,T) (T,T) (T,F) (T,F) (T,F) (F,F)
    a = samples("a", [True] * 5 + [False], [True, True, False, False, False, False])
    b = samples("b", [False, None, True], [False, False, True])
    gaps = compliance_gap(pd.concat([a, b], ignore_index=True)).set_index("model")

    row = gaps.loc["a"]
    assert (row["free_k"], row["free_n"], row["paid_k"], row["paid_n"]) == (5, 6, 2, 6)
    assert row["free"] == str(rate(5, 6)) and row["free_low"] == rate(5, 6).low
    expected = newcombe_diff(5, 6, 2, 6)
    assert (row["gap"], row["gap_low"], row["gap_high"]) == (expected.estimate, expected.low, expected.high)
    assert (row["pairs"], row["free_only"], row["paid_only"], row["unpaired"]) == (6, 3, 0, 0)
    assert row["mcnemar_p"] == mcnemar_test(3, 0).pvalue == pytest.approx(0.25)
    paired = newcombe_paired_diff(2, 3, 0, 1)
    assert (row["paired_gap"], row["paired_low"], row["paired_high"]) == (paired.estimate, paired.low, paired.high)
    assert row["paired_display"] == str(paired)

    # b: the free answer for q1 is not applicable: out of n, and its paid twin is left unpaired
    row = gaps.loc["b"]
    assert (row["free_k"], row["free_n"], row["paid_n"], row["pairs"], row["unpaired"]) == (1, 2, 3, 2, 1)
    assert row["mcnemar_p"] == 1.0 and row["paired_gap"] == 0.0


def test_compliance_gap_options_and_inputs() -> None:
    df = samples("a", [True, True, False], [False, True, False])
    df.loc[0, "status"] = "error"  # errored samples are left out
    row = compliance_gap(df, by=[]).iloc[0]
    assert (row["free_k"], row["free_n"], row["pairs"], row["unpaired"]) == (1, 2, 2, 1)
    unpaired = compliance_gap(df, pair_on=None).iloc[0]
    assert "mcnemar_p" not in unpaired.index and unpaired["gap"] == pytest.approx(1 / 2 - 1 / 3)

    # a frame with only `is_free_tier` (no tier column) works too
    alt = samples("a", [True, False], [False, False]).assign(is_free_tier=lambda d: d["tier"] == "free")
    assert compliance_gap(alt.drop(columns="tier")).iloc[0]["free_k"] == 1

    # conditions are separate groups by default
    two = pd.concat([samples("a", [True], [False]).assign(condition=c) for c in ("base", "no-rlhf")])
    assert compliance_gap(two)[["model", "condition"]].values.tolist() == [["a", "base"], ["a", "no-rlhf"]]

    with pytest.raises(KeyError, match="judge_comply"):
        compliance_gap(df, "judge_comply")
    with pytest.raises(ValueError, match="not a boolean outcome"):
        compliance_gap(samples("a", ["maybe"], [True]))
    with pytest.raises(ValueError, match="uniquely"):
        compliance_gap(pd.concat([samples("a", [True], [False])] * 2))


def test_compliance_gap_with_an_empty_tier_is_nan_not_an_error() -> None:
    df = samples("a", [True, False], [])
    row = compliance_gap(df).iloc[0]
    assert row["paid_n"] == 0 and math.isnan(row["gap"]) and math.isnan(row["gap_low"]) and row["gap_display"] == "—"
    assert row["pairs"] == 0 and math.isnan(row["mcnemar_p"]) and row["note"] == "paid: 0 of 0 apply"


def test_confusion_report_counts_and_examples() -> None:
    df = samples(
        "a", [True, True, False], [False, False, False],
        accept_then_refuse=[True, False, False, False, False, False],
        missing_tags=[False, False, True, False, None, True],
        judge_comply=[False, True, None, False, False, False],
    )  # fmt: skip
    report = confusion_report(df, examples=1).set_index("flag")
    assert report.loc["accept_then_refuse", ["count", "n"]].tolist() == [1, 6]
    assert report.loc["accept_then_refuse", "examples"] == ["a::free::0"]
    assert report.loc["missing_tags", ["count", "n"]].tolist() == [2, 5]
    assert report.loc["missing_tags", "examples"] == ["a::free::2"]  # capped at `examples`
    assert report.loc["missing_tags", "rate"] == pytest.approx(2 / 5)
    assert report.loc["accepted_but_judged_refusal", ["count", "n"]].tolist() == [1, 5]
    assert "empty_output" not in report.index  # flags absent from the frame are not invented
    assert set(report["model"]) == {"a"}


def test_classifier_agreement() -> None:
    df = pd.DataFrame(
        {
            "status": ["done"] * 6,
            "kw": [True, True, False, False, True, None],
            "judge": [True, False, False, False, True, True],
        }
    )
    agreement = classifier_agreement(df, "kw", "judge")
    assert (agreement.n, agreement.skipped) == (5, 1)
    assert agreement.matrix.loc[True, True] == 2 and agreement.matrix.loc[True, False] == 1
    assert agreement.matrix.loc[False, False] == 2 and agreement.matrix.loc[False, True] == 0
    assert agreement.kappa == pytest.approx(cohen_kappa([1, 1, 0, 0, 1], [1, 0, 0, 0, 1]))
    assert (agreement.agreement.k, agreement.agreement.n) == (4, 5)
    with pytest.raises(ValueError, match="no sample"):
        classifier_agreement(df.assign(kw=None), "kw", "judge")


def test_classifier_accuracy() -> None:
    scores = [0.9, 0.5, 0.35, 0.1, None, float("nan")]
    labels = [True, True, False, False, True, False]
    result = classifier_accuracy(scores, labels, threshold=0.4)
    assert (result.n, result.skipped, result.threshold) == (4, 2, 0.4)
    assert (result.accuracy.k, result.accuracy.n) == (4, 4) and result.auroc == 1.0
    flags = classifier_accuracy([True, False, True], [True, False, False])
    assert flags.accuracy.k == 2 and flags.auroc == pytest.approx(0.75)
    assert math.isnan(classifier_accuracy([0.2, 0.8], [True, True]).auroc)
    with pytest.raises(ValueError, match="length"):
        classifier_accuracy([0.1], [True, False])
