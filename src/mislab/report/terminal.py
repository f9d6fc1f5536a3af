"""A run in the terminal. By default one screen: a line on what was run, one table of every metric × cell as
k/n with its interval, two sentences on what the run shows and cannot show, the published numbers for the
models in the run, the errors and where the report is. `full=True` adds every comparison between cells, the
models' options and all published targets. Data go into rich as `Text`, never as markup, so a model name or
error message containing "[bold]" prints as written, and a column too narrow folds its text rather than cutting it
with "…" (cut names, `no_warn…`, cannot be told apart)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..stats import RateMethod
from ..store import Store
from ..study import CaseStudy
from .replication import print_replication
from .summary import (
    RunSummary,
    compact_rate,
    default_report_path,
    fmt_p,
    model_label,
    model_options,
    summarise,
    usage_line,
)

__all__ = ["show_run"]

MAX_ERRORS_LISTED = 5
COMPACT_ERRORS_LISTED = 2
MAX_COLUMNS = 4  # (model ·) cells side by side as columns; more go down as rows


def _t(value: Any, style: str = "") -> Text:
    return Text("" if value is None else str(value), style=style)


def _header(s: RunSummary) -> Table:
    run = s.run
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for key, value in [
        ("study", f"{s.title} ({run.study})"),
        ("run", run.run_id),
        ("created", f"{run.created_at}  (updated {run.updated_at})"),
        ("status", run.status),
        ("mislab", run.package_version or "unknown"),
        ("intervals", f"{s.interval}; errored samples and n/a values excluded from n"),
        ("sampling", s.sampling),
        ("environment", s.environment),
    ]:
        if value is not None:
            grid.add_row(key, _t(value))
    return grid


def _models(s: RunSummary) -> Table:
    table = Table(title="Models", title_justify="left")
    for name in ("model", "provider", "endpoint", "options"):
        table.add_column(name, overflow="fold")
    for name, info in s.run.models.items():
        info = dict(info) if isinstance(info, dict) else {"description": info}
        table.add_row(_t(name), _t(info.get("provider")), _t(info.get("endpoint")), _t(model_options(info)))
    return table


def _rates(s: RunSummary, column: str, title: str, description: str) -> Table:
    table = Table(
        title=f"{title} ({column}): k/n = rate [{s.interval} interval]",
        title_justify="left",
        caption=description or None,
        caption_justify="left",
    )
    published = ("published (same model and condition)",) if s.targets else ()
    for name in ("model", "cell", "rate", "n/a", "errors", *published):
        table.add_column(name, overflow="fold")
    for row in s.rates.to_dict("records"):
        cells = [_t(row["model"]), _t(row["cell"]), _t(row[column], "bold"), _t(row[f"{column}_na"]), _t(row["errors"])]
        if published:
            found = s.published_for(row["model"], row["cell"], column)
            cells.append(_t("; ".join(f"{t.display()} ({t.source})" for t in found)))
        table.add_row(*cells)
    return table


def _means(s: RunSummary) -> Table | None:
    """Numeric judge columns (score rubrics such as StrongREJECT): a mean with its t interval, never a rate."""
    if s.means.empty:
        return None
    caption = "; ".join(f"{m.column}: {m.description}" for m in s.scores)
    table = Table(title="Scores: mean [95% t interval] (n)", title_justify="left", caption=caption,
                  caption_justify="left")  # fmt: skip
    for name in ("model", "cell", *(m.column for m in s.scores)):
        table.add_column(name, overflow="fold")
    for row in s.means.to_dict("records"):
        table.add_row(_t(row["model"]), _t(row["cell"]), *(_t(row[m.column], "bold") for m in s.scores))
    return table


def _comparisons(s: RunSummary, column: str) -> Table | Text | None:
    if column in s.comparison_problems:
        return _t(f"no comparisons for {column}: {s.comparison_problems[column]}", "yellow")
    headers, rows = s.comparison_rows(column)
    if not rows:
        return None
    table = Table(title=s.comparison_title(column), title_justify="left")
    for name in headers:
        table.add_column(name, overflow="fold")
    bold = headers.index("difference [95% CI]")
    for row in rows:
        table.add_row(*(_t(cell, "bold" if i == bold else "") for i, cell in enumerate(row)))
    return table


def _published(s: RunSummary) -> list[Table | Text]:
    """The study's published targets for the models in this run; the others only counted (the HTML lists all)."""
    models = list(s.run.models) or list(dict.fromkeys(s.samples.get("model", [])))
    ours = [t for t in s.targets if any(t.matches_model(m) for m in models)]
    out: list[Table | Text] = []
    if ours:
        table = Table(title=f"Published targets for {s.run.study}, models in this run", title_justify="left")
        for name in ("model", "condition", "metric", "published", "source", "ours (exact match)"):
            table.add_column(name, overflow="fold")
        for target in ours:
            table.add_row(
                _t(target.model), _t(target.condition), _t(target.metric), _t(target.display()), _t(target.source),
                _t("; ".join(s.ours_for(target)) or "—"),
            )  # fmt: skip
        out.append(table)
    others: dict[str, int] = {}
    for target in s.targets:
        if target not in ours:
            others[target.model] = others.get(target.model, 0) + 1
    if others:
        listed = ", ".join(f"{model} ({count})" for model, count in others.items())
        out.append(_t(f"Other published targets for {s.run.study} (see the HTML report): {listed}"))
    if not s.targets and not s.branches:  # a branch run's arms are no published condition
        out.append(_t(f"No published targets for {s.run.study}."))
    return out


