"""Ours beside theirs, judged: the table of a run made by `mislab replicate`. One row per condition × metric of
the preset (and per model of the run): the published value with its n, interval and source, ours as k/n with
its interval, and a verdict:

- *consistent* / *differs*, by the test the published numbers allow, always named in the row:
  two-sample where the published n is known (Newcombe's 95% interval of ours − published: differs when it
  excludes 0; a published k not given is the rate × n), else interval overlap (our 95% interval against the
  published one, or against the published value alone when no interval was published); a published bound
  ("a gap above 1 point") differs when our whole interval lies on the other side of it;
- *not comparable*: the published rows are another model's; shown, never tested;
- *no published number*: the paper reports none for this cell (ours is shown).

The rows come from the preset recorded in the run's spec (`Experiment.preset`), the published values from
`mislab/data/published.toml` and the preset's own `[[published]]` rows (recorded with it), ours from the same
rates and comparisons the rest of the report shows."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..stats import difference_text, newcombe_diff
from .published import Target
from .summary import compact_rate
from .tables import comparisons

if TYPE_CHECKING:
    from rich.console import Console

    from ..presets import Compare
    from ..store import Store
    from .summary import RunSummary

__all__ = ["Verdict", "export_replication", "judge", "print_replication", "replication_frame", "replication_section"]

CONSISTENT, DIFFERS, NOT_COMPARABLE, UNPUBLISHED, NO_DATA = (
    "consistent", "differs", "not comparable", "no published number", "no data",
)  # fmt: skip
TWO_SAMPLE = "two-sample: Newcombe 95% interval of ours − published"
OVERLAP = "interval overlap: our 95% interval against the published one (published n not given)"
POINT = "interval overlap: the published value against our 95% interval (published n and interval not given)"
BOUND = "bound: our 95% interval against the published bound"


@dataclass(frozen=True)
class Verdict:
    verdict: str  # consistent | differs
    test: str
    diff: float  # ours − published
    low: float
    high: float

    @property
    def display(self) -> str:
        return difference_text(self.diff, self.low, self.high)


def judge(value: float, low: float, high: float, target: Target, k: int | None = None, n: int | None = None) -> Verdict:
    """Our estimate `value` with its 95% interval [low, high] (and, for a rate, its k of n) against a published
    number, by the test its published form allows (see the module docstring)."""
    t = target
    if t.relation != "=":
        above = t.relation == ">"
        ok = high > t.value if above else low < t.value
        return Verdict(CONSISTENT if ok else DIFFERS, f"{BOUND} ({t.display()})", value - t.value,
                       low - t.value, high - t.value)  # fmt: skip
    if t.n is not None and k is not None and n is not None and t.kind == "rate":
        k_pub = t.k if t.k is not None else round(t.value * t.n)
        d = newcombe_diff(k, n, k_pub, t.n)
        basis = (
            f"published {k_pub}/{t.n}" if t.k is not None else f"published k ≈ {k_pub} of n{t.n_qualifier or '='}{t.n}"
        )
        return Verdict(CONSISTENT if d.low <= 0 <= d.high else DIFFERS, f"{TWO_SAMPLE} ({basis})", d.estimate, d.low,
                       d.high)  # fmt: skip
    if t.has_interval:
        assert t.low is not None and t.high is not None
        ok = low <= t.high and t.low <= high
        return Verdict(CONSISTENT if ok else DIFFERS, OVERLAP, value - t.value, low - t.high, high - t.low)
    ok = low <= t.value <= high
    return Verdict(CONSISTENT if ok else DIFFERS, POINT, value - t.value, low - t.value, high - t.value)


def _rate_row(s: RunSummary, model: str, cell: str, metric: str) -> dict[str, Any] | None:
    if s.rates.empty or f"{metric}_n" not in s.rates.columns:
        return None
    found = s.rates[(s.rates["model"] == model) & (s.rates["cell"] == cell)]
    if found.empty:
        return None
    r = found.iloc[0]
    k, n = int(r[f"{metric}_k"]), int(r[f"{metric}_n"])
    low, high = r[f"{metric}_low"], r[f"{metric}_high"]
    return {
        "k": k,
        "n": n,
        "value": r[f"{metric}_rate"],
        "low": low,
        "high": high,
        "ours": compact_rate(k, n, low, high),
    }


def _difference_row(s: RunSummary, model: str, row: Compare) -> dict[str, Any] | None:
    df = s.samples
    if df.empty or "cell" not in df.columns:
        return None
    mine = df[(df["model"] == model) & df["cell"].isin([row.cell, row.baseline])]
    try:
        table = comparisons(mine, row.metric, by="cell", baseline=row.baseline, paired_on=list(row.paired_on) or None,
                            within=None)  # fmt: skip
    except (ValueError, KeyError):  # a side with no finished sample, a pairing key the run lacks
        return None
    table = table[table["cell"] == row.cell] if len(table) else table
    if table.empty:
        return None
    r = table.iloc[0]
    n = int(r["n"])
    counts = f"{int(r['k'])}/{n} vs {int(r['k_base'])}/{int(r['n_base'])}" + (f", {n} pairs" if row.paired_on else "")
    return {"k": None, "n": n, "value": r["diff"], "low": r["low"], "high": r["high"],
            "ours": f"{r['display']} ({counts})" if n else "—"}  # fmt: skip


def replication_frame(s: RunSummary) -> pd.DataFrame | None:
    """The table of a run made from a preset, one row per compare row × model (× matching published row); None
    for a run made otherwise."""
    from ..presets import compare_rows, own_targets, published_rows

    preset = s.run.spec.get("preset") if isinstance(s.run.spec, dict) else None
    if not preset:
        return None
    models = list(s.run.models) or list(dict.fromkeys(s.samples.get("model", [])))
    out: list[dict[str, Any]] = []
    own = own_targets(preset.get("published", []), f"run {s.run.run_id}'s preset", s.run.study)
    for row in compare_rows(preset.get("compare", [])):
        published = published_rows(s.run.study, row, own)
        for model in models:
            ours = _difference_row(s, model, row) if row.is_difference else _rate_row(s, model, row.cell, row.metric)
            base = {
                "preset": preset.get("id"), "study": s.run.study, "condition": row.name, "cell": row.cell,
                "baseline": row.baseline, "metric": row.metric, "model": model, "match": row.match, "note": row.note,
                "ours": ours["ours"] if ours else "—", "ours_k": ours["k"] if ours else None,
                "ours_n": ours["n"] if ours else 0, "ours_value": ours["value"] if ours else math.nan,
                "ours_low": ours["low"] if ours else math.nan, "ours_high": ours["high"] if ours else math.nan,
            }  # fmt: skip
            mine = [t for t in published if t.matches_model(model)]
            if not published:
                out.append({**base, **_published(None), "verdict": UNPUBLISHED, "test": ""})
            elif not mine:
                others = "; ".join(f"{t.model} {t.value_text()}" for t in published)
                out.append({
                    **base, **_published(None), "published": others, "published_model": "other models",
                    "source": published[0].source, "verdict": NOT_COMPARABLE,
                    "test": f"published for other models than {model}: never tested",
                })  # fmt: skip
            for t in mine:
                row_out = {**base, **_published(t)}
                if not ours or not ours["n"]:
                    out.append({**row_out, "verdict": NO_DATA, "test": "no finished sample where the metric applies"})
                    continue
                v = judge(ours["value"], ours["low"], ours["high"], t, ours["k"], ours["n"])
                out.append({
                    **row_out, "verdict": v.verdict, "test": v.test, "difference": v.display,
                    "difference_value": v.diff, "difference_low": v.low, "difference_high": v.high,
                })  # fmt: skip
    return pd.DataFrame(out)


def _published(t: Target | None) -> dict[str, Any]:
    """The published side of a row (all empty where there is no published number for it)."""
    if t is None:
        return dict.fromkeys(PUBLISHED_COLUMNS, None) | {"published": "—", "published_short": "—", "difference": ""}
    return {
        "published": t.display(),
        "published_short": t.display(method=False),
        "published_model": t.model,
        "published_value": t.value,
        "published_low": t.low,
        "published_high": t.high,
        "published_n": f"{t.n_qualifier}{t.n}" if t.n is not None else None,
        "published_interval": t.interval,
        "source": t.source,
        "difference": "",
    }


PUBLISHED_COLUMNS = ("published_model", "published_value", "published_low", "published_high", "published_n",
                     "published_interval", "source")  # fmt: skip


def _sources(frame: pd.DataFrame) -> dict[str, int]:
    return {source: i for i, source in enumerate(dict.fromkeys(frame["source"].dropna()), 1)}


def _title(s: RunSummary) -> str:
    preset = s.run.spec["preset"]
    return f"Replication of {preset.get('id')} ({s.run.study}): {preset.get('paper')}"


def _others(listed: str, full: bool, shown: int = 3) -> str:
    """Other models' published numbers, the first few unless `full`."""
    items = listed.split("; ")
    more = "" if full or len(items) <= shown else f"; +{len(items) - shown} more"
    return "other models: " + "; ".join(items if full else items[:shown]) + more


