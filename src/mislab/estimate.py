"""Dry-run estimates: calls, tokens and dollars per model before anything is paid.

Per model × cell, the estimate comes from earlier samples of the same study, model and cell in the store
when there are any (measured), else from the study's own heuristic (`estimate(cell, options)`), else from
a generic one. Samples already done in this run are not counted: a resume only pays for what is left.

What dominates a reasoning model's bill is its reasoning, billed as completion tokens. A heuristic row adds the
model's reasoning tokens per call: measured over its finished samples in the store (any study), else the prior
in `mislab/data/reasoning_priors.toml` (stated with its source), else none, said so when OpenRouter lists the model
as one that reasons. Prices come from OpenRouter's model list when it can be read (`models.pricing.model_list`),
else from the packaged table, and from the user's price file over both."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .experiment import Experiment, study_options
from .models import PriceTable, Usage
from .models.pricing import model_list
from .options import StudyOptions
from .runner import plan
from .store import Store
from .study import CaseStudy, Cell, get_study
from .transcript import AssistantTurn

if TYPE_CHECKING:
    from .branching import BranchItem

CHARS_PER_TOKEN = 4.0  # a rough average for English prose on modern BPE tokenizers


@dataclass(frozen=True)
class CallEstimate:
    """Per sample: expected model calls and tokens (completion tokens include the reasoning ones)."""

    calls: float
    prompt_tokens: float
    completion_tokens: float
    reasoning_tokens: float = 0.0  # part of completion_tokens


@dataclass(frozen=True)
class Reasoning:
    """A model's reasoning tokens per call, and where the number comes from."""

    per_call: float
    basis: str
    unknown: bool = False  # the model reasons, but neither a measurement nor a prior says how much


@dataclass
class CellEstimate:
    model: str
    cell: str
    samples: int
    per_sample: CallEstimate
    basis: str  # "measured (k samples)" or "heuristic"
    cost: float | None
    reasoning: Reasoning | None = None  # how reasoning was added to a heuristic row (None: measured with the cell)

    @property
    def prompt_tokens(self) -> float:
        return self.samples * self.per_sample.prompt_tokens

    @property
    def completion_tokens(self) -> float:
        return self.samples * self.per_sample.completion_tokens

    @property
    def reasoning_tokens(self) -> float:
        return self.samples * self.per_sample.reasoning_tokens

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
    return CallEstimate(*(sum(r[i] for r in rows) / n for i in range(4))), n


@cache
def reasoning_priors() -> dict[str, dict[str, Any]]:
    """The packaged priors (`data/reasoning_priors.toml`), by model name."""
    return tomllib.loads(resources.files("mislab.data").joinpath("reasoning_priors.toml").read_text("utf-8"))


def reasoning_per_call(store: Store, model: str, prices: PriceTable | None = None) -> Reasoning:
    """How many reasoning tokens `model` spends a call: measured over its finished samples in the store, else the
    packaged prior for its name, else 0 (flagged as unknown when OpenRouter lists it as a model that reasons)."""
    samples, calls, tokens = store.model_reasoning(model)
    if calls:
        return Reasoning(tokens / calls, f"measured: {tokens / calls:,.0f} a call over {samples} stored samples")
    name = model.rsplit("/", 1)[-1]
    prior = reasoning_priors().get(name)
    if prior is not None:
        return Reasoning(float(prior["per_call"]), f"prior: {prior['per_call']:,} a call — {prior['source']} "
                         "(mislab/data/reasoning_priors.toml)")  # fmt: skip
    if prices is not None and prices.reasons(model):
        return Reasoning(0.0, "unknown: OpenRouter lists it as a reasoning model, and neither a stored sample nor a "
                         "prior says how much it reasons; not counted", unknown=True)  # fmt: skip
    return Reasoning(0.0, "none counted (no finished sample of this model in the store, and no prior for it)")


def estimate_prices(online: bool = True) -> tuple[PriceTable, str]:
    """The price table for estimates, with OpenRouter's list when it can be read, and a line on where prices
    come from."""
    listed, note = model_list(online=online)
    return PriceTable.load(openrouter=listed), note


def estimate(exp: Experiment, store: Store, prices: PriceTable | None = None) -> list[CellEstimate]:
    study = get_study(exp.study)
    prices = prices or PriceTable.load()
    options = study_options(study, exp)
    cells = study.cells(options)
    done = store.done_sample_ids(exp.run_id) if exp.run_id else set()
    out = []
    for model in exp.models:
        thinking = reasoning_per_call(store, model, prices)
        for cell in cells:
            todo = sum(1 for s in plan([model], [cell], exp.n) if s.sample_id not in done)
            found = measured(store, study.name, model, cell.id)
            reasoning: Reasoning | None = None
            if found:
                per, k = found
                basis = f"measured ({k} samples)"
            else:
                own, basis, reasoning = _heuristic(study, cell, options), "heuristic", thinking
                added = own.calls * thinking.per_call
                per = CallEstimate(own.calls, own.prompt_tokens, own.completion_tokens + added,
                                   own.reasoning_tokens + added)  # fmt: skip
            usage = Usage(round(todo * per.prompt_tokens), round(todo * per.completion_tokens),
                          reasoning_tokens=round(todo * per.reasoning_tokens))  # fmt: skip
            out.append(CellEstimate(model, cell.id, todo, per, basis, prices.cost(model, usage), reasoning))
    return out


