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

A prediction of "up" or "down" is consistent when the interval of (compare − baseline) lies wholly on its
side of zero, contradicted when it lies wholly on the other side, and undecided when it crosses zero. "none"
is contradicted when the interval excludes zero, consistent when it lies within ±margin (default 0.1), and
undecided otherwise."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from .errors import MislabError

Direction = Literal["up", "down", "none"]
Verdict = Literal["consistent", "contradicted", "undecided"]
DIRECTIONS = ("up", "down", "none")
DEFAULT_MARGIN = 0.1


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


@dataclass(frozen=True)
class Hypotheses:
    claims: dict[str, str]
    ablations: tuple[Ablation, ...]
    confidence: float = 0.95


_ABLATION_KEYS = {"id", "compare", "baseline", "metric", "predicts", "by", "within", "paired_on", "margin", "where"}


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
        unknown = set(a) - _ABLATION_KEYS
        if unknown:
            raise HypothesisError(f"{label}: unknown keys {sorted(unknown)}; allowed: {sorted(_ABLATION_KEYS)}")
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
        ablations.append(
            Ablation(
                id=str(a.get("id", f"{a['compare']} vs {a['baseline']}")), compare=a["compare"],
                baseline=a["baseline"], metric=a["metric"], predicts=dict(predicts), by=a.get("by", "cell"),
                within=_names(a.get("within", "model")), paired_on=_names(a.get("paired_on")), margin=float(margin),
                where=dict(where_),
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
                why = (f"; e.g. {r['ablation']} on {r['metric']}: predicted {r['predicted']}, measured "
                       f"{r['display']}")  # fmt: skip
            out.append(
                f"{h} ({claim}): {self.verdict(h)} — {counts['consistent']} consistent, "
                f"{counts['contradicted']} contradicted, {counts['undecided']} undecided of {len(rows)} "
                f"prediction{'s' * (len(rows) != 1)}{why}."
            )
        return out

    def table_rows(self) -> tuple[list[str], list[list[str]]]:
        """Headers and rows as text (the terminal and the page style them)."""
        headers = ["hypothesis", "ablation", "metric", "group", "predicted", "measured difference [CI]", "n vs n",
                   "verdict"]  # fmt: skip
        rows = [
            [r["hypothesis"], r["ablation"], r["metric"], r["group"], r["predicted"], r["display"],
             f"{r['n']} vs {r['n_base']}", r["verdict"]]
            for r in self.rows.to_dict("records")
        ]  # fmt: skip
        return headers, rows


def evidence(df: pd.DataFrame, hypotheses: Hypotheses, confidence: float = 0.95) -> Evidence:
    """Every prediction beside its measured difference (compare − baseline, within each group)."""
    from .report.tables import comparisons  # the report package shows evidence: import it only when measuring

    rows: list[dict[str, Any]] = []
    problems: dict[str, str] = {}
    for ab in hypotheses.ablations:
        missing = [c for c in ab.where if c not in df.columns]
        if missing:
            problems[ab.id] = f"the run has no column {', '.join(missing)} to select by"
            continue
        selected = df
        for column, value in ab.where.items():
            selected = selected[selected[column] == value]
        try:
            table = comparisons(
                selected, ab.metric, by=ab.by, baseline=ab.baseline, paired_on=list(ab.paired_on) or None,
                within=list(ab.within), confidence=confidence,
            )  # fmt: skip
        except (ValueError, KeyError) as exc:
            problems[ab.id] = str(exc)
            continue
        table = table[table[ab.by] == ab.compare] if len(table) else table
        if table.empty:
            problems[ab.id] = f"no finished samples with {ab.by} = {ab.compare!r} beside the baseline"
            continue
        for r in table.to_dict("records"):
            group = " · ".join(str(r[c]) for c in ab.within) or "all"
            for h, direction in ab.predicts.items():
                rows.append({
                    "hypothesis": h, "ablation": ab.id, "metric": ab.metric, "group": group,
                    "predicted": direction, "diff": r["diff"], "low": r["low"], "high": r["high"],
                    "display": r["display"], "n": r["n"], "n_base": r["n_base"],
                    "verdict": judge_prediction(direction, r["low"], r["high"], ab.margin),
                })  # fmt: skip
    return Evidence(hypotheses, pd.DataFrame(rows), problems)