def print_replication(s: RunSummary, console: Console, full: bool = False) -> None:
    """The run's replication table on the terminal (nothing for a run not made from a preset)."""
    from rich.table import Table
    from rich.text import Text

    frame = replication_frame(s)
    if frame is None or frame.empty:
        return
    sources = _sources(frame)
    several = frame["model"].nunique() > 1
    table = Table(title=_title(s), title_justify="left")
    for name in ("condition", "metric", *(["model"] if several else []), "published", "ours", "verdict"):
        table.add_column(name, overflow="fold")
    style = {CONSISTENT: "green", DIFFERS: "red", NOT_COMPARABLE: "dim", UNPUBLISHED: "dim", NO_DATA: "yellow"}
    for r in frame.to_dict("records"):
        cite = f" [{sources[r['source']]}]" if r.get("source") in sources else ""
        published = r["published_short"] if r["verdict"] != NOT_COMPARABLE else _others(r["published"], full)
        verdict = r["verdict"] + (f" {r['difference']}" if r["verdict"] == DIFFERS else "")
        if full and r["verdict"] == CONSISTENT:
            verdict += f" {r['difference']}"
        mark = "" if r["match"] == "exact" else f" ({r['match']})"
        model = [Text(r["model"])] if several else []
        table.add_row(
            Text(r["condition"] + mark), Text(r["metric"]), *model, Text(published + cite), Text(r["ours"]),
            Text(verdict, style=style.get(r["verdict"], "")),
        )  # fmt: skip
    console.print(table)
    tests = sorted(
        {r["test"].split(" (")[0] for r in frame.to_dict("records") if r["verdict"] in (CONSISTENT, DIFFERS)}
    )
    for test in tests:
        console.print(Text(f"tested by {test}", style="dim"))
    if not full and (frame["verdict"] == NOT_COMPARABLE).any():
        console.print(Text("not comparable: the published numbers are other models'; they are shown, never tested",
                           style="dim"))  # fmt: skip
    for source, i in sources.items():
        console.print(Text(f"[{i}] {source}", style="dim"))
    if full:
        for r in frame.drop_duplicates(["condition", "note"]).to_dict("records"):
            if r["note"]:
                console.print(Text(f"{r['condition']} ({r['match']}): {r['note']}", style="dim"))
        for item in s.run.spec["preset"].get("cannot", []):
            console.print(Text(f"not reproduced: {item}", style="dim"))
        overrides = s.run.spec["preset"].get("overrides") or {}
        if overrides:
            console.print(Text(f"run with options changed from the preset: {overrides}", style="yellow"))


