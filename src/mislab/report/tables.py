"""Rates and comparisons from a samples DataFrame (`Store.samples`): pure functions, no printing.

Every rate is k/n with an interval. A metric value of None/NaN means "not applicable" (e.g. no shutdown
happened, so nothing could be sabotaged): it is left out of n and counted in `<metric>_na`. Samples whose
status is not "done" are left out of every rate and counted in `errors`, because an environment crash
says nothing about the model."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..stats import (
    Difference,
    RateMethod,
    fisher_exact,
    holm,
    mcnemar_test,
    mean_interval,
    newcombe_diff,
    newcombe_paired_diff,
    paired_table,
    rate,
)
from ..study import Metric

__all__ = ["comparisons", "mean_table", "metric_column", "outcome", "rate_table"]

MetricLike = Metric | str
Columns = str | Sequence[str]


def metric_column(metric: MetricLike) -> str:
    return metric.column if isinstance(metric, Metric) else metric


def _as_list(columns: Columns | None) -> list[str]:
    if columns is None:
        return []
    return [columns] if isinstance(columns, str) else list(columns)


def outcome(value: Any) -> bool | None:
    """A metric value as True/False, or None for "not applicable".

    Anything that is not a boolean outcome raises: a judge label like "maybe" silently counted as a failure
    would corrupt a rate."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.integer | np.floating):
        if math.isnan(value):
            return None
        if value in (0, 1):
            return bool(value)
    raise ValueError(f"not a boolean outcome: {value!r}")


def _outcomes(frame: pd.DataFrame, column: str) -> list[bool | None]:
    # A column missing altogether (every sample errored, or the scorer never ran) is all "not applicable".
    if column not in frame.columns:
        return [None] * len(frame)
    return [outcome(v) for v in frame[column]]


def _done(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "done"]


def _groups(frame: pd.DataFrame, by: list[str]) -> Iterable[tuple[tuple[Hashable, ...], pd.DataFrame]]:
    """Groups in order of first appearance (the store orders samples by model, cell, epoch)."""
    if not by:
        yield (), frame
        return
    for key, group in frame.groupby(by, sort=False, dropna=False):
        yield (key if isinstance(key, tuple) else (key,)), group


def rate_table(
    df: pd.DataFrame,
    metrics: Sequence[MetricLike],
    by: Columns = ("model", "cell"),
    method: RateMethod = "wilson",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """One row per group of `by`, with `samples` and `errors`, and for each metric column `m`:
    `m_k`, `m_n`, `m_na` (not applicable), `m_rate`, `m_low`, `m_high`, and `m` itself, the display string
    "k/n = rate% [low, high]"."""
    by_cols = _as_list(by)
    columns = [metric_column(m) for m in metrics]
    rows: list[dict[str, Any]] = []
    for key, group in _groups(df, by_cols):
        done = _done(group)
        row: dict[str, Any] = dict(zip(by_cols, key, strict=True))
        row.update(samples=len(group), errors=len(group) - len(done))
        for column in columns:
            values = _outcomes(done, column)
            counted = [v for v in values if v is not None]
            r = rate(sum(counted), len(counted), method, confidence)
            row.update({
                f"{column}_k": r.k, f"{column}_n": r.n, f"{column}_na": len(values) - len(counted),
                f"{column}_rate": r.rate, f"{column}_low": r.low, f"{column}_high": r.high, column: str(r),
            })  # fmt: skip
        rows.append(row)
    stats = ["k", "n", "na", "rate", "low", "high"]
    order = by_cols + ["samples", "errors"] + [c for col in columns for c in [*(f"{col}_{s}" for s in stats), col]]
    return pd.DataFrame(rows, columns=order)


def mean_table(
    df: pd.DataFrame, metrics: Sequence[MetricLike], by: Columns = ("model", "cell"), confidence: float = 0.95
) -> pd.DataFrame:
    """For numeric score columns (e.g. StrongREJECT), one row per group of `by` with, for each column `m`:
    `m_n`, `m_na` (not applicable), `m_mean`, `m_low`, `m_high` (a t interval) and `m`, the display string."""
    by_cols = _as_list(by)
    rows: list[dict[str, Any]] = []
    for key, group in _groups(df, by_cols):
        done = _done(group)
        row: dict[str, Any] = dict(zip(by_cols, key, strict=True))
        for column in map(metric_column, metrics):
            raw = done[column].tolist() if column in done.columns else [None] * len(done)
            values = [float(v) for v in raw if v is not None and not (isinstance(v, float) and math.isnan(v))]
            m = mean_interval(values, confidence)
            row.update({
                f"{column}_n": m.n, f"{column}_na": len(raw) - m.n, f"{column}_mean": m.mean, f"{column}_low": m.low,
                f"{column}_high": m.high, column: str(m),
            })  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows)


