"""Rescoring a stored run: its study's `score` recomputed over every finished sample's stored transcript and
labels with the installed version, on the job engine, calling no model. Every value it changes is counted per
column (a rate's k/n before and after), the run records which scorer version scored it and when, and a column
the study can no longer compute from a sample (e.g. a machine's state in a transcript older than its events)
keeps its stored value."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from . import __version__
from .errors import MislabError
from .jobs import Failure, Job, Plan, run_job
from .models import UsageMeter
from .options import StudyOptions
from .runner import run_blocking, stamp
from .store import SampleRecord, Store, split_scores
from .study import CaseStudy, Cell, get_study


class RescoreError(MislabError):
    """A run that cannot be rescored as asked (no such run, its study is not installed, its options unreadable)."""


@dataclass
class Change:
    """What a rescore did to one column: how many samples' values changed, and k/n (for a yes/no column: how many
    said yes, of those where it applies) before and after."""

    changed: int = 0
    k_before: int = 0
    n_before: int = 0
    k_after: int = 0
    n_after: int = 0

    def __str__(self) -> str:
        return f"{self.changed} changed: {self.k_before}/{self.n_before} → {self.k_after}/{self.n_after}"


@dataclass
class RescoreOutcome:
    run_id: str
    scorer_version: str
    samples: int = 0  # finished samples read
    changed_samples: int = 0
    columns: dict[str, Change] = field(default_factory=dict)
    # Metrics the scorer could not compute from a sample (kept as stored), by column: how many samples.
    kept: Counter[str] = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)
    calls: int = 0  # model calls made: always 0
    seconds: float = 0.0

    @property
    def changes(self) -> dict[str, Change]:
        return {column: c for column, c in self.columns.items() if c.changed}


def _yes(value: Any) -> int:
    return int(value is True)


def _same(a: Any, b: Any) -> bool:
    """Equal as stored: same type and value (True is not 1), NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return type(a) is type(b) and a == b


def _applies(value: Any) -> int:
    return int(isinstance(value, bool))


class RescoreJob(Job[SampleRecord, dict[str, Any]]):
    kind = "rescore"
    claims = False  # no call is paid for: two rescores of one run write the same values

    def __init__(self, store: Store, run_id: str, study: CaseStudy[Any], options: StudyOptions, out: RescoreOutcome):
        self.store, self.run_id, self.study, self.options, self.out = store, run_id, study, options, out

    def plan(self) -> Plan[SampleRecord]:
        total = self.store.count_samples(self.run_id, "done")
        return Plan({"rescore": self.store.iter_records(self.run_id, status="done")}, total)

    def key(self, item: SampleRecord) -> str:
        return item.sample_id

    async def work(self, item: SampleRecord) -> dict[str, Any]:
        labels = self.store.sample_labels(self.run_id, item.sample_id)
        return self.study.score(item.transcript, Cell(item.cell, item.factors), self.options, labels)

    def save(self, item: SampleRecord, outcome: dict[str, Any] | Failure, meter: UsageMeter, seconds: float) -> None:
        out = self.out
        if isinstance(outcome, Failure):
            out.failed.append(f"{item.sample_id}: {outcome.error}")
            return
        out.samples += 1
        values, na = split_scores(outcome)
        changed = False
        for column, new_value in values.items():
            old_value, old_na, new_na = item.scores.get(column), item.na.get(column), na.get(column)
            c = out.columns.setdefault(column, Change())
            c.k_before, c.n_before = c.k_before + _yes(old_value), c.n_before + _applies(old_value)
            c.k_after, c.n_after = c.k_after + _yes(new_value), c.n_after + _applies(new_value)
            if not _same(old_value, new_value) or old_na != new_na:
                c.changed += 1
                changed = True
        out.kept.update(m.column for m in self.study.metrics if m.column in item.scores and m.column not in outcome)
        if changed:
            out.changed_samples += 1
            self.store.update_scores(self.run_id, [(item.sample_id, values, na)])


def run_options(study: CaseStudy[Any], spec: dict[str, Any]) -> StudyOptions:
    """A stored run's options, typed (what its samples were run with). Keys an older version had and this one
    does not are left out: they no longer mean anything to the study."""
    plan = spec.get("plan") or {}
    stored = dict(plan.get("options") or spec.get("options") or {})
    stored.setdefault("seed", spec.get("seed", 0))
    known = {k: v for k, v in stored.items() if k in study.options_schema.model_fields}
    try:
        return study.options_schema.model_validate(known, strict=False)
    except ValueError as exc:
        raise RescoreError(f"the run's stored options cannot be read by this version of {study.name}: {exc}") from exc


async def arescore_run(
    store: Store, run_id: str, *, progress: bool = False, console: Console | None = None
) -> RescoreOutcome:
    run = store.get_run(run_id)
    if run is None:
        raise RescoreError(f"no run {run_id!r} in {store.path}; `mislab runs` lists the runs there")
    try:
        study = get_study(run.study)
    except MislabError as exc:
        raise RescoreError(f"run {run_id} is a {run.study} run, and that study is not installed: {exc}") from exc
    out = RescoreOutcome(run_id, study.scorer_version)
    job = RescoreJob(store, run_id, study, run_options(study, run.spec), out)
    result = await run_job(job, store, {"rescore": 1}, progress=progress, console=console, note="rescore")
    out.seconds, out.calls = result.seconds, result.calls
    history = [
        *run.spec.get("rescores", []),
        {
            "version": study.scorer_version,
            "package": __version__,
            "at": stamp(),
            "changed": {k: str(c) for k, c in out.changes.items()},
        },
    ]
    scorer = {"version": study.scorer_version, "package": __version__}
    store.update_run(run_id, spec={**run.spec, "scorer": scorer, "rescores": history})
    return out


def rescore_run(
    store: Store | str | Path, run_id: str, *, progress: bool = False, console: Console | None = None
) -> RescoreOutcome:
    """Recompute a stored run's scores with the installed version of its study; no model is called. Returns what
    changed, per column."""
    if not isinstance(store, Store):
        store = Store(store, create=False)
    return run_blocking(arescore_run(store, run_id, progress=progress, console=console))