def _evidence(s: RunSummary) -> list[Table | Text]:
    """The experiment's hypotheses: every prediction beside its measured difference, and a sentence each."""
    ev = s.evidence
    if ev is None:
        return []
    headers, rows = ev.table_rows()
    table = Table(title="Evidence: each hypothesis's predictions against the ablations (95% intervals: Newcombe; "
                  "a branch arm's over parents)",
                  title_justify="left")  # fmt: skip
    for name in headers:
        table.add_column(name, overflow="fold")
    style = {"consistent": "green", "contradicted": "red"}
    for row in rows:
        table.add_row(*(_t(cell, style.get(row[-1], "") if i == len(row) - 1 else "") for i, cell in enumerate(row)))
    out: list[Table | Text] = [table] if rows else []
    out += [_t(f"not measured: {ablation}: {why}", "yellow") for ablation, why in ev.problems.items()]
    out += [_t(sentence) for sentence in ev.sentences()]
    return out


def _natural_width(headers: list[str], rows: list[list[str]]) -> int:
    """The width a grid takes unwrapped: each column's widest entry plus rich's padding and border."""
    return 1 + sum(max(len(str(c)) for c in column) + 3 for column in zip(headers, *rows, strict=True))


def _branches(s: RunSummary, full: bool) -> list[Table]:
    """A branch run: each arm against pure resampling from the same prefixes, pooled over parents; with `full`,
    each parent's resample rate per arm."""
    from ..branching import resample_rates

    if not s.branches:
        return []
    titles = {m.column: m.title for m in s.metrics}
    pooled = Table(title="Each arm against pure resampling from the same prefixes (pooled over parents: the mean of "
                   "the parents' differences, t interval and test over parents)", title_justify="left")  # fmt: skip
    for name in ("metric", "arm", "parents", "effect [95% CI]", "p"):
        pooled.add_column(name, overflow="fold")
    for column, effects in s.branches.items():
        for e in effects:
            pooled.add_row(_t(titles.get(column, column)), _t(e.intervention), _t(e.parents), _t(str(e), "bold"),
                           _t(fmt_p(e.pvalue)))  # fmt: skip
    out = [pooled]
    if full:
        for column in s.branches:
            rates = resample_rates(s.samples, column, s.include_unfaithful)
            table = Table(title=f"{titles.get(column, column)}: each parent's resamples", title_justify="left")
            for name in ("parent sample", "arm", "k/n = rate [95% Wilson]"):
                table.add_column(name, overflow="fold")
            for r in rates.to_dict("records"):
                table.add_row(_t(r["parent_sample"]), _t(r["intervention"]), _t(r["display"]))
            out.append(table)
    return out


def _overview(s: RunSummary, width: int) -> Table:
    """Every metric × cell in one table: metrics down and cells across when that fits the screen (few cells),
    else cells down and metrics across."""
    headers, rows = s.compact_grid(cells_as_columns=True)
    if len(s.rates) > MAX_COLUMNS or _natural_width(headers, rows) > width:
        headers, rows = s.compact_grid(cells_as_columns=False)
    fits = _natural_width(headers, rows) <= width  # then nothing wraps; else rich folds the widest
    table = Table(title=f"k/n [{s.interval} interval]", title_justify="left", pad_edge=False)
    for i, name in enumerate(headers):
        table.add_column(name, no_wrap=fits or i == 0, overflow="fold")
    for row in rows:
        table.add_row(*(_t(cell) for cell in row))
    return table


