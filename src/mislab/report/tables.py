"""Rates and comparisons from a samples DataFrame (`Store.samples`): pure functions, no printing.

Every rate is k/n with an interval. A metric value of None/NaN means "not applicable" (e.g. the episode never
reached the warning, so nothing could be sabotaged): it is left out of n, counted in `<metric>_na`, and its
reasons (the `not_applicable` column) counted in `<metric>_why`. Samples whose status is not "done" are left
out of every rate and counted in `errors`, because an environment crash says nothing about the model.

A comparison also counts, on each side, the samples a study's `Flag`s mark (cut off, run on an imitation …)
and repeats the test without them, so a verdict that only flagged samples carry can be told apart."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..stats import (
    DifferenceInDifferences,
    RateMethod,
    difference_in_paired_differences,
    fisher_exact,
    holm,
    mcnemar_test,
    mean_interval,
    newcombe_diff,
    newcombe_paired_diff,
    paired_table,
    rate,
)
from ..study import Flag, Metric

__all__ = [
    "comparisons", "footing", "gap_differences", "mean_table", "metric_column", "outcome", "rate_table", "reasons",
]  # fmt: skip

# Below this many samples a metric applies to, a cell shows no rate and no comparison rests on it.
MIN_APPLICABLE = 2

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


def reasons(frame: pd.DataFrame, column: str) -> dict[str, int]:
    """Why `column` does not apply, counted over the frame's samples where it has no value (from the store's
    `not_applicable` column; a value missing with no reason recorded counts as "no value recorded")."""
    if column not in frame.columns:
        return {"no value recorded": len(frame)} if len(frame) else {}
    why = frame["not_applicable"] if "not_applicable" in frame.columns else pd.Series(None, index=frame.index)
    counts: dict[str, int] = {}
    for value, na in zip(frame[column], why, strict=True):
        if outcome_or_value(value) is None:
            reason = na.get(column) if isinstance(na, dict) else None
            reason = reason or "no value recorded"
            counts[reason] = counts.get(reason, 0) + 1
    return counts


def outcome_or_value(value: Any) -> Any:
    """None for "no value" (None, NaN, NA), else the value itself."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def flagged(frame: pd.DataFrame, flags: Sequence[Flag], skip: str = "") -> pd.Series:
    """Which samples any of `flags` marks (a flag on the compared column itself is no caveat of it)."""
    marked = pd.Series(False, index=frame.index)
    for f in flags:
        if f.column != skip and f.column in frame.columns:
            marked |= frame[f.column].map(f.marks).astype(bool)
    return marked


def flag_counts(frame: pd.DataFrame, flags: Sequence[Flag], skip: str = "") -> dict[str, int]:
    """Per flag, how many of the frame's samples it marks (flags that mark none left out)."""
    out = {}
    for f in flags:
        if f.column != skip and f.column in frame.columns:
            count = int(frame[f.column].map(f.marks).astype(bool).sum())
            if count:
                out[f.says] = count
    return out


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
    `m_k`, `m_n`, `m_na` (not applicable) and `m_why` (its reasons, counted), `m_rate`, `m_low`, `m_high`, and
    `m` itself, the display string "k/n = rate% [low, high]"."""
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
                f"{column}_why": reasons(done, column), f"{column}_rate": r.rate, f"{column}_low": r.low,
                f"{column}_high": r.high, column: str(r),
            })  # fmt: skip
        rows.append(row)
    stats = ["k", "n", "na", "why", "rate", "low", "high"]
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


def _compare(cell: pd.DataFrame, base: pd.DataFrame, column: str, keys: list[str], confidence: float) -> dict[str, Any]:
    """One level against the baseline: counts, difference with its interval, and the test's p."""
    if keys:
        x, y, unpaired = _pair(cell, base, column, keys)
        t = paired_table(x, y)
        diff = newcombe_paired_diff(t.a, t.b, t.c, t.d, confidence)
        p = mcnemar_test(t.b, t.c).pvalue if t.n else math.nan
        counts = {"k": t.a + t.b, "n": t.n, "k_base": t.a + t.c, "n_base": t.n, "unpaired": unpaired}
    else:
        cv = [v for v in _outcomes(cell, column) if v is not None]
        bv = [v for v in _outcomes(base, column) if v is not None]
        counts = {"k": sum(cv), "n": len(cv), "k_base": sum(bv), "n_base": len(bv)}
        diff = newcombe_diff(counts["k"], counts["n"], counts["k_base"], counts["n_base"], confidence)
        k, n, k_base, n_base = counts["k"], counts["n"], counts["k_base"], counts["n_base"]
        p = fisher_exact(k, n, k_base, n_base).pvalue if n and n_base else math.nan
    return {**counts, "rate": diff.p1, "rate_base": diff.p2, "diff": diff.estimate, "low": diff.low,
            "high": diff.high, "p": p, "display": str(diff)}  # fmt: skip


