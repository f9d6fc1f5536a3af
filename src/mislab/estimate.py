"""Dry-run estimates: calls, tokens and dollars per model before anything is paid.

Per model × cell, the estimate comes from earlier samples of the same study, model and cell in the store
when there are any (measured), else from the study's own heuristic (`estimate(cell, options)`), else from
a generic one. Samples already done in this run are not counted: a resume only pays for what is left."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .experiment import Experiment, study_options
from .models import PriceTable, Usage
from .options import StudyOptions
from .runner import plan
from .store import Store
from .study import CaseStudy, Cell, get_study

CHARS_PER_TOKEN = 4.0  # a rough average for English prose on modern BPE tokenizers


@dataclass(frozen=True)
class CallEstimate:
    """Per sample: expected model calls and tokens."""

    calls: float
    prompt_tokens: float
    completion_tokens: float


@dataclass
class CellEstimate:
    model: str
    cell: str
    samples: int
    per_sample: CallEstimate
    basis: str  # "measured (k samples)" or "heuristic"
    cost: float | None

    @property
    def prompt_tokens(self) -> float:
        return self.samples * self.per_sample.prompt_tokens

    @property
    def completion_tokens(self) -> float:
        return self.samples * self.per_sample.completion_tokens

    @property
    def calls(self) -> float:
        return self.samples * self.per_sample.calls


def tokens_of(text: str) -> float:
    return len(text) / CHARS_PER_TOKEN


def measured(store: Store, study: str, model: str, cell: str) -> tuple[CallEstimate, int] | None:
    """Mean calls and tokens per finished sample of this study, model and cell across all runs (including
    tokens served from the cache, which a run without the cache would pay for)."""
    rows = store.cell_usage(study, model, cell)
    if not rows:
        return None
    n = len(rows)
    return CallEstimate(sum(r[0] for r in rows) / n, sum(r[1] for r in rows) / n, sum(r[2] for r in rows) / n), n


def estimate(exp: Experiment, store: Store, prices: PriceTable | None = None) -> list[CellEstimate]:
    study = get_study(exp.study)
    prices = prices or PriceTable.load()
    options = study_options(study, exp)
    cells = study.cells(options)
    done = store.done_sample_ids(exp.run_id) if exp.run_id else set()
    out = []
    for model in exp.models:
        for cell in cells:
            todo = sum(1 for s in plan([model], [cell], exp.n) if s.sample_id not in done)
            found = measured(store, study.name, model, cell.id)
            if found:
                per, k = found
                basis = f"measured ({k} samples)"
            else:
                per, basis = _heuristic(study, cell, options), "heuristic"
            usage = Usage(round(todo * per.prompt_tokens), round(todo * per.completion_tokens))
            out.append(CellEstimate(model, cell.id, todo, per, basis, prices.cost(model, usage)))
    return out


def _heuristic(study: CaseStudy[Any], cell: Cell, options: StudyOptions) -> CallEstimate:
    own = study.estimate(cell, options)
    if own is not None:
        return own
    prompts = study.prompts([cell], options)
    return CallEstimate(1, tokens_of(str(prompts)), float(getattr(options, "max_tokens", None) or 512) / 2)


def print_estimate(exp: Experiment, store: Store, console: Console) -> list[CellEstimate]:
    rows = estimate(exp, store)
    table = Table(title=f"Dry run: {exp.study}, n = {exp.n} per cell (nothing was called)")
    for col in ("model", "cell", "samples to run", "calls", "prompt tok", "completion tok", "USD", "basis"):
        table.add_column(col, justify="right" if col not in ("model", "cell", "basis") else "left")
    for r in rows:
        usd = "unknown price" if r.cost is None else f"${r.cost:.4f}"
        table.add_row(
            Text(r.model), Text(r.cell), str(r.samples), f"{r.calls:.0f}", f"{r.prompt_tokens:,.0f}",
            f"{r.completion_tokens:,.0f}", usd, r.basis,
        )  # fmt: skip
    console.print(table)
    for model in exp.models:
        mine = [r for r in rows if r.model == model]
        known = [r.cost for r in mine if r.cost is not None]
        total = (
            f"${sum(known):.4f}"
            if len(known) == len(mine)
            else "unknown (no price for this model: MISLAB_PRICES=FILE adds one, see mislab run --help)"
        )
        tokens = sum(r.prompt_tokens + r.completion_tokens for r in mine)
        console.print(Text(f"{model}: {sum(r.calls for r in mine):.0f} calls, ~{tokens:,.0f} tokens, {total}"))
    from .duration import local_durations

    for duration in local_durations(exp, store, rows):
        console.print(Text(duration.text()))
    if any(r.basis == "heuristic" for r in rows):
        console.print(
            "[yellow]Heuristic rows are rough (no earlier samples of that model and cell): treat them as ±50%.[/yellow]"
        )
    return rows