def _ours_vs_published(s: RunSummary) -> list[Text]:
    """One line per published number that matches a (model, cell) of this run exactly."""
    lines = []
    for r in s.rates.to_dict("records"):
        for m in s.metrics:
            for t in s.published_for(str(r["model"]), str(r["cell"]), m.column):
                ours = compact_rate(r[f"{m.column}_k"], r[f"{m.column}_n"], r[f"{m.column}_low"], r[f"{m.column}_high"])
                lines.append(_t(f"{r['model']} · {r['cell']} {m.column}: ours {ours}, published {t.display()} "
                                f"({t.source})"))  # fmt: skip
    return lines


def _compact(s: RunSummary, console: Console) -> None:
    run = s.run
    models = ", ".join(model_label(info, m) for m, info in run.models.items()) or "no models recorded"
    console.print(_t(f"{s.title} · run {run.run_id} ({run.status}) · {models} · {s.sampling}", "bold"))
    console.print(_t(usage_line(s.totals)))
    if s.prompt_line:  # what was sent: a published text as published, changed, or our own wording
        console.print(_t(s.prompt_line, "" if "modified" not in s.prompt_line else "yellow"))
    if s.environment:  # where the commands ran; an imitation that could not run a command is flagged here
        console.print(_t(f"environment: {s.environment}", "yellow" if "not faithful" in s.environment else ""))
    if s.metrics_inferred:
        console.print(_t(f"Study plug-in {s.run.study!r} not found: metrics are the boolean score columns.", "yellow"))
    if not s.rates.empty:
        console.print(_overview(s, console.width))
    for line in s.left_out():  # what each denominator left out, and why
        console.print(_t(f"† {line}", "yellow"))
    for table in _branches(s, full=False):
        console.print(table)
    if (means := _means(s)) is not None:
        console.print(means)
    for sentence in s.takeaway():
        console.print(_t(sentence))
    for part in [*_evidence(s), *_ours_vs_published(s)]:  # the experiment's own hypotheses, when it declared any
        console.print(part)


def _full(s: RunSummary, console: Console) -> None:
    console.print(_header(s))
    console.print(_models(s))
    console.print(_t(usage_line(s.totals)))
    if s.metrics_inferred:
        console.print(_t(f"Study plug-in {s.run.study!r} not found: metrics are the boolean score columns.", "yellow"))
    for metric in s.metrics:
        if not s.rates.empty:
            console.print(_rates(s, metric.column, metric.title, metric.description))
        compared = _comparisons(s, metric.column)
        if compared is not None:
            console.print(compared)
    if (means := _means(s)) is not None:
        console.print(means)
    for table in _branches(s, full=True):
        console.print(table)
    for part in [*_evidence(s), *_published(s)]:
        console.print(part)


def show_run(
    store: Store,
    run_id: str | None = None,
    console: Console | None = None,
    *,
    studies: Mapping[str, CaseStudy[Any]] | None = None,
    method: RateMethod = "wilson",
    report_path: str | Path | None = None,
    full: bool = False,
    include_unfaithful: bool = False,
) -> RunSummary:
    """Print a run (default: the latest) and return what was printed, as a `RunSummary`: one screen, or with
    `full` every rate table and comparison (a branch run: each parent's resamples). A branch run's effects count
    continuations whose replay diverged only if `include_unfaithful`."""
    console = console or Console()
    run_id = run_id or store.latest_run()
    if run_id is None:
        raise KeyError(f"no runs in {store.path}")
    s = summarise(store, run_id, studies, method, include_unfaithful)
    (_full if full else _compact)(s, console)
    print_replication(s, console, full)  # a run made by `mislab replicate`: ours beside the published numbers
    errors = s.errors
    listed = MAX_ERRORS_LISTED if full else COMPACT_ERRORS_LISTED
    if len(errors) or full:
        console.print(_t(f"Errors: {len(errors)} sample(s) did not finish and are excluded from every rate.",
                         "red" if len(errors) else ""))  # fmt: skip
    for row in errors.head(listed).itertuples(index=False):
        console.print(_t(f"  {row.sample_id}: {row.error}"))
    if len(errors) > listed:
        console.print(_t(f"  … and {len(errors) - listed} more (see the HTML report)"))
    path = Path(report_path) if report_path else default_report_path(store, run_id)
    where = "" if path.exists() else f" (not written yet: mislab report {run_id} -o {path})"
    console.print(_t(f"HTML report: {path}{where}"))
    if not full:
        more = "Each parent's resamples" if s.branches else "Every comparison between cells"
        console.print(_t(f"{more}: mislab show {run_id} --full"), style="dim")
    return s
