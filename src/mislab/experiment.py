"""Experiment files and running them: a TOML file names the study, models, conditions, n, seed and budget.

    study = "shutdown"
    models = ["local", "openrouter/openai/o3"]
    n = 20
    seed = 0
    budget_usd = 5.0          # optional: stop cleanly when this much new spend is reached
    [options]                 # the study's own options
    variants = ["no_warning", "basic_warning"]
    temperature = 1.0
    [local]                   # options of the embedded model's server
    cache_prompt = false      # repeatable at temperature 0, slower (no KV-cache prefix reuse)
    [adaptive]                # optional: sample a cell further until its interval is narrow enough
    metric = "complied"
    halfwidth = 0.1           # ±10 points (95% Wilson)
    n_max = 200               # n more samples per round, up to n_max

Running the same file again resumes the same run (its id defaults to the file name) and reuses every paid
call through the response cache."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .adaptive import Adaptive, cell_status
from .config import default_store_path
from .hypotheses import HypothesisError, parse_hypotheses
from .models import ChatModel, ResponseCache, cache_scope, get_model
from .runner import PlannedSample, RunOutcome, plan, run_blocking, run_samples, start_run
from .store import Store
from .study import CaseStudy, Cell, get_study

_KNOWN_KEYS = {
    "study", "models", "n", "seed", "budget_usd", "run_id", "options", "concurrency", "local", "adaptive",
    "hypotheses", "ablations",
}  # fmt: skip


class ExperimentError(ValueError):
    pass


@dataclass
class Experiment:
    study: str
    models: list[str]
    n: int = 10
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    budget_usd: float | None = None
    run_id: str | None = None
    concurrency: int | None = None
    local: dict[str, Any] = field(default_factory=dict)
    adaptive: Adaptive | None = None
    # Competing explanations and what each predicts per ablation (see `mislab.hypotheses`).
    hypotheses: dict[str, str] = field(default_factory=dict)
    ablations: list[dict[str, Any]] = field(default_factory=list)
    source: str | None = None  # the file's text, stored with the run

    @classmethod
    def from_file(cls, path: str | Path) -> Experiment:
        path = Path(path)
        try:
            text = path.read_text()
            data = tomllib.loads(text)
        except OSError as exc:
            raise ExperimentError(f"cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ExperimentError(f"{path} is not valid TOML: {exc}") from exc
        data.setdefault("run_id", path.stem)
        return cls.from_dict(data, source=text, where=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None, where: str = "experiment") -> Experiment:
        unknown = set(data) - _KNOWN_KEYS
        if unknown:
            raise ExperimentError(
                f"{where}: unknown keys {sorted(unknown)}; study options go under [options]. "
                f"Known: {sorted(_KNOWN_KEYS)}"
            )
        for key in ("study", "models"):
            if key not in data:
                raise ExperimentError(f"{where}: missing required key {key!r}")
        models = data["models"]
        if isinstance(models, str):
            models = [models]
        if not models or not all(isinstance(m, str) for m in models):
            raise ExperimentError(f"{where}: 'models' must be a list of model specs")
        n = data.get("n", 10)
        if not isinstance(n, int) or n < 1:
            raise ExperimentError(f"{where}: 'n' must be a positive integer, got {n!r}")
        try:
            get_study(data["study"])
        except KeyError as exc:
            raise ExperimentError(f"{where}: {exc.args[0]}") from exc
        return cls(
            study=data["study"],
            models=list(models),
            n=n,
            seed=int(data.get("seed", 0)),
            options=dict(data.get("options", {})),
            budget_usd=data.get("budget_usd"),
            run_id=data.get("run_id"),
            concurrency=data.get("concurrency"),
            local=dict(data.get("local", {})),
            adaptive=_adaptive(data, n, where),
            **_hypotheses(data, where),
            source=source,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "models": self.models,
            "n": self.n,
            "seed": self.seed,
            "options": self.options,
            "budget_usd": self.budget_usd,
            "run_id": self.run_id,
            "local": self.local,
            "adaptive": asdict(self.adaptive) if self.adaptive else None,
            "hypotheses": self.hypotheses,
            "ablations": self.ablations,
            "source": self.source,
        }


def _adaptive(data: dict[str, Any], n: int, where: str) -> Adaptive | None:
    if "adaptive" not in data:
        return None
    try:
        return Adaptive.from_dict(data["adaptive"], n)
    except ValueError as exc:
        raise ExperimentError(f"{where}: {exc}") from exc


def _hypotheses(data: dict[str, Any], where: str) -> dict[str, Any]:
    try:
        parse_hypotheses(data, where)  # checked now, so a typo fails before any sample is paid for
    except HypothesisError as exc:
        raise ExperimentError(str(exc)) from exc
    return {"hypotheses": dict(data.get("hypotheses") or {}), "ablations": list(data.get("ablations") or [])}


def run_experiment(
    exp: Experiment,
    store: Store,
    *,
    cache: bool | str | Path | ResponseCache = True,
    models: dict[str, ChatModel] | None = None,
    progress: bool = True,
    budget_usd: float | None = None,
) -> tuple[str, RunOutcome]:
    """Run (or resume) an experiment; returns its run id and what happened."""
    study = get_study(exp.study)
    options = {**exp.options, "seed": exp.seed}
    cells = study.cells(options)
    if models is None:
        models = {
            spec: get_model(spec, cache=cache, max_concurrency=exp.concurrency, local_options=exp.local)
            for spec in exp.models
        }
    run_id = start_run(store, study, models, cells, options, exp.to_dict(), exp.run_id)
    with cache_scope(cache):  # models the study builds during the run (judges) follow the run's cache choice
        return run_id, _run_rounds(exp, store, study, run_id, models, cells, options, budget_usd, progress)


def _run_rounds(
    exp: Experiment,
    store: Store,
    study: CaseStudy,
    run_id: str,
    models: dict[str, ChatModel],
    cells: list[Cell],
    options: dict[str, Any],
    budget_usd: float | None,
    progress: bool,
) -> RunOutcome:
    """The planned samples, then (with `[adaptive]`) further rounds for cells whose interval is too wide."""
    budget = budget_usd if budget_usd is not None else exp.budget_usd
    samples = plan(list(models), cells, exp.n)
    outcome = run_blocking(
        run_samples(store, run_id, study, models, samples, options, budget=budget, progress=progress)
    )
    # Adaptive rounds: n more epochs for every cell whose interval is still too wide, up to n_max.
    by_id = {c.id: c for c in cells}
    while exp.adaptive and not outcome.stopped:
        status = cell_status(store.samples(run_id), exp.adaptive)
        wide = status[status["needs_more"]] if len(status) else status
        if wide.empty:
            break
        more = [
            PlannedSample(row.model, by_id[row.cell], epoch)
            for row in wide.itertuples()
            for epoch in range(row.epochs, min(row.epochs + exp.n, exp.adaptive.n_max))
        ]
        left = None if budget is None else budget - outcome.cost
        step = run_blocking(run_samples(store, run_id, study, models, more, options, budget=left, progress=progress))
        outcome.planned += step.planned
        outcome.done += step.done
        outcome.errors += step.errors
        outcome.cost += step.cost
        outcome.stopped = step.stopped
        outcome.error_messages += step.error_messages
    return outcome


def run_study(
    study: str,
    models: str | ChatModel | Sequence[str | ChatModel],
    n: int,
    options: dict[str, Any],
    *,
    seed: int = 0,
    run_id: str | None = None,
    store: Store | str | Path | None = None,
    cache: bool | str | Path | ResponseCache = True,
    budget_usd: float | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """The Python entry point behind each study's `run(...)`: one row per sample. `models` are specs or
    `ChatModel`s. The run id and the outcome are in `df.attrs` (`run_id`, `stopped`, `store`)."""
    listed = [models] if isinstance(models, str | ChatModel) else list(models)
    chat_models = {m.name: m for m in (get_model(spec, cache=cache) for spec in listed)}
    exp = Experiment.from_dict(
        {
            "study": study,
            "models": list(chat_models),
            "n": n,
            "seed": seed,
            "options": {k: v for k, v in options.items() if v is not None},
            "budget_usd": budget_usd,
            "run_id": run_id,
        }
    )
    store = store if isinstance(store, Store) else Store(store or default_store_path())
    run_id, outcome = run_experiment(exp, store, cache=cache, models=chat_models, progress=progress)
    df = store.samples(run_id)
    df.attrs.update(run_id=run_id, stopped=outcome.stopped, store=str(store.path))
    return df
