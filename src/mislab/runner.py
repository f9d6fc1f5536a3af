"""Runs: models × cells × n samples, as a job of the engine (`mislab.jobs`): bounded concurrency per model, one
store transaction per finished sample, claims, progress with live cost, a budget held before every call, and a
clean stop on Ctrl-C. A sample is run by its study (`run_sample`), then scored from its record (`score`).

A sample's failure is the sample's: a model call that failed for good (retries exhausted, an unusable answer)
or an environment bug is stored as that sample's error, with what it paid, and the run goes on. The run stops for
what no sample can get past (a `FatalError`), when samples keep failing (a circuit breaker), at the budget, or on
Ctrl-C; a sample cut by the stop is stored as stopped.

A run is resumable: its samples have deterministic ids, and those already done are skipped (errored and stopped
ones are run again)."""

from __future__ import annotations

import asyncio
import contextvars
import json
import secrets
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from rich.console import Console

from . import __version__
from .errors import MislabError
from .jobs import Failure, Job, JobOutcome, Plan, run_job
from .models import ChatModel, UsageMeter
from .options import StudyOptions
from .store import Label, SampleRecord, Store, StoreError, split_scores
from .study import CaseStudy, Cell, SampleResult
from .transcript import Transcript

T = TypeVar("T")


@dataclass(frozen=True, slots=True)  # a run plans one per sample: no per-instance dict
class PlannedSample:
    model: str
    cell: Cell
    epoch: int

    @property
    def sample_id(self) -> str:
        return f"{self.model}::{self.cell.id}::{self.epoch}"


def plan(models: list[str], cells: list[Cell], n: int) -> list[PlannedSample]:
    # Epoch-major order, so a run stopped early has a balanced sample of every cell.
    return [PlannedSample(m, c, e) for e in range(n) for m in models for c in cells]


@dataclass
class Scored:
    result: SampleResult
    scores: dict[str, Any]


class RunJob(Job[PlannedSample, Scored]):
    """Run planned samples of a run: each is run by its study, scored, and stored with what it paid."""

    kind = "run"
    releases_on_save = True

    def __init__(
        self,
        store: Store,
        run_id: str,
        study: CaseStudy[Any],
        models: dict[str, ChatModel],
        samples: list[PlannedSample],
        options: StudyOptions,
    ) -> None:
        self.store, self.run_id, self.study, self.models = store, run_id, study, models
        self.samples, self.options = samples, options

    def plan(self) -> Plan[PlannedSample]:
        done_ids = self.store.done_sample_ids(self.run_id)
        rows: dict[str, list[int]] = {}
        for s in self.samples:
            row = rows.setdefault(self.row(s), [0, 0])
            row[0] += 1
            row[1] += s.sample_id in done_ids
        items = {m: self._todo(m, done_ids) for m in self.models}
        done = sum(done for _, done in rows.values())
        return Plan(items, len(self.samples), done, {k: (t, d) for k, (t, d) in rows.items()})

    def _todo(self, model: str, done_ids: set[str]) -> Iterator[PlannedSample]:
        return (s for s in self.samples if s.model == model and s.sample_id not in done_ids)

    def key(self, item: PlannedSample) -> str:
        return item.sample_id

    def row(self, item: PlannedSample) -> str:
        return f"{item.model} · {item.cell.id}"

    async def work(self, item: PlannedSample) -> Scored:
        result = await self.study.run_sample(self.models[item.model], item.cell, item.epoch, self.options)
        labels = {label.scorer: label for label in result.labels}
        return Scored(result, self.study.score(result.transcript, item.cell, self.options, labels))

    def save(self, item: PlannedSample, outcome: Scored | Failure, meter: UsageMeter, seconds: float) -> None:
        record, labels = sample_record(item.sample_id, item.model, item.cell, item.epoch, outcome, meter, seconds)
        self.store.add_sample(self.run_id, record, labels, release=self.owner)


def sample_record(
    sample_id: str, model: str, cell: Cell, epoch: int, outcome: Scored | Failure, meter: UsageMeter, seconds: float
) -> tuple[SampleRecord, list[Label]]:
    """A finished (or failed) sample as the store keeps it, with what it paid, and its labels."""
    values: dict[str, Any]
    na: dict[str, str]
    status: str
    if isinstance(outcome, Failure):
        values, na, metadata, labels = {}, {}, {"traceback": outcome.traceback} if outcome.traceback else {}, []
        transcript, status, error = Transcript(), outcome.status, outcome.error
    else:
        result = outcome.result
        values, na = split_scores({**result.facts, **outcome.scores})
        metadata, labels, transcript = result.metadata, result.labels, result.transcript
        status, error = "done", None
        for label in labels:
            label.sample_id = sample_id
    record = SampleRecord(
        sample_id, model, cell.id, cell.factors, epoch, values, transcript, metadata, status, error, meter.calls,
        meter.cached_calls, meter.usage.prompt_tokens, meter.usage.completion_tokens, meter.usage.cached_prompt_tokens,
        meter.cost, seconds, meter.usage.reasoning_tokens, na,
    )  # fmt: skip
    return record, labels


