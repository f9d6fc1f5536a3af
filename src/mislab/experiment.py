"""Experiment files and running them: a TOML file names the study, models, conditions, n, seed and budget.

    study = "shutdown"
    models = ["local", "openrouter/openai/o3"]
    n = 20
    seed = 0
    budget_usd = 5.0          # optional: stop cleanly when this much new spend is reached
    [options]                 # the study's own options (`mislab shutdown run --help` lists them)
    variants = ["no_warning", "basic_warning"]
    temperature = 1.0
    [local]                   # options of the embedded model's server
    cache_prompt = false      # repeatable at temperature 0, slower (no KV-cache prefix reuse)
    [adaptive]                # optional: sample a cell further until its interval is narrow enough
    metric = "complied"
    halfwidth = 0.1           # ±10 points (95% Wilson)
    n_max = 200               # n more samples per round, up to n_max

A model is a spec, or a table of settings (`ModelSettings`): base_url, api_key_env, timeout, retries,
concurrency, extra_body (provider parameters sent with every request):

    models = ["local", {name = "openrouter/openai/o3", timeout = 120, extra_body = {provider = {order = ["openai"]}}}]
    # or, one table per model:
    [models."qwen-7b"]
    base_url = "http://gpu-box:8000/v1"
    api_key_env = "VLLM_KEY"

Running the same file again resumes the same run (its id defaults to the file name) and reuses every paid
call through the response cache. A rerun whose spec differs is refused; `--extend` adds samples on purpose."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator
from rich.console import Console

from .adaptive import Adaptive, cell_status
from .config import default_store_path
from .errors import MislabError, UnknownStudyError
from .hypotheses import HypothesisError, parse_hypotheses
from .jobs import JobOutcome
from .models import ChatModel, ModelSettings, ResponseCache, cache_scope, get_model
from .options import OptionsError, StudyOptions, parse
from .runner import PlannedSample, plan, run_blocking, run_samples, start_run
from .store import Store
from .study import CaseStudy, Cell, get_study


class ExperimentError(MislabError, ValueError):
    """An experiment file or its keys cannot be used as written; the message says which and what to do."""


class ExperimentFile(BaseModel):
    """The keys of an experiment file (study options go under [options], checked by the study's schema)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    study: str
    models: list[ModelSettings] = Field(min_length=1)
    n: PositiveInt = 10
    seed: int = Field(0, ge=0)
    budget_usd: PositiveFloat | None = None
    run_id: str | None = Field(None, min_length=1)
    concurrency: PositiveInt | None = None  # per model, unless a model's own settings say otherwise
    options: dict[str, Any] = {}
    local: dict[str, Any] = {}
    adaptive: dict[str, Any] | None = None
    # Competing explanations and what each predicts per ablation (checked by `mislab.hypotheses`).
    hypotheses: dict[str, str] = {}
    ablations: list[dict[str, Any]] = []

    @model_validator(mode="before")
    @classmethod
    def _models_as_settings(cls, data: Any) -> Any:
        # models = "local" | ["local", {name = ...}] | [models.NAME] tables: all become a list of settings.
        if not isinstance(data, dict) or "models" not in data:
            return data
        models = data["models"]
        if isinstance(models, str):
            models = [models]
        elif isinstance(models, dict):
            models = [{"name": name, **(s if isinstance(s, dict) else {})} for name, s in models.items()]
        if isinstance(models, list):
            models = [{"name": m} if isinstance(m, str) else m for m in models]
        return {**data, "models": models}


@dataclass
class Experiment:
    study: str
    models: list[str]  # the models' names (specs); their settings are in `model_settings`
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
    model_settings: dict[str, ModelSettings] = field(default_factory=dict)
    # Set by `mislab replicate`: the preset it runs and its published rows (`PresetPart.spec`), so reports can set
    # this run beside them without the preset installed.
    preset: dict[str, Any] | None = None

    @classmethod
    def from_file(cls, path: str | Path) -> Experiment:
        path = Path(path)
        try:
            text = path.read_text()
            data = tomllib.loads(text)
        except OSError as exc:
            raise ExperimentError(f"cannot read {path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise ExperimentError(f"{path} is not a text file: {exc.reason}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ExperimentError(f"{path} is not valid TOML: {exc}") from exc
        data.setdefault("run_id", path.stem)
        return cls.from_dict(data, source=text, where=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None, where: str = "experiment") -> Experiment:
        """Check every key (the study's options against its schema too), before anything runs; all problems
        are reported at once."""
        problems: list[str] = []
        spec: ExperimentFile | None = None
        try:
            spec = parse(ExperimentFile, data, where)
        except OptionsError as exc:
            problems.append(_with_options_hint(str(exc), data))
        study_name = data.get("study")
        study: CaseStudy[Any] | None = None
        if isinstance(study_name, str):
            try:
                study = get_study(study_name)
            except UnknownStudyError as exc:
                problems.append(f"{where}: {exc}")
        try:
            parse_hypotheses(data, where)  # a typo in a prediction fails before any sample is paid for
        except HypothesisError as exc:
            problems.append(str(exc))
        raw_options = data.get("options", {})
        options = None
        if isinstance(raw_options, dict) and "seed" in raw_options:
            problems.append(f"{where}: [options]: seed is a top-level key of the file (seed = {raw_options['seed']!r})")
        elif study is not None and isinstance(raw_options, dict):
            try:
                options = parse(study.options_schema, raw_options, f"{where}: [options]")
            except OptionsError as exc:
                problems.append(str(exc))
        if problems or spec is None or options is None:
            raise ExperimentError("\n".join(problems))
        settings = {m.name: m for m in spec.models}
        if len(settings) != len(spec.models):
            raise ExperimentError(f"{where}: a model is listed twice in 'models'")
        return cls(
            study=spec.study,
            models=list(settings),
            n=spec.n,
            seed=spec.seed,
            options=options.model_dump(exclude_unset=True),
            budget_usd=spec.budget_usd,
            run_id=spec.run_id,
            concurrency=spec.concurrency,
            local=spec.local,
            adaptive=_adaptive(spec.adaptive, spec.n, where),
            hypotheses=spec.hypotheses,
            ablations=spec.ablations,
            source=source,
            model_settings=settings,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "models": self.models,
            "model_settings": {k: v.model_dump(exclude_defaults=True) for k, v in self.model_settings.items()},
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
            **({"preset": self.preset} if self.preset else {}),
        }


def _with_options_hint(message: str, data: dict[str, Any]) -> str:
    """A study option written at the top level of a file belongs under [options]: say so."""
    study = data.get("study")
    try:
        known = get_study(study).options_schema.model_fields if isinstance(study, str) else {}
    except UnknownStudyError:
        known = {}
    stray = [key for key in data if key in known]
    return message + (f"\n(study options such as {stray[0]!r} go under [options])" if stray else "")


def _adaptive(data: dict[str, Any] | None, n: int, where: str) -> Adaptive | None:
    if data is None:
        return None
    try:
        return Adaptive.from_dict(data, n)
    except ValueError as exc:
        raise ExperimentError(f"{where}: {exc}") from exc


def study_options(study: CaseStudy[Any], exp: Experiment) -> StudyOptions:
    """The options a study's samples get: typed, every option with its default filled in, and the run's seed."""
    options: StudyOptions = study.parse_options({**exp.options, "seed": exp.seed}, f"{exp.study}: [options]")
    return options


@dataclass
class PreparedRun:
    """An experiment checked and ready: its study, options, cells and model clients. Everything that can fail
    on a user's mistake fails while preparing, before a store is opened or a call is made."""

    exp: Experiment
    study: CaseStudy[Any]
    options: StudyOptions
    cells: list[Cell]
    models: dict[str, ChatModel]
    cache: bool | str | Path | ResponseCache | None


def prepare_run(
    exp: Experiment,
    *,
    cache: bool | str | Path | ResponseCache | None = None,
    models: dict[str, ChatModel] | None = None,
) -> PreparedRun:
    """Check an experiment and build its models (those not given in `models`, from their settings). `cache`
    None keeps a given model's own cache and gives named models the user cache; True, False or a path applies
    to all."""
    study = get_study(exp.study)
    options = study_options(study, exp)
    cells = study.cells(options)
    study.check_plan(exp.n, options)  # e.g. n beyond the query set: fail before any call
    given = models or {}
    built = {
        name: get_model(given[name], cache=cache)
        if name in given
        else exp.model_settings[name].build(cache=cache, concurrency=exp.concurrency, local_options=exp.local)
        for name in exp.models
    }
    return PreparedRun(exp, study, options, cells, built, cache)


@dataclass
class Launched:
    run_id: str
    outcome: JobOutcome
    notes: list[str]  # what a rerun changed without running anything (see `runner.start_run`)


def launch(
    prepared: PreparedRun,
    store: Store,
    *,
    progress: bool = True,
    budget_usd: float | None = None,
    extend: bool = False,
    console: Console | None = None,
) -> Launched:
    """Run (or resume) a prepared experiment. `extend` lets a rerun of an existing run id add samples (more n,
    models or cells) on purpose."""
    p = prepared
    if budget_usd is not None and budget_usd <= 0:
        raise ExperimentError(f"the budget must be a positive number of USD, got {budget_usd}")
    started = start_run(
        store, p.study, p.models, p.cells, p.options, p.exp.to_dict(), p.exp.run_id, n=p.exp.n, extend=extend
    )
    budget = budget_usd if budget_usd is not None else p.exp.budget_usd
    with cache_scope(True if p.cache is None else p.cache):  # models the study builds (judges) follow the run
        outcome = _run_rounds(p, store, started.run_id, budget, progress, console)
    return Launched(started.run_id, outcome, started.notes)


def run_experiment(
    exp: Experiment,
    store: Store,
    *,
    cache: bool | str | Path | ResponseCache | None = None,
    models: dict[str, ChatModel] | None = None,
    progress: bool = True,
    budget_usd: float | None = None,
    extend: bool = False,
) -> Launched:
    """Prepare and launch an experiment (see `prepare_run`, `launch`)."""
    prepared = prepare_run(exp, cache=cache, models=models)
    return launch(prepared, store, progress=progress, budget_usd=budget_usd, extend=extend)


def _run_rounds(
    p: PreparedRun, store: Store, run_id: str, budget: float | None, progress: bool, console: Console | None
) -> JobOutcome:
    """The planned samples, then (with `[adaptive]`) further rounds for cells whose interval is too wide."""
    exp = p.exp

    def run(samples: list[PlannedSample], left: float | None) -> JobOutcome:
        return run_blocking(run_samples(store, run_id, p.study, p.models, samples, p.options, budget=left,
                                        progress=progress, console=console))  # fmt: skip

    outcome = run(plan(list(p.models), p.cells, exp.n), budget)
    # Adaptive rounds: n more epochs for every cell whose interval is still too wide, up to n_max.
    by_id = {c.id: c for c in p.cells}
    while exp.adaptive and not outcome.stopped:
        status = cell_status(store.samples(run_id), exp.adaptive)
        wide = status[status["needs_more"]] if len(status) else status
        if wide.empty:
            break
        more = [
            PlannedSample(row["model"], by_id[row["cell"]], epoch)
            for row in wide.to_dict("records")
            for epoch in range(row["epochs"], min(row["epochs"] + exp.n, exp.adaptive.n_max))
        ]
        outcome.absorb(run(more, None if budget is None else budget - outcome.cost))
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
    cache: bool | str | Path | ResponseCache | None = None,
    budget_usd: float | None = None,
    progress: bool = True,
    extend: bool = False,
) -> pd.DataFrame:
    """The Python entry point behind each study's `run(...)`: one row per sample. `models` are specs or
    `ChatModel`s. `cache`: None (default) keeps a given model's own cache and gives a named one the user cache;
    True, False or a path applies to every model, named or given. Options are checked against the study's
    schema (unknown or mistyped ones raise ExperimentError). The run id and the outcome are in `df.attrs`
    (`run_id`, `stopped`, `store`)."""
    listed = [models] if isinstance(models, str | ChatModel) else list(models)
    given = {m.name: m for m in listed if isinstance(m, ChatModel)}
    exp = Experiment.from_dict(
        {
            "study": study,
            "models": [m.name if isinstance(m, ChatModel) else m for m in listed],
            "n": n,
            "seed": seed,
            # Tuples are lists to the schema (which reads numbers and lists strictly, as TOML gives them).
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items() if v is not None},
            **({"budget_usd": budget_usd} if budget_usd is not None else {}),
            **({"run_id": run_id} if run_id is not None else {}),
        },
        where=f"{study} run",
    )
    prepared = prepare_run(exp, cache=cache, models=given)
    store = store if isinstance(store, Store) else Store(store or default_store_path())
    launched = launch(prepared, store, progress=progress, extend=extend)
    df = store.samples(launched.run_id)
    df.attrs.update(run_id=launched.run_id, stopped=launched.outcome.stopped, store=str(store.path))
    return df