def _heuristic(study: CaseStudy[Any], cell: Cell, options: StudyOptions) -> CallEstimate:
    own = study.estimate(cell, options)
    if own is not None:
        return own
    prompts = study.prompts([cell], options)
    return CallEstimate(1, tokens_of(str(prompts)), float(getattr(options, "max_tokens", None) or 512) / 2)


def _count(x: float) -> str:
    """A token count short enough for a column: 8,400 · 541k · 2.81M."""
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.0f}k" if x >= 1e4 else f"{x:,.0f}"


def print_estimate(
    exp: Experiment, store: Store, console: Console, prices: PriceTable | None = None, price_note: str | None = None
) -> list[CellEstimate]:
    """Print the dry run: per model, a table of its cells and a line of totals, with where its reasoning and its
    price come from; `prices` (default: the packaged table) and a line on where they come from (`estimate_prices`)."""
    prices = prices or PriceTable.load()
    rows = estimate(exp, store, prices)
    console.print(Text(f"Dry run: {exp.study}, n = {exp.n} per cell (nothing was called)", style="bold"))
    for model in exp.models:
        mine = [r for r in rows if r.model == model]
        # One table per model, without vertical rules, and the columns that say the same on every row said once
        # under it: the table fits 80 columns of terminal.
        todo = len({r.samples for r in mine}) > 1
        bases = len({r.basis for r in mine}) > 1
        table = Table(title=Text(f"{model}: tokens per cell"), title_justify="left", box=box.SIMPLE_HEAD,
                      pad_edge=False, collapse_padding=True)  # fmt: skip
        for col in ("cell", *(["to run"] if todo else []), "calls", "prompt", "completion", "reasoning", "USD",
                    *(["basis"] if bases else [])):  # fmt: skip
            table.add_column(col, justify="left" if col in ("cell", "basis") else "right", overflow="fold")
        for r in mine:
            usd = "unknown price" if r.cost is None else f"${r.cost:.2f}"
            table.add_row(
                Text(r.cell), *([str(r.samples)] if todo else []), f"{r.calls:,.0f}", _count(r.prompt_tokens),
                _count(r.completion_tokens), _count(r.reasoning_tokens), usd, *([r.basis] if bases else []),
            )  # fmt: skip
        console.print(table)
        said = [f"{mine[0].samples} samples to run" * (not todo), f"basis {mine[0].basis}" * (not bases)]
        if mine and any(said):
            console.print(Text(f"  every cell: {'; '.join(filter(None, said))}", style="dim"))
        known = [r.cost for r in mine if r.cost is not None]
        total = (
            f"${sum(known):.2f} ({prices.basis(model)})"
            if len(known) == len(mine)
            else "unknown (no price for this model: MISLAB_PRICES=FILE adds one, see mislab run --help)"
        )
        tokens = sum(r.prompt_tokens + r.completion_tokens for r in mine)
        reasoning = sum(r.reasoning_tokens for r in mine)
        console.print(Text(f"  {model}: {sum(r.calls for r in mine):,.0f} calls, ~{tokens:,.0f} tokens "
                           f"({reasoning:,.0f} of them reasoning), {total}"))  # fmt: skip
        how = next((r.reasoning for r in mine if r.reasoning is not None), None)
        if how is not None:
            console.print(Text(f"  reasoning: {how.basis}", style="yellow" if how.unknown else "dim"))
    if price_note:
        console.print(Text(f"prices: {price_note}", style="dim"))
    if any(r.basis == "heuristic" for r in rows):
        console.print(
            "[yellow]Heuristic rows are rough (no earlier samples of that model and cell): treat them as ±50%.[/yellow]"
        )
    from .duration import local_durations

    for long_run in local_durations(exp, store, rows):
        console.print(Text(long_run.text()))
    return rows


def branch_estimate(items: Sequence[BranchItem], console: Console, prices: PriceTable | None = None) -> None:
    """What a branch job would call and cost: per child, the calls and tokens its parent spent from the branch
    point on (a continuation takes about as many turns as the parent did from there, each at least one)."""
    prices = prices or PriceTable.load()
    per_model: dict[str, list[float]] = {}
    for item in items:
        turns = [t for t in item.parent.transcript.turns[item.prefix.decision :] if isinstance(t, AssistantTurn)]
        usage = Usage(sum(t.usage.prompt_tokens for t in turns), sum(t.usage.completion_tokens for t in turns),
                      reasoning_tokens=sum(t.usage.reasoning_tokens for t in turns))  # fmt: skip
        cost = prices.cost(item.parent.model, usage)
        totals = per_model.setdefault(item.parent.model, [0, 0.0, 0.0, 0.0, 0])
        totals[0] += 1
        totals[1] += max(len(turns), 1)
        totals[2] += usage.total_tokens
        totals[3] += cost or 0.0
        totals[4] += cost is None
    arms = sorted({i.intervention.label for i in items})
    console.print(Text(f"Dry run: {len(items)} children ({len({i.parent.sample_id for i in items})} parents × "
                       f"{len(arms)} arms: {', '.join(arms)} × n) — nothing was called", style="bold"))  # fmt: skip
    for model, (children, calls, tokens, usd, unpriced) in per_model.items():
        money = f"${usd:.4f}" if not unpriced else f"≥ ${usd:.4f} ({int(unpriced)} children with no known price)"
        console.print(Text(f"  {model}: {int(children)} children, ~{calls:,.0f} calls, ~{tokens:,.0f} tokens, {money} "
                           "(each child as its parent from the branch point on)"))  # fmt: skip