def windows_for(models: dict[str, ChatModel]) -> dict[str, int]:
    """Twice each model's concurrency in samples: the model's own limit keeps exactly that many calls in flight,
    and a sample ready to call takes a freed slot at once instead of waiting for another to be scored and stored
    (a fifth of the throughput)."""
    return {name: 2 * m.max_concurrency for name, m in models.items()}


async def run_samples(
    store: Store,
    run_id: str,
    study: CaseStudy[Any],
    models: dict[str, ChatModel],
    samples: list[PlannedSample],
    options: StudyOptions,
    *,
    budget: float | None = None,
    progress: bool = True,
    console: Console | None = None,
) -> JobOutcome:
    """Run (or resume) planned samples of a run; see the module docstring."""
    job = RunJob(store, run_id, study, models, samples, options)
    outcome = None
    try:
        outcome = await run_job(job, store, windows_for(models), budget=budget, progress=progress, console=console,
                                note="all")  # fmt: skip
    finally:  # whatever ended the session, the run's status says so (never left "running")
        complete = outcome is not None and outcome.complete
        stopped = outcome is None or outcome.stopped is not None
        store.update_run(run_id, status="complete" if complete else ("stopped" if stopped else "incomplete"))
        if outcome is not None:  # the session's wall time, beside the samples' own times
            run = store.get_run(run_id)
            if run is not None:
                sessions = [*run.spec.get("sessions", []), {"at": stamp(), "seconds": round(outcome.seconds, 3),
                                                            "samples": outcome.done + outcome.errors}]  # fmt: skip
                store.update_run(run_id, spec={**run.spec, "sessions": sessions})
    return outcome


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end from sync code, also from inside Jupyter's running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            errors.append(exc)

    # A new thread starts with an empty context: carry the caller's (cache scope, meters) across.
    thread = threading.Thread(target=contextvars.copy_context().run, args=(target,))
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def new_run_id(study: str, store: Store | None = None) -> str:
    """A fresh run id: the time (for people) and a random part, redrawn until unused in `store`. The time alone
    is not enough: two runs started within a second would share an id, the second resuming the first."""
    while True:
        run_id = f"{study}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"
        if store is None or store.get_run(run_id) is None:
            return run_id


class RunSpecError(MislabError, ValueError):
    """A rerun of a run id asks for something other than what the run was started with."""


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def spec_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`key: old → new` for every leaf that differs between two run plans."""
    a, b = _flat(old), _flat(new)
    return [f"{k}: {a.get(k, '—')!r} → {b.get(k, '—')!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def run_plan(models: dict[str, ChatModel], cells: list[Cell], options: StudyOptions, n: int) -> dict[str, Any]:
    """What decides a run's samples: compared when a run id is reused, so a resume cannot mix two designs."""
    plan = {
        "models": {name: _model_plan(m) for name, m in models.items()},
        "cells": [c.id for c in cells], "n": n, "options": options.model_dump(mode="json"),
    }  # fmt: skip
    plain: dict[str, Any] = json.loads(json.dumps(plan, default=str))
    return plain


def _model_plan(model: ChatModel) -> dict[str, Any]:
    """What of a model decides its samples: its generation defaults, and whether its reasoning is carried."""
    described = model.describe()
    plan = dict(described.get("defaults", {}))
    if described.get("carry_reasoning") is False:  # recorded when off, so older runs' plans stay equal
        plan["carry_reasoning"] = False
    return plan


def _extension_problems(old: dict[str, Any], new: dict[str, Any], cell_options: set[str]) -> list[str]:
    """What `--extend` may not change: the options of existing cells, the seed, existing models' settings."""
    problems = [c for c in old["cells"] if c not in new["cells"]]
    out = [f"cell {c!r} would be dropped" for c in problems]
    out += [f"model {m!r} would be dropped" for m in old["models"] if m not in new["models"]]
    fixed_old = {k: v for k, v in old["options"].items() if k not in cell_options}
    fixed_new = {k: v for k, v in new["options"].items() if k not in cell_options}
    out += [f"options.{c}" for c in spec_changes(fixed_old, fixed_new)]
    out += [f"models.{c}" for c in spec_changes(
        old["models"], {m: d for m, d in new["models"].items() if m in old["models"]}
    )]  # fmt: skip
    return out


