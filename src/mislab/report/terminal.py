"""A run in the terminal: what was run, every rate as k/n with its interval, the comparisons between cells, the
published numbers for the study, and the errors. Data go into rich as `Text`, never as markup, so a model
name or error message containing "[bold]" prints as written."""

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
from .summary import RunSummary, default_report_path, model_options, summarise, usage_line

__all__ = ["show_run"]

MAX_ERRORS_LISTED = 5


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
        table.add_column(name)
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
    for name in ("model", "cell", "rate", "n/a", "errors", "published (same model and condition)"):
        table.add_column(name)
    for row in s.rates.itertuples(index=False):
        published = "; ".join(f"{t.display()} ({t.source})" for t in s.published_for(row.model, row.cell, column))
        table.add_row(
            _t(row.model), _t(row.cell), _t(getattr(row, column), "bold"), _t(getattr(row, f"{column}_na")),
            _t(row.errors), _t(published),
        )  # fmt: skip
    return table


def _comparisons(s: RunSummary, column: str) -> Table | Text | None:
    if column in s.comparison_problems:
        return _t(f"no comparisons for {column}: {s.comparison_problems[column]}", "yellow")
    headers, rows = s.comparison_rows(column)
    if not rows:
        return None
    table = Table(title=s.comparison_title(column), title_justify="left")
    for name in headers:
        table.add_column(name)
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
            table.add_column(name)
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
    if not s.targets:
        out.append(_t(f"No published targets for {s.run.study}."))
    return out


def show_run(
    store: Store,
    run_id: str | None = None,
    console: Console | None = None,
    *,
    studies: Mapping[str, CaseStudy] | None = None,
    method: RateMethod = "wilson",
    report_path: str | Path | None = None,
) -> RunSummary:
    """Print a run (default: the latest) and return what was printed, as a `RunSummary`."""
    console = console or Console()
    run_id = run_id or store.latest_run()
    if run_id is None:
        raise KeyError(f"no runs in {store.path}")
    s = summarise(store, run_id, studies, method)
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
    for part in _published(s):
        console.print(part)
    errors = s.errors
    console.print(_t(f"Errors: {len(errors)} sample(s) did not finish and are excluded from every rate.",
                     "red" if len(errors) else ""))  # fmt: skip
    for row in errors.head(MAX_ERRORS_LISTED).itertuples(index=False):
        console.print(_t(f"  {row.sample_id}: {row.error}"))
    if len(errors) > MAX_ERRORS_LISTED:
        console.print(_t(f"  … and {len(errors) - MAX_ERRORS_LISTED} more (see the HTML report)"))
    path = Path(report_path) if report_path else default_report_path(store, run_id)
    where = "" if path.exists() else " (not written yet: mislab.report.write_report)"
    console.print(_t(f"HTML report: {path}{where}"))
    return s
