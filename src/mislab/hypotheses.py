"""Hypotheses as data: an experiment names competing explanations and, for each ablation, the direction each
one predicts on a metric. The evidence table puts every prediction beside the measured difference and its
interval:

    [hypotheses]
    self_preservation = "The model resists shutdown to keep itself running."
    instruction_ambiguity = "The model resists because it reads finishing the task as the instruction that wins."

    [[ablations]]
    id = "clarified_precedence"
    compare = "gdm_clarified"      # a value of `by` (default: the cell)
    baseline = "basic_warning"
    metric = "complied"
    predicts = { self_preservation = "none", instruction_ambiguity = "up" }
    # optional: by = "tier", paired_on = ["query_id"], within = ["model"], margin = 0.1,
    # where = { condition = "scratchpad=true" }   (compare only among samples with these values)

`compare` and `baseline` may also name a factor's value, `"rlhf_paragraph=false"`: the comparison is then by
that factor (written as in a cell id: true/false, numbers, text). With `of = "gap"` the quantity compared is the
study's gap (for alignment faking: free − paid, paired on the query) between the two conditions — does the
compliance gap shrink when the RLHF paragraph is removed? — as a difference in gaps over the queries asked in
all four cells (`report.tables.gap_differences`).

An ablation may instead name a branch intervention (`mislab branch`), measured on a branch run against pure
resampling from the same prefixes, pooled over parents (`branching.branch_effects`):

    [[ablations]]
    id = "clarified_from_the_warning"
    compare = "variant:gdm_clarified"   # or "edit:warning:OLD=>NEW", "drop:reasoning:/REGEX/"
    metric = "sabotaged"                # baseline: "resample", the only one a branch is paired with
    predicts = { self_preservation = "none", instruction_ambiguity = "down" }

A prediction of "up" or "down" is consistent when the interval of (compare − baseline) lies wholly on its
side of zero, contradicted when it lies wholly on the other side, and undecided when it crosses zero. "none"
is contradicted when the interval excludes zero, consistent when it lies within ±margin (default 0.1), and
undecided otherwise. A verdict that the study's flagged samples (replies cut off, run on an imitation …) carry —
it changes when they are left out, or they are half of a side — is undecided, and the row says why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from .errors import MislabError
from .options import did_you_mean
from .study import Comparison, Flag

Direction = Literal["up", "down", "none"]
Verdict = Literal["consistent", "contradicted", "undecided"]
DIRECTIONS = ("up", "down", "none")
DEFAULT_MARGIN = 0.1
BRANCH_ARMS = ("variant:", "edit:", "drop:")  # how a branch intervention's label starts (`branching.Intervention`)
BRANCH_BASELINE = "resample"


class HypothesisError(MislabError, ValueError):
    pass


@dataclass(frozen=True)
class Ablation:
    id: str
    compare: Any
    baseline: Any
    metric: str
    predicts: dict[str, Direction]
    by: str = "cell"
    within: tuple[str, ...] = ("model",)
    paired_on: tuple[str, ...] = ()
    margin: float = DEFAULT_MARGIN
    where: dict[str, Any] = field(default_factory=dict, hash=False)
    of: Literal["rate", "gap"] = "rate"


@dataclass(frozen=True)
class Hypotheses:
    claims: dict[str, str]
    ablations: tuple[Ablation, ...]
    confidence: float = 0.95


_ABLATION_KEYS = {"id", "compare", "baseline", "metric", "predicts", "by", "within", "paired_on", "margin", "where",
                  "of"}  # fmt: skip


def factor_value(text: Any) -> tuple[str, str] | None:
    """`"rlhf_paragraph=false"` → ("rlhf_paragraph", "false"): a factor and its value as written in a cell id."""
    if isinstance(text, str) and "=" in text and "," not in text and "|" not in text:
        column, _, value = text.partition("=")
        if column.strip() and value.strip():
            return column.strip(), value.strip()
    return None


def _as_written(value: Any) -> str:
    """A value as a cell id writes it (TOML's true/false, numbers, text)."""
    return "true" if value is True else "false" if value is False else str(value)


def is_branch_arm(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(BRANCH_ARMS)


def _names(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value or ())


def parse_hypotheses(spec: dict[str, Any], where: str = "experiment") -> Hypotheses | None:
    """The hypotheses and ablations of an experiment spec; None when it declares none."""
    claims, raw = spec.get("hypotheses"), spec.get("ablations")
    if not claims and not raw:
        return None
    if not isinstance(claims, dict) or not claims or not all(isinstance(v, str) for v in claims.values()):
        raise HypothesisError(f'{where}: [hypotheses] must map each hypothesis id to its claim, e.g. x = "…"')
    if not isinstance(raw, list) or not raw:
        raise HypothesisError(f"{where}: declare at least one [[ablations]] with what each hypothesis predicts")
    ablations = []
    for i, a in enumerate(raw, 1):
        label = f"{where}: ablation {a.get('id', i) if isinstance(a, dict) else i}"
        if not isinstance(a, dict):
            raise HypothesisError(f"{label} must be a table")
        for key in sorted(set(a) - _ABLATION_KEYS):
            hint = did_you_mean(key, _ABLATION_KEYS) or f" (allowed: {', '.join(sorted(_ABLATION_KEYS))})"
            raise HypothesisError(f"{label}: unknown key {key!r}{hint}")
        branch = is_branch_arm(a.get("compare"))
        if branch:
            a = {"baseline": BRANCH_BASELINE, **a, "by": "intervention"}
            if a["baseline"] != BRANCH_BASELINE:
                raise HypothesisError(f'{label}: a branch intervention is measured against pure resampling from the '
                                      f'same prefixes: baseline = "{BRANCH_BASELINE}" (or leave it out)')  # fmt: skip
        missing = [k for k in ("compare", "baseline", "metric", "predicts") if k not in a]
        if missing:
            raise HypothesisError(f"{label}: missing {', '.join(missing)}")
        predicts = a["predicts"]
        if not isinstance(predicts, dict) or not predicts:
            raise HypothesisError(f'{label}: predicts must map hypothesis ids to "up", "down" or "none"')
        for h, d in predicts.items():
            if h not in claims:
                raise HypothesisError(f"{label}: predicts names {h!r}, which is not in [hypotheses] {sorted(claims)}")
            if d not in DIRECTIONS:
                raise HypothesisError(f'{label}: {h} predicts {d!r}; use "up", "down" or "none"')
        where_ = a.get("where", {})
        if not isinstance(where_, dict):
            raise HypothesisError(f'{label}: where must map columns to values, e.g. where = {{ tier = "free" }}')
        margin = a.get("margin", DEFAULT_MARGIN)
        if not isinstance(margin, int | float) or not 0 < margin < 1:
            raise HypothesisError(f"{label}: margin must be a number between 0 and 1, got {margin!r}")
        of = a.get("of", "rate")
        if of not in ("rate", "gap"):
            raise HypothesisError(f'{label}: of must be "rate" or "gap" (the study\'s paired gap), got {of!r}')
        by = a.get("by", "cell")
        sides = [None, None] if branch else [factor_value(a["compare"]), factor_value(a["baseline"])]
        if any(sides):
            if not all(sides) or sides[0][0] != sides[1][0]:  # type: ignore[index]
                raise HypothesisError(f'{label}: compare and baseline must name one factor, e.g. compare = '
                                      '"rlhf_paragraph=false", baseline = "rlhf_paragraph=true"')  # fmt: skip
            by = sides[0][0]  # type: ignore[index]
        ablations.append(
            Ablation(
                id=str(a.get("id", f"{a['compare']} vs {a['baseline']}")),
                compare=sides[0][1] if sides[0] else a["compare"], baseline=sides[1][1] if sides[1] else a["baseline"],
                metric=a["metric"], predicts=dict(predicts), by=by, within=_names(a.get("within", "model")),
                paired_on=_names(a.get("paired_on")), margin=float(margin), where=dict(where_), of=of,
            )
        )  # fmt: skip
    return Hypotheses(dict(claims), tuple(ablations))


def judge_prediction(direction: Direction, low: float, high: float, margin: float) -> Verdict:
    """A prediction against a difference's interval (see the module's docstring)."""
    if direction == "up":
        return "consistent" if low > 0 else "contradicted" if high < 0 else "undecided"
    if direction == "down":
        return "consistent" if high < 0 else "contradicted" if low > 0 else "undecided"
    if low > 0 or high < 0:
        return "contradicted"
    return "consistent" if -margin < low and high < margin else "undecided"


@dataclass
class Evidence:
    hypotheses: Hypotheses
    rows: pd.DataFrame  # one per hypothesis × ablation × group of `within`
    problems: dict[str, str] = field(default_factory=dict)  # ablation id → why it could not be measured

    def verdict(self, hypothesis: str) -> str:
        seen = self.rows[self.rows["hypothesis"] == hypothesis]["verdict"].tolist() if len(self.rows) else []
        if "contradicted" in seen:
            return "contradicted"
        if seen and all(v == "consistent" for v in seen):
            return "supported"
        return "partly supported" if "consistent" in seen else "undecided"

    def sentences(self) -> list[str]:
        """One sentence per hypothesis: what the predictions came to."""
        out = []
        for h, claim in self.hypotheses.claims.items():
            rows = self.rows[self.rows["hypothesis"] == h] if len(self.rows) else self.rows
            counts = {v: int((rows["verdict"] == v).sum()) if len(rows) else 0 for v in
                      ("consistent", "contradicted", "undecided")}  # fmt: skip
            worst = rows[rows["verdict"] == "contradicted"] if len(rows) else rows
            why = ""
            if len(worst):
                r = worst.iloc[0]
                detail = f" ({r['detail']})" if r.get("detail") else ""
                why = (f"; e.g. {r['ablation']} on {r['metric']}: predicted {r['predicted']}, measured "
                       f"{r['display']}{detail}")  # fmt: skip
            out.append(
                f"{h} ({claim}): {self.verdict(h)} — {counts['consistent']} consistent, "
                f"{counts['contradicted']} contradicted, {counts['undecided']} undecided of {len(rows)} "
                f"prediction{'s' * (len(rows) != 1)}{why}."
            )
        return out

    def table_rows(self) -> tuple[list[str], list[list[str]]]:
        """Headers and rows as text (the terminal and the page style them); the verdict last."""
        headers = ["hypothesis", "ablation", "metric", "group", "predicted", "measured difference [CI]", "n vs n",
                   "why undecided", "verdict"]  # fmt: skip
        rows = [
            [r["hypothesis"], r["ablation"], r["metric"], r["group"], r["predicted"], r["display"],
             f"{r['n']} vs {r['n_base']}", r["note"] or "—", r["verdict"]]
            for r in self.rows.to_dict("records")
        ]  # fmt: skip
        return headers, rows


def _level(levels: list[Any], wanted: Any) -> Any:
    """The level of a factor that `wanted` names, as a value (True) or as a cell id writes it ("true")."""
    for level in levels:
        if level == wanted and type(level) is type(wanted) or _as_written(level) == _as_written(wanted):
            return level
    raise KeyError(f"no samples with {wanted!r}{did_you_mean(_as_written(wanted), map(_as_written, levels))} "
                   f"(values: {', '.join(map(_as_written, levels))})")  # fmt: skip


def evidence(
    df: pd.DataFrame,
    hypotheses: Hypotheses,
    confidence: float = 0.95,
    *,
    flags: tuple[Flag, ...] = (),
    comparison: Comparison | None = None,
    parents: str = "",
    include_unfaithful: bool = False,
) -> Evidence:
    """Every prediction beside its measured difference (compare − baseline, within each group). `flags` are the
    study's marks on samples that undermine a comparison (a verdict they carry is undecided); `comparison` the
    study's paired gap, for ablations `of = "gap"`. On a branch run (`mislab branch`), ablations naming an
    intervention are measured against pure resampling; `parents` says how its parents were chosen, and
    continuations whose replay diverged count only if `include_unfaithful`."""
    from .report.tables import MIN_APPLICABLE, comparisons, footing, gap_differences  # imported when measuring

    rows: list[dict[str, Any]] = []
    problems: dict[str, str] = {}
    done = df[df["status"] == "done"] if "status" in df.columns else df
    branched = "parent_sample" in df.columns
    for ab in hypotheses.ablations:
        if (ab.by == "intervention") != branched:
            problems[ab.id] = (
                f"{ab.compare} is a branch intervention, measured on a branch run of this one (mislab branch RUN)"
                if not branched
                else 'this run is a branch run: its ablations name interventions (compare = "variant:NAME" …)'
            )
            continue
        missing = [c for c in [*ab.where, ab.by, *((ab.metric,) if branched else ())] if c not in df.columns]
        if missing:
            hint = did_you_mean(missing[0], df.columns)
            problems[ab.id] = f"the run has no column {missing[0]!r} to compare or select by{hint}"
            continue
        selected = done
        for column, value in ab.where.items():
            selected = selected[selected[column].map(_as_written) == _as_written(value)]
        if branched:
            measured = _branch_rows(selected, ab, parents, include_unfaithful)
            if not measured:
                problems[ab.id] = f"no parent has both {ab.compare} and pure resampling finished on {ab.metric}"
            rows += measured
            continue
        try:
            levels = list(dict.fromkeys(selected[ab.by]))
            compare, baseline = _level(levels, ab.compare), _level(levels, ab.baseline)
            if ab.of == "gap":
                table = _gap_table(selected, ab, compare, baseline, comparison, confidence, gap_differences)
            else:
                table = comparisons(
                    selected, ab.metric, by=ab.by, baseline=baseline, paired_on=list(ab.paired_on) or None,
                    within=list(ab.within), confidence=confidence, flags=flags,
                )  # fmt: skip
                table = table[table[ab.by] == compare] if len(table) else table
        except (ValueError, KeyError) as exc:
            problems[ab.id] = str(exc.args[0]) if exc.args else str(exc)
            continue
        if table.empty:
            problems[ab.id] = f"no finished samples with {ab.by} = {ab.compare!r} beside the baseline"
            continue
        for r in table.to_dict("records"):
            group = " · ".join(str(r[c]) for c in ab.within) or "all"
            if ab.of == "gap":
                why = (
                    None
                    if r["n"] >= MIN_APPLICABLE
                    else f"{r['n']} queries were asked, and applicable, in all four cells"
                )
                n, n_base = r["n"], r["n"]
            else:
                why, n, n_base = footing(r, ab.by), r["n"], r["n_base"]
            for h, direction in ab.predicts.items():
                verdict = judge_prediction(direction, r["low"], r["high"], ab.margin)
                rows.append({
                    "hypothesis": h, "ablation": ab.id, "metric": f"{ab.metric} gap" if ab.of == "gap" else ab.metric,
                    "group": group, "predicted": direction, "diff": r["diff"], "low": r["low"], "high": r["high"],
                    "display": r["display"], "n": n, "n_base": n_base,
                    "verdict": "undecided" if why and verdict != "undecided" else verdict, "note": why or "",
                    "detail": "",
                })  # fmt: skip
    return Evidence(hypotheses, pd.DataFrame(rows), problems)


def _branch_rows(df: pd.DataFrame, ab: Ablation, parents: str, unfaithful: bool) -> list[dict[str, Any]]:
    """A branch intervention against pure resampling from the same prefixes, within each group, pooled over the
    parents that have both (`branching.branch_effects`), with the counts behind it in words."""
    from .branching import branch_effects

    rows = []
    groups = df.groupby(list(ab.within), sort=False) if ab.within else [((), df)]
    for key, part in groups:
        effect = next((e for e in branch_effects(part, ab.metric, unfaithful) if e.intervention == ab.compare), None)
        if effect is None:
            continue
        k, n, k0, n0 = effect.k, effect.n, effect.k_base, effect.n_base
        detail = (f"{ab.metric} in {k}/{n} resamples of the {effect.parents} prefix{'es' * (effect.parents != 1)}"
                  f"{parents} under {ab.compare}, {k0}/{n0} under pure resampling")  # fmt: skip
        group = " · ".join(map(str, key if isinstance(key, tuple) else (key,))) or "all"
        for h, direction in ab.predicts.items():
            rows.append({
                "hypothesis": h, "ablation": ab.id, "metric": ab.metric, "group": group, "predicted": direction,
                "diff": effect.estimate, "low": effect.low, "high": effect.high, "display": str(effect),
                "n": n, "n_base": n0, "verdict": judge_prediction(direction, effect.low, effect.high,
                ab.margin), "note": "", "detail": detail,
            })  # fmt: skip
    return rows


def _gap_table(
    df: pd.DataFrame, ab: Ablation, compare: Any, baseline: Any, comparison: Comparison | None, confidence: float,
    gap_differences: Callable[..., pd.DataFrame],
) -> pd.DataFrame:  # fmt: skip
    """The study's paired gap (e.g. free − paid on the query) under `compare` minus under `baseline`."""
    if comparison is None or comparison.baseline is None:
        raise ValueError('of = "gap" needs a study whose reports compare a paired gap (alignment faking)')
    others = [v for v in dict.fromkeys(df[comparison.by]) if v != comparison.baseline]
    if len(others) != 1:
        raise ValueError(f"the gap is {comparison.by} against {comparison.baseline!r}: found levels {others}")
    gap = (comparison.by, others[0], comparison.baseline)
    return gap_differences(df, ab.metric, ab.by, compare, baseline, gap=gap,
                           paired_on=comparison.paired_on or ("query_id",), within=list(ab.within),
                           confidence=confidence)  # fmt: skip