# Keys of a run's spec that only analyse its samples: a rerun may add or change them without running anything;
# the run records each change with its time. (A preset's published rows are analysis; its experiment is the plan.)
ANALYSIS_KEYS = ("hypotheses", "ablations", "preset")
# Keys that apply to the session that runs (not to the samples): a rerun that changes them says so.
SESSION_KEYS = ("budget_usd", "concurrency", "adaptive", "local", "model_settings")


@dataclass
class StartedRun:
    run_id: str
    notes: list[str]  # what a rerun changed that ran nothing (analysis, session settings), one line each


def start_run(
    store: Store,
    study: CaseStudy[Any],
    models: dict[str, ChatModel],
    cells: list[Cell],
    options: StudyOptions,
    spec: dict[str, Any],
    run_id: str | None = None,
    *,
    n: int | None = None,
    extend: bool = False,
) -> StartedRun:
    """Create the run record with everything needed to reproduce it, or reopen it for a resume.

    Reopening checks the run's plan (models, cells, n, options): a rerun asking for something else is refused
    with the difference, unless `extend` is set and the change only adds samples (n, models, or cells through the
    study's cell-selecting options); the run's spec then records the extension. Declarations that only analyse
    (hypotheses, ablations) are taken as given and recorded with when they changed; a change of a session
    setting (budget, concurrency …) is noted. Two processes starting one run at once share it."""
    run_id = run_id or new_run_id(study.name, store)
    plan = run_plan(models, cells, options, spec.get("n", 0) if n is None else n)
    prompts = study.prompts(cells, options)
    described = {name: m.describe() for name, m in models.items()}
    scorer = {"version": study.scorer_version, "package": __version__}
    existing = store.get_run(run_id)
    if existing is None:
        try:
            store.create_run(run_id, study.name, {**spec, "plan": plan, "scorer": scorer}, prompts, described,
                             __version__)  # fmt: skip
            return StartedRun(run_id, [])
        except StoreError:  # another process created it a moment ago: reopen it as a resume would
            existing = store.get_run(run_id)
            if existing is None:
                raise
    if existing.study != study.name:
        raise RunSpecError(f"run {run_id!r} is a {existing.study} run, not {study.name}; choose another run id")
    old = existing.spec.get("plan")
    new_spec = {**existing.spec}
    notes: list[str] = []
    if old is not None and old != plan:
        changes = spec_changes(old, plan)
        if not extend:
            raise RunSpecError(
                f"run {run_id!r} was started with a different spec: {'; '.join(changes)}. "
                "To add samples to it on purpose (more n, models or cells), rerun with --extend (extend=True); "
                "to start a new run, give another run id (--run-id, or run_id in the file)."
            )
        problems = _extension_problems(old, plan, study.options_schema.cell_options())
        if problems:
            raise RunSpecError(
                f"run {run_id!r} cannot be extended this way: {'; '.join(problems)}. An extension only adds "
                "samples (n, models, cells); for anything else start a new run (another run id)."
            )
        new_spec = {
            **spec,
            "plan": plan,
            "scorer": new_spec.get("scorer", scorer),
            "extensions": [*existing.spec.get("extensions", []), {"changes": changes, "at": stamp()}],
        }
        notes.append(f"extended: {'; '.join(changes)}")
    analysis = {k: spec.get(k) for k in ANALYSIS_KEYS}
    before = {k: existing.spec.get(k) for k in ANALYSIS_KEYS}
    if analysis != before:
        changed = [k for k in ANALYSIS_KEYS if analysis[k] != before[k]]
        new_spec.update(analysis)
        new_spec["analysis_changes"] = [*existing.spec.get("analysis_changes", []),
                                        {"keys": changed, "at": stamp(), "before": before}]  # fmt: skip
        notes.append(f"{' and '.join(changed)} {'updated' if any(before.values()) else 'added'} on the stored run "
                     "(nothing was run for it); `show` uses them")  # fmt: skip
    for key in SESSION_KEYS:
        if key in spec and spec.get(key) != existing.spec.get(key) and key not in new_spec.get("plan", {}):
            notes.append(f"{key} is now {spec.get(key)!r} (was {existing.spec.get(key)!r}): it applies to this "
                         "session, the samples already stored keep what they were run with")  # fmt: skip
            new_spec[key] = spec[key]
    if new_spec != existing.spec:
        store.update_run(run_id, spec=new_spec, prompts=prompts, models=described)
    return StartedRun(run_id, notes)


def stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")