def _pair(cell: pd.DataFrame, base: pd.DataFrame, column: str, keys: list[str]) -> tuple[list[bool], list[bool], int]:
    """Outcomes of the samples present (and applicable) in both frames, matched on `keys`; also the number
    of samples left without a partner."""

    def keyed(frame: pd.DataFrame) -> dict[tuple[Any, ...], bool | None]:
        out: dict[tuple[Any, ...], bool | None] = {}
        for key, value in zip(frame[keys].itertuples(index=False, name=None), _outcomes(frame, column), strict=True):
            if key in out:
                raise ValueError(
                    f"paired_on={keys} does not identify samples uniquely ({key} occurs twice); "
                    "add a column, e.g. 'epoch'"
                )
            out[key] = value
        return out

    x = {k: v for k, v in keyed(cell).items() if v is not None}
    y = {k: v for k, v in keyed(base).items() if v is not None}
    common = [k for k in x if k in y]
    unpaired = len(x) + len(y) - 2 * len(common)
    return [x[k] for k in common], [y[k] for k in common], unpaired


def comparisons(
    df: pd.DataFrame,
    metric: MetricLike,
    by: str = "cell",
    baseline: Hashable | None = None,
    paired_on: Columns | None = None,
    within: Columns | None = "model",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Each level of `by` against `baseline` (default: the first level seen), separately within each group
    of `within` (comparing cells across different models would confound the two).

    Independent samples: difference with Newcombe's hybrid score interval, Fisher's exact test. With
    `paired_on` (columns that match a sample in one cell to its twin in the baseline, e.g. the query id
    across alignment-faking tiers): only matched pairs count, Newcombe's paired interval and McNemar's test.
    `p_holm` is Holm-adjusted over the comparisons in this table; a comparison with an empty side has p nan
    and is left out of the family. `diff` is level minus baseline."""
    column = metric_column(metric)
    within_cols = _as_list(within)
    keys = _as_list(paired_on)
    done = _done(df)
    levels = list(dict.fromkeys(done[by])) if by in done.columns else []
    if baseline is None and levels:
        baseline = levels[0]
    if baseline is not None and baseline not in levels:
        raise ValueError(f"baseline {baseline!r} is not a value of {by!r} among finished samples: {levels}")
    rows: list[dict[str, Any]] = []
    for key, group in _groups(done, within_cols):
        base = group[group[by] == baseline]
        if base.empty:
            continue
        for level in dict.fromkeys(group[by]):
            if level == baseline:
                continue
            cell = group[group[by] == level]
            row: dict[str, Any] = dict(zip(within_cols, key, strict=True))
            row.update({by: level, "baseline": baseline})
            diff: Difference
            if keys:
                x, y, unpaired = _pair(cell, base, column, keys)
                t = paired_table(x, y)
                diff = newcombe_paired_diff(t.a, t.b, t.c, t.d, confidence)
                k, n, k_base, n_base = t.a + t.b, t.n, t.a + t.c, t.n
                p = mcnemar_test(t.b, t.c).pvalue if t.n else math.nan
                row.update(test="mcnemar", unpaired=unpaired)
            else:
                cv = [v for v in _outcomes(cell, column) if v is not None]
                bv = [v for v in _outcomes(base, column) if v is not None]
                k, n, k_base, n_base = sum(cv), len(cv), sum(bv), len(bv)
                diff = newcombe_diff(k, n, k_base, n_base, confidence)
                p = fisher_exact(k, n, k_base, n_base).pvalue if n and n_base else math.nan
                row.update(test="fisher")
            row.update(
                k=k, n=n, k_base=k_base, n_base=n_base, rate=diff.p1, rate_base=diff.p2, diff=diff.estimate,
                low=diff.low, high=diff.high, p=p, display=str(diff),
            )  # fmt: skip
            rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    tested = table["p"].notna()
    table["p_holm"] = math.nan
    if tested.any():
        table.loc[tested, "p_holm"] = holm(table.loc[tested, "p"].tolist())
    return table