def replication_section(s: RunSummary) -> str:
    """The run's replication table as an HTML section ("" for a run not made from a preset)."""
    frame = replication_frame(s)
    if frame is None or frame.empty:
        return ""
    e = html.escape
    headers = ("condition", "metric", "model", "published", "source", "ours", "verdict", "ours − published", "test",
               "prompt")  # fmt: skip
    badge = {CONSISTENT: "good", DIFFERS: "bad"}
    rows = []
    for r in frame.to_dict("records"):
        prompt = f"{r['match']}: {r['note']}" if r["note"] else r["match"]
        verdict = f'<span class="badge {badge.get(r["verdict"], "na")}">{e(r["verdict"])}</span>'
        cells = [e(str(c or "")) for c in (r["condition"], r["metric"], r["model"], r["published"], r["source"],
                                             r["ours"])]  # fmt: skip
        cells += [verdict, *(e(str(c or "")) for c in (r["difference"], r["test"], prompt))]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    preset = s.run.spec["preset"]
    overrides = preset.get("overrides") or {}
    cannot = "".join(f"<li>{e(item)}</li>" for item in preset.get("cannot", []))
    return (
        f'<section id="replication"><h2>{e(_title(s))}</h2><p class="note">{e(preset.get("measured", ""))}. '
        "Consistent or differs by the test the published numbers allow (named per row): two-sample where the published "
        "n is known, else interval overlap. Not comparable: another model's published number, shown, never tested.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        + (f'<p class="warn">Run with options changed from the preset: {e(str(overrides))}</p>' if overrides else "")
        + (f"<p class='note'>What this preset cannot reproduce:</p><ul>{cannot}</ul>" if cannot else "")
        + "</section>"
    )


def export_replication(store: Store, run_id: str, beside: Path, format: str) -> Path | None:
    """Write the run's replication table beside an export (`<stem>.replication.<format>`, CSV inside an Inspect log
    directory); None for a run not made from a preset."""
    from .summary import summarise

    frame = replication_frame(summarise(store, run_id))
    if frame is None or frame.empty:
        return None
    if format in ("csv", "parquet", "jsonl"):
        path = beside.with_name(f"{beside.stem}.replication.{format}")
    else:
        path, format = beside / f"{run_id}.replication.csv", "csv"
    if format == "csv":
        frame.to_csv(path, index=False)
    elif format == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    return path
