"""Replicating a paper in one command: a preset (`mislab.presets`) becomes one experiment per study it spans, run
on the user's models, each run recording its preset so `show`, `report` and `export` set ours beside theirs
(`report.replication`).

Before anything is paid, `plan` says what will run: the grid, which models the paper published numbers for (the
others' rows are shown, never tested), calls, tokens and dollars, and, for each published rate, whether the n asked
for can tell it from half of it."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.text import Text

from .experiment import Experiment, study_options
from .models import cache_scope
from .presets import Compare, Preset, PresetError, PresetPart
from .report.published import Target
from .stats import newcombe_diff, wilson_interval
from .study import get_study

MAX_N = 100_000  # beyond this, "can tell it from half" is said to need more than any run


@dataclass
class PartRun:
    """One study's part of a preset, ready to run."""

    part: PresetPart
    exp: Experiment
    overrides: dict[str, Any]


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """`key=value` pairs (`--set`): the value as TOML (numbers, booleans, lists, quoted strings), else as text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise PresetError(f"--set {item!r}: write key=value, e.g. --set backend=bwrap")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        out[key.strip()] = value
    return out


def _tag(models: Sequence[str]) -> str:
    return "+".join(re.sub(r"[^A-Za-z0-9._-]+", "-", m.rsplit("/", 1)[-1]) for m in models)


def prepare(
    preset: Preset,
    models: Sequence[str | dict[str, Any]],
    *,
    n: int | None = None,
    seed: int | None = None,
    overrides: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> list[PartRun]:
    """Each part of `preset` as an experiment on `models` (specs, or tables of model settings): the preset's n and
    seed unless given, its options with `overrides` in place (each must be an option of some part's study). The run
    id defaults to the preset, the study when it spans several, and the models' names, so the same command resumes.
    Every compare row's cells must be cells of its experiment, and every part's prompts must build: whatever would
    stop a part fails here, before any part runs."""
    if not models:
        raise PresetError("give at least one model (--model)")
    overrides = dict(overrides or {})
    names = [m if isinstance(m, str) else str(m.get("name")) for m in models]
    used: set[str] = set()
    out = []
    for part in preset.parts:
        study = get_study(part.study)
        mine = {k: v for k, v in overrides.items() if k in study.options_schema.model_fields}
        used |= set(mine)
        data = dict(part.experiment)
        data["options"] = {**data.get("options", {}), **mine}
        data["models"] = list(models)
        if n is not None:
            data["n"] = n
        if seed is not None:
            data["seed"] = seed
        base = run_id or f"{preset.id}-{_tag(names)}"
        data["run_id"] = f"{base}-{part.study}" if len(preset.parts) > 1 else base
        exp = Experiment.from_dict(data, where=f"preset {part.where}")
        exp.preset = part.spec(mine)
        options = study_options(study, exp)
        cells = study.cells(options)
        _check_cells(part, {c.id for c in cells})
        # Every prompt of every part, built now (and thrown away): a part that cannot be built (a paper file
        # missing) fails here, before the plan is printed and before an earlier part is paid for. No response
        # cache is opened for it: a judge the prompts name is built uncached and never called.
        with cache_scope(False):
            study.prompts(cells, options)
        out.append(PartRun(part, exp, mine))
    if unknown := set(overrides) - used:
        raise PresetError(f"--set {', '.join(sorted(unknown))}: not an option of {' or '.join(preset.studies)}")
    return out


def _check_cells(part: PresetPart, cells: set[str]) -> None:
    for row in part.compare:
        for cell in (row.cell, row.baseline):
            if cell is not None and cell not in cells:
                raise PresetError(f"{part.where}: [[compare]] {row.name} names cell {cell!r}, which the experiment "
                                  f"does not run (its cells: {', '.join(sorted(cells))})")  # fmt: skip


def comparable(part: PresetPart, model: str) -> list[str]:
    """The published models of `part` that `model` is (empty: its rows will be shown, never tested)."""
    return list(dict.fromkeys(t.model for row in part.compare for t in part.targets(row) if t.matches_model(model)))


def _published_for(part: PresetPart, row: Compare, model: str) -> Target | None:
    """The published rate row that sizes n for `model`: its own, else the preset's reference model's."""
    rows = [t for t in part.targets(row) if t.relation == "="]
    return next((t for t in rows if t.matches_model(model)), None) or next(
        (t for t in rows if part.reference_model and t.model == part.reference_model), None
    )


def _tells_half(p: float, n: int) -> tuple[bool, float, float]:
    """Whether n samples at rate p give a 95% Wilson interval that leaves out p/2, and that interval. The count is
    the expected one, p × n unrounded: rounding it would make the answer flip back and forth as n grows."""
    low, high = wilson_interval(p * n, n)  # type: ignore[arg-type]
    return low > p / 2, low, high


def _difference_tells_half(p1: float, p2: float, n: int) -> tuple[bool, float, float]:
    """Whether n samples a side at rates p1, p2 give a 95% Newcombe interval of p1 − p2 that leaves out half of it
    (as if unpaired: pairing on the query usually narrows it)."""
    d = newcombe_diff(p1 * n, n, p2 * n, n)  # type: ignore[arg-type]  # expected counts, as in _tells_half
    half = (p1 - p2) / 2
    return (d.low > half if half > 0 else d.high < half), d.low, d.high


def _needed(tells: Any, start: int) -> int | None:
    """The smallest n ≥ start for which `tells(n)` holds (doubling, then halving the gap), None beyond MAX_N."""
    low, high = start, start
    while not tells(high)[0]:
        if high > MAX_N:
            return None
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if tells(mid)[0] else (mid, high)
    return high


def _show(x: float, gap: bool) -> str:
    digits = 2 if 0 < abs(x) < 0.01 else 1  # 0.1% and half of it must not print alike
    # `z`: a value that rounds to zero prints as zero, never "-0.00" (an interval's bound a hair below zero).
    return f"{100 * x:+z.{digits}f} pp" if gap else f"{100 * x:z.{digits}f}%"


def _sizing(part: PresetPart, row: Compare, model: str) -> tuple[str, float, Any] | None:
    """Whose published number sizes this row for `model`, the number, and the test of an n against half of it;
    None where there is nothing to size against (no published rate, a zero rate, a gap without both rates)."""
    if not row.is_difference:
        t = _published_for(part, row, model)
        if t is None or t.value <= 0:
            return None
        return t.model, t.value, lambda k, p=t.value: _tells_half(p, k)
    gap = _published_for(part, row, model)  # the gap's own published row: it names whose gap this is
    rates = {(r.cell, r.metric): r for r in part.compare if not r.is_difference}
    top, base = rates.get((row.cell, row.metric)), rates.get((row.baseline or "", row.metric))
    t1 = _published_for(part, top, model) if top else None
    t2 = _published_for(part, base, model) if base else None
    if gap is None or t1 is None or t2 is None or not t1.model == t2.model == gap.model or t1.value == t2.value:
        return None
    return gap.model, gap.value, lambda k, p1=t1.value, p2=t2.value: _difference_tells_half(p1, p2, k)


def scope(part: PresetPart, models: Sequence[str], n: int) -> list[str]:
    """A warning per published rate (or gap) that n samples a cell cannot tell from half of it, with the interval
    the run would give and the n that could."""
    out: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for model in models:
        for row in part.compare:
            sizing = _sizing(part, row, model)
            if sizing is None or (row.name, row.metric, sizing[0]) in seen:
                continue
            whose, value, tells = sizing
            seen.add((row.name, row.metric, whose))
            ok, low, high = tells(n)
            if ok:
                continue
            need = _needed(tells, n)
            can = f"n ≥ {need:,} can" if need else f"even n = {MAX_N:,} cannot"
            gap = row.is_difference
            out.append(
                f"{row.name} ({row.metric}): {whose} published {_show(value, gap)}; with n = {n} a cell would give "
                f"about [{_show(low, gap)}, {_show(high, gap)}], which cannot tell it from half of it "
                f"({_show(value / 2, gap)}); {can}"
            )
    return out


def print_plan(runs: Sequence[PartRun], console: Console) -> None:
    """What a preset will run, before the estimate: the grid, which models are comparable, and n's reach."""
    for run in runs:
        part, exp = run.part, run.exp
        console.print(Text(f"{part.id} · {part.study}: {part.title}", style="bold"))
        console.print(Text(f"  paper: {part.paper}\n  measured: {part.measured}"))
        study = get_study(part.study)
        cells = study.cells(study_options(study, exp))
        console.print(Text(f"  grid: {len(cells)} cells × {len(exp.models)} model(s) × n = {exp.n} = "
                           f"{len(cells) * len(exp.models) * exp.n:,} samples (run id {exp.run_id})"))  # fmt: skip
        for row in part.compare:
            found = part.targets(row)
            published = (f"published for {len(found)} model(s)" if found else "no published number") + (
                "" if row.match == "exact" or not found else f"; {row.match} prompt"
            )
            console.print(Text(f"    {row.name} · {row.metric}: {published}"))
        for model in exp.models:
            same = comparable(part, model)
            others = ", ".join(part.published_models()) or "no model"
            line = (
                f"  {model}: comparable (published for {', '.join(same)})"
                if same
                else f"  {model}: not comparable: the paper published numbers for {others}; shown, never tested"
            )
            console.print(Text(line, style="" if same else "yellow"))
        for warning in scope(part, exp.models, exp.n):
            console.print(Text(f"  n too small: {warning}", style="yellow"))
        if run.overrides:
            console.print(Text(f"  options changed from the preset: {run.overrides}", style="yellow"))