def comparisons(
    df: pd.DataFrame,
    metric: MetricLike,
    by: str = "cell",
    baseline: Hashable | None = None,
    paired_on: Columns | None = None,
    within: Columns | None = "model",
    confidence: float = 0.95,
    flags: Sequence[Flag] = (),
) -> pd.DataFrame:
    """Each level of `by` against `baseline` (default: the first level seen), separately within each group
    of `within` (comparing cells across different models would confound the two).

    Independent samples: difference with Newcombe's hybrid score interval, Fisher's exact test. With
    `paired_on` (columns that match a sample in one cell to its twin in the baseline, e.g. the query id
    across alignment-faking tiers): only matched pairs count, Newcombe's paired interval and McNemar's test.
    `p_holm` is Holm-adjusted over the comparisons in this table; a comparison with an empty side has p nan
    and is left out of the family. `diff` is level minus baseline.

    Per side, `na`/`na_base` count the samples the metric does not apply to and `why`/`why_base` their reasons;
    `flagged`/`flagged_base` count what `flags` mark, and `diff_clean`, `low_clean`, `high_clean`, `p_clean`,
    `n_clean`, `n_base_clean` are the comparison without the flagged samples."""
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
            row.update({by: level, "baseline": baseline, "test": "mcnemar" if keys else "fisher"})
            row.update(_compare(cell, base, column, keys, confidence))
            marked_cell, marked_base = flagged(cell, flags, column), flagged(base, flags, column)
            clean = row
            if marked_cell.any() or marked_base.any():
                clean = _compare(cell[~marked_cell], base[~marked_base], column, keys, confidence)
            row.update(
                na=len(cell) - len([v for v in _outcomes(cell, column) if v is not None]), why=reasons(cell, column),
                na_base=len(base) - len([v for v in _outcomes(base, column) if v is not None]),
                why_base=reasons(base, column), flagged=flag_counts(cell, flags, column),
                flagged_base=flag_counts(base, flags, column),
                **{f"{k}_clean": clean[k] for k in ("diff", "low", "high", "p", "n", "n_base")},
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


def gap_differences(
    df: pd.DataFrame,
    metric: MetricLike,
    between: str,
    compare: Hashable,
    baseline: Hashable,
    *,
    gap: tuple[str, Hashable, Hashable] = ("tier", "free", "paid"),
    paired_on: Columns = ("query_id",),
    within: Columns | None = "model",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Does a gap change between conditions? Per group of `within`: the gap (`gap` = (column, level, other):
    level's rate − other's, e.g. free − paid) under `between` = `compare` minus the gap under `between` =
    `baseline`, over the units (`paired_on`, e.g. the query) observed, and applicable, in all four cells. See
    `stats.difference_in_paired_differences` for the interval and the test. Columns: `gap`, `gap_low`,
    `gap_high` (compare), `gap_base…` (baseline), `diff`, `low`, `high`, `p`, `n` (units), `left_out` (units
    without all four), `display`."""
    column = metric_column(metric)
    side, level, other = gap
    keys = _as_list(paired_on)
    rows: list[dict[str, Any]] = []
    done = _done(df)
    for key, group in _groups(done, _as_list(within)):
        found: dict[tuple[Any, ...], list[bool | None]] = {}
        for slot, (cond, tier) in enumerate(((compare, level), (compare, other), (baseline, level), (baseline, other))):
            part = group[(group[between] == cond) & (group[side] == tier)]
            for unit, value in zip(part[keys].itertuples(index=False, name=None), _outcomes(part, column), strict=True):
                found.setdefault(unit, [None] * 4)[slot] = value
        units = [tuple(v) for v in found.values() if None not in v]
        did: DifferenceInDifferences = difference_in_paired_differences(units, confidence)  # type: ignore[arg-type]
        row: dict[str, Any] = dict(zip(_as_list(within), key, strict=True))
        row.update(
            between=between, compare=compare, baseline=baseline, gap=did.a.estimate, gap_low=did.a.low,
            gap_high=did.a.high, gap_base=did.b.estimate, gap_base_low=did.b.low, gap_base_high=did.b.high,
            diff=did.estimate, low=did.low, high=did.high, p=did.pvalue, n=did.n, left_out=len(found) - did.n,
            test="sign-flip", display=str(did), method=did.method,
        )  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows)


def significant(p: float) -> bool:
    return not math.isnan(p) and p < 0.05


def footing(r: Mapping[Any, Any], by: str) -> str | None:
    """Why a comparison row (of `comparisons`) says nothing about the model's choice, or None when it stands: a
    side where the metric applies to too few samples, half of a side flagged (cut off, imitated …), or a verdict
    of its test that changes when the flagged samples are left out."""
    for level, n, na, why, marks in (
        (r[by], r["n"], r["na"], r["why"], r["flagged"]),
        (r["baseline"], r["n_base"], r["na_base"], r["why_base"], r["flagged_base"]),
    ):
        if n < MIN_APPLICABLE:
            shown = "; ".join(f"{reason} ×{count}" for reason, count in sorted(why.items(), key=lambda kv: -kv[1]))
            return f"{level}: the metric applies to {n} of {n + na}" + (f" ({shown})" if shown else "")
        for says, count in marks.items():
            if count and count * 2 >= n:
                return f"{level}: {count}/{n + na} {says}"
    if significant(r["p"]) != significant(r["p_clean"]) or r["n_clean"] < MIN_APPLICABLE:
        return "the difference is carried by flagged samples: without them it " + (
            "disappears" if significant(r["p"]) else "appears"
        )
    return None
