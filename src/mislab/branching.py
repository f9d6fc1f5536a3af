"""Narrow incrimination: take stored samples, go back to the moment the model decided, change one thing, and
resample from there (`mislab branch RUN`).

A branch job makes a child run of an ordinary kind: for each selected parent sample, each intervention and each
of `n` resamples, a child sample whose transcript is the parent's prefix up to the branch point (changed as the
intervention says) and the model's continuation from it. The study restores its environment at that point
(the shutdown study replays the parent's commands on a fresh machine and compares every output with the stored
one) and goes on as in a run; the child is scored by the same `score`, stored with its provenance (parent,
branch point, intervention, whether the replay was faithful), and every report, label, rescore and export works
on it.

Branch points (`--at`):
- a point the study names (`warning`: the model's first turn after the shutdown warning was delivered; `reply`:
  an alignment-faking reply), see `CaseStudy.branch_point`;
- `turn:K`: before the K-th assistant turn;
- `reasoning:F`: in the turn at the study's decision point, after the first F sentences of the model's reasoning
  (its scratchpad or <think> block, else the text it wrote before its call), continued as the same assistant turn
  (assistant prefill: the child's text starts with the parent's, byte for byte); `reasoning:/REGEX/`: just before
  the first sentence matching REGEX.

Interventions (each its own arm; pure resampling, `resample`, is always an arm: the baseline each is paired with
on the same prefixes): `--variant NAME` (the environment's texts from another of the study's variants), `--edit
PART:OLD=>NEW` on `system`, `user`, `warning` (the message that delivered it), `tool` or `reasoning`, `--drop
'reasoning:/REGEX/'` (the matching sentences taken out of the reasoning prefix).

The effect of an intervention is estimated per parent (its resample rate against pure resampling's, both from the
same prefix) and pooled over parents with an interval that respects the clustering by parent (`branch_effects`)."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from rich.console import Console

from . import __version__
from .errors import MislabError
from .jobs import Failure, Job, JobOutcome, Plan, run_job
from .models import ChatModel, ModelSettings, ModelSpec, ResponseCache, UsageMeter, cache_scope, get_model, parse_spec
from .options import StudyOptions, did_you_mean
from .rescore import run_options
from .runner import Scored, run_blocking, sample_record, windows_for
from .scratchpad import REASONING_KINDS, segment_response, sentence_spans
from .stats import Rate, difference_text, rate
from .store import RunInfo, SampleRecord, Store
from .study import CaseStudy, Cell, get_study
from .transcript import AssistantTurn, SystemTurn, ToolTurn, Transcript, UserTurn

RESAMPLE = "resample"
PARTS = ("system", "user", "warning", "tool", "reasoning")
# Resamples draw their own sample indices, far from any run's epochs: a resample must never be served the parent's
# cached answer (same prefix, same index) — it would only repeat it.
BRANCH_EPOCH_BASE = 1_000_000


class BranchError(MislabError):
    """A branch that cannot be made as asked (one line: which part, what to do)."""


# --- what is asked --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BranchPoint:
    """Where to branch (see the module docstring)."""

    text: str
    kind: Literal["named", "turn", "reasoning"]
    name: str = ""
    turn: int = 0
    sentences: int | None = None
    pattern: str | None = None

    @classmethod
    def parse(cls, text: str) -> BranchPoint:
        head, _, rest = text.partition(":")
        if head == "turn":
            if not rest.isdigit() or int(rest) < 1:
                raise BranchError(f"--at {text!r}: write turn:K with K ≥ 1 (before the K-th assistant turn)")
            return cls(text, "turn", turn=int(rest))
        if head == "reasoning":
            if rest.isdigit():
                return cls(text, "reasoning", sentences=int(rest))
            if len(rest) >= 2 and rest.startswith("/") and rest.endswith("/"):
                return cls(text, "reasoning", pattern=_regex(rest[1:-1], "--at"))
            raise BranchError(f"--at {text!r}: write reasoning:F (after F sentences) or 'reasoning:/REGEX/'")
        if rest or not head:
            raise BranchError(f"--at {text!r}: a point the study names (e.g. warning), turn:K or reasoning:F")
        return cls(text, "named", name=head)


@dataclass(frozen=True)
class Intervention:
    """One arm of a branch job: what changes from the parent's prefix (nothing, for pure resampling)."""

    label: str
    variant: str | None = None
    edit: tuple[str, str, str] | None = None  # (part, old, new)
    drop: str | None = None  # a regex: sentences of the reasoning prefix to take out

    @classmethod
    def resample(cls) -> Intervention:
        return cls(RESAMPLE)

    @classmethod
    def of_variant(cls, name: str) -> Intervention:
        return cls(f"variant:{name}", variant=name)

    @classmethod
    def of_edit(cls, text: str) -> Intervention:
        part, sep, change = text.partition(":")
        old, arrow, new = change.partition("=>")
        if not sep or part not in PARTS or not arrow or not old:
            raise BranchError(f"--edit {text!r}: write PART:OLD=>NEW with PART one of {', '.join(PARTS)}")
        return cls(f"edit:{text}", edit=(part, old, new))

    @classmethod
    def of_drop(cls, text: str) -> Intervention:
        part, _, rest = text.partition(":")
        if part != "reasoning" or len(rest) < 2 or not (rest.startswith("/") and rest.endswith("/")):
            raise BranchError(f"--drop {text!r}: write 'reasoning:/REGEX/' (sentences of the reasoning to take out)")
        return cls(f"drop:{text}", drop=_regex(rest[1:-1], "--drop"))

    @property
    def touches_reasoning(self) -> bool:
        return self.drop is not None or (self.edit is not None and self.edit[0] == "reasoning")


def _regex(pattern: str, flag: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise BranchError(f"{flag}: /{pattern}/ is not a regular expression: {exc}") from None
    return pattern


# --- the prefix -----------------------------------------------------------------------------------------------


@dataclass
class Prefix:
    """A parent's transcript cut at the branch point: the turns before it, and (a reasoning branch) the start of
    the decision turn's text, continued by the model as the same turn."""

    turns: Transcript
    prefill: str | None = None
    decision: int = 0  # the position in the parent's transcript of the turn the branch replaces


def assistant_positions(transcript: Transcript) -> list[int]:
    """Positions of the assistant turns that were part of the conversation (not rejected outputs)."""
    return [i for i, t in enumerate(transcript) if isinstance(t, AssistantTurn) and t.error is None]


def _reasoning_span(turn: AssistantTurn) -> tuple[int, int]:
    """Where the turn's reasoning lies in its text: its first scratchpad or <think> block, else the whole text (a
    model that thinks aloud before its call)."""
    for segment in segment_response(turn.content):
        if segment.kind in REASONING_KINDS:
            start = turn.content.index(segment.text, segment.start)
            return start, start + len(segment.text)
    return 0, len(turn.content)


def cut(study: CaseStudy[Any], transcript: Transcript, point: BranchPoint, drop: str | None = None) -> Prefix | None:
    """The parent's prefix at `point`, None when the sample never reached it (or its reasoning has no such
    sentence). A reasoning point cuts the decision turn's text after the F-th sentence of its reasoning, or before
    the first sentence matching the pattern; `drop` takes matching sentences out of that prefix."""
    if point.kind == "turn":
        positions = assistant_positions(transcript)
        if len(positions) < point.turn:
            return None
        return Prefix(transcript[: positions[point.turn - 1]], None, positions[point.turn - 1])
    decision = study.branch_point(transcript, point.name or study.decision_point)
    if decision is None:
        return None
    if point.kind == "named":
        return Prefix(transcript[:decision], None, decision)
    turn = transcript[decision]
    assert isinstance(turn, AssistantTurn)
    if turn.reasoning and not any(s.kind in REASONING_KINDS for s in segment_response(turn.content)):
        raise BranchError(
            "the decision turn's reasoning came in the provider's reasoning field, which no request can continue: "
            "branch at the turn instead (--at warning or turn:K)"
        )
    text = turn.content
    start, end = _reasoning_span(turn)
    spans = [(start + a, start + b) for a, b in sentence_spans(text[start:end])]
    if point.sentences is not None:
        if point.sentences > len(spans):
            return None
        at = spans[point.sentences][0] if point.sentences < len(spans) else end
    else:
        found = next((a for a, b in spans if re.search(point.pattern or "", text[a:b])), None)
        if found is None:
            return None
        at = found
    sentences = [text[a:b] for a, b in spans if b <= at]
    if drop is not None:
        sentences = [x for x in sentences if not re.search(drop, x)]
    return Prefix(transcript[:decision], text[:start] + "".join(sentences), decision)


def _replace(text: str, old: str, new: str, where: str) -> str:
    if old not in text:
        raise BranchError(f"--edit {where}: {old!r} is not in that text of the parent's prefix")
    return text.replace(old, new)


def apply(prefix: Prefix, intervention: Intervention) -> Prefix:
    """The prefix as the intervention changes it (a variant is the study's to apply: `CaseStudy.with_variant`)."""
    if intervention.edit is None:
        return prefix
    part, old, new = intervention.edit
    where = f"{part}:{old}=>{new}"
    if part == "reasoning":
        if prefix.prefill is None:
            raise BranchError(f"--edit {where}: editing the reasoning needs a reasoning branch point (reasoning:F)")
        return Prefix(prefix.turns, _replace(prefix.prefill, old, new, where), prefix.decision)
    turns = list(prefix.turns)
    kinds: tuple[type, ...] = {"system": (SystemTurn,), "user": (UserTurn,), "tool": (ToolTurn,)}.get(
        part, (ToolTurn, UserTurn)
    )
    targets = [i for i, t in enumerate(turns) if isinstance(t, kinds) and old in getattr(t, "content", "")]
    if part == "warning":  # the message that delivered it: the last one of the environment's carrying OLD
        targets = targets[-1:]
    if not targets:
        raise BranchError(f"--edit {where}: {old!r} is in no {part} message of the parent's prefix")
    for i in targets:
        t = turns[i]
        assert isinstance(t, SystemTurn | UserTurn | ToolTurn)
        turns[i] = replace(t, content=t.content.replace(old, new))
    return Prefix(Transcript(turns), prefix.prefill, prefix.decision)


# --- the job --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BranchItem:
    parent: SampleRecord
    intervention: Intervention
    k: int  # the resample's number
    prefix: Prefix
    factors: Mapping[str, Any]  # the cell's factors the child is scored as (a variant arm's, else the parent's)

    @property
    def sample_id(self) -> str:
        return f"{self.parent.sample_id}~{self.intervention.label}~{self.k}"


@dataclass
class Branch:
    """What a study's `continue_sample` is given: the parent, its (changed) prefix, the intervention, and the
    branch point, to continue from."""

    parent: SampleRecord
    prefix: Prefix
    intervention: Intervention
    point: BranchPoint


class BranchJob(Job[BranchItem, Scored]):
    """Resample each selected parent's prefix under each intervention, `n` times, into the child run."""

    releases_on_save = True
    kind = "run"

    def __init__(
        self, store: Store, run_id: str, study: CaseStudy[Any], models: dict[str, ChatModel], items: list[BranchItem],
        options: StudyOptions, point: BranchPoint,
    ) -> None:  # fmt: skip
        self.store, self.run_id, self.study, self.models, self.items = store, run_id, study, models, items
        self.options, self.point = options, point

    def plan(self) -> Plan[BranchItem]:
        done = self.store.done_sample_ids(self.run_id)
        todo = [i for i in self.items if i.sample_id not in done]
        by_model: dict[str, list[BranchItem]] = {}
        for item in todo:
            by_model.setdefault(item.parent.model, []).append(item)
        rows: dict[str, tuple[int, int]] = {}
        for item in self.items:
            total, finished = rows.get(self.row(item), (0, 0))
            rows[self.row(item)] = (total + 1, finished + (item.sample_id in done))
        return Plan(dict(by_model), len(self.items), len(self.items) - len(todo), rows)

    def key(self, item: BranchItem) -> str:
        return item.sample_id

    def row(self, item: BranchItem) -> str:
        return f"{item.parent.model} · {item.intervention.label}"

    async def work(self, item: BranchItem) -> Scored:
        branch = Branch(item.parent, item.prefix, item.intervention, self.point)
        cell = Cell(item.parent.cell, dict(item.factors))
        epoch = BRANCH_EPOCH_BASE + item.parent.epoch * 1000 + item.k
        result = await self.study.continue_sample(self.models[item.parent.model], branch, epoch, self.options)
        labels = {label.scorer: label for label in result.labels}
        return Scored(result, self.study.score(result.transcript, cell, self.options, labels))

    def save(self, item: BranchItem, outcome: Scored | Failure, meter: UsageMeter, seconds: float) -> None:
        factors = {**item.factors, "parent_sample": item.parent.sample_id, "parent_cell": item.parent.cell,
                   "intervention": item.intervention.label, "branch_point": self.point.text}  # fmt: skip
        cell = Cell(item.intervention.label, factors)
        record, labels = sample_record(item.sample_id, item.parent.model, cell, item.k, outcome, meter, seconds)
        self.store.add_sample(self.run_id, record, labels, release=self.owner)


# --- selecting parents ----------------------------------------------------------------------------------------


def _matches(record: SampleRecord, labels: Mapping[str, Any], where: Mapping[str, str]) -> bool:
    for column, wanted in where.items():
        value = record.scores.get(column, labels.get(column, record.factors.get(column)))
        written = "true" if value is True else "false" if value is False else str(value)
        if written != wanted:
            return False
    return True


def parse_where(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        column, sep, value = item.partition("=")
        if not sep or not column:
            raise BranchError(f"--where {item!r}: write COLUMN=VALUE, e.g. --where sabotaged=true")
        out[column.strip()] = value.strip()
    return out


def select_parents(
    store: Store, run_id: str, samples: Sequence[str] = (), where: Mapping[str, str] | None = None,
    limit: int | None = None,
) -> list[SampleRecord]:  # fmt: skip
    """The parent run's finished samples to branch: those named, those whose score or label columns have the
    values of `where` (written as in a cell id: true, false, numbers, text), at most `limit` of them."""
    labels = store.labels(run_id)
    wanted = set(samples)
    chosen = []
    columns: set[str] = set()  # what `where` could have named
    for record in store.iter_records(run_id, status="done"):
        columns.update(record.scores, record.factors, labels.get(record.sample_id, {}))
        if wanted and record.sample_id not in wanted:
            continue
        if where and not _matches(record, labels.get(record.sample_id, {}), where):
            continue
        chosen.append(record)
        if limit is not None and len(chosen) >= limit:
            break
    for column in where or {}:
        if not chosen and columns and column not in columns:
            raise BranchError(f"--where {column}=…: run {run_id} has no column {column!r}"
                              f"{did_you_mean(column, columns)}")  # fmt: skip
    missing = wanted - {r.sample_id for r in chosen}
    if missing and limit is None:
        raise BranchError(f"run {run_id} has no finished sample {sorted(missing)[0]!r}")
    return chosen


# --- the whole command ----------------------------------------------------------------------------------------


@dataclass
class BranchOutcome:
    run_id: str  # the child run
    parent_run: str
    parents: int
    skipped: dict[str, str] = field(default_factory=dict)  # parent sample -> why it was not branched
    outcome: JobOutcome | None = None
    planned: int = 0


def child_run_id(parent: str, point: BranchPoint, interventions: Sequence[Intervention]) -> str:
    digest = hashlib.sha256(json.dumps([point.text, [i.label for i in interventions]]).encode()).hexdigest()[:8]
    return f"{parent}~branch-{digest}"


@dataclass
class BranchPlan:
    """Everything a branch job will do, checked before any call (what `--dry-run` prices)."""

    run: RunInfo  # the parent run
    point: BranchPoint
    study: CaseStudy[Any]
    options: StudyOptions
    parents: list[SampleRecord]
    items: list[BranchItem]
    skipped: dict[str, str]  # parent sample -> why it was not branched
    analysis: dict[str, Any]  # the hypotheses the child is judged by

    @property
    def arms(self) -> list[str]:
        return sorted({i.intervention.label for i in self.items}, key=lambda label: label != RESAMPLE)


def plan_branch(
    store: Store,
    parent_run: str,
    *,
    at: str = "warning",
    interventions: Sequence[Intervention] = (),
    samples: Sequence[str] = (),
    where: Mapping[str, str] | None = None,
    limit: int | None = None,
    n: int = 1,
    models: Mapping[str, ChatModel] | None = None,
    hypotheses: Mapping[str, Any] | None = None,
) -> BranchPlan:
    """The branch asked for, checked before any call: the parents' prefixes under each intervention, whether each
    parent's model can continue a reasoning prefix, and the hypotheses (see `abranch_run`)."""
    point = BranchPoint.parse(at)
    run = store.get_run(parent_run)
    if run is None:
        raise BranchError(f"no run {parent_run!r} in {store.path}; `mislab runs` lists the runs there")
    if n < 1:
        raise BranchError(f"-n must be ≥ 1, got {n}")
    study = get_study(run.study)
    options = run_options(study, run.spec)
    arms = [Intervention.resample(), *[i for i in interventions if i.label != RESAMPLE]]
    if point.kind != "reasoning" and any(i.touches_reasoning for i in arms):
        raise BranchError("editing or dropping reasoning needs a reasoning branch point (--at reasoning:F)")
    analysis = branch_hypotheses(run.spec, hypotheses, f"branch run of {parent_run}")
    parents = select_parents(store, parent_run, samples, where, limit)
    if not parents:
        raise BranchError(f"no finished sample of run {parent_run} matches: nothing to branch")
    if point.kind == "reasoning":
        for name in sorted({p.model for p in parents}):
            if not _model_spec(run, name, models or {}).supports_prefill:
                raise BranchError(f"{name} does not continue a prefilled assistant turn: a reasoning branch needs "
                                  "one (the embedded model, vLLM, Anthropic's models do)")  # fmt: skip
    items: list[BranchItem] = []
    skipped: dict[str, str] = {}
    for parent in parents:
        prefixes = [(arm, cut(study, parent.transcript, point, arm.drop)) for arm in arms]
        if any(prefix is None for _, prefix in prefixes):  # every arm from the same prefix, or none
            skipped[parent.sample_id] = f"it never reached {point.text}"
            continue
        for arm, prefix in prefixes:
            assert prefix is not None
            changed = study.with_variant(prefix, parent, arm.variant, options) if arm.variant else prefix
            factors = study.variant_factors(parent.factors, arm.variant) if arm.variant else parent.factors
            items += [BranchItem(parent, arm, k, apply(changed, arm), factors) for k in range(n)]
    return BranchPlan(run, point, study, options, parents, items, skipped, analysis)


async def abranch_run(
    store: Store,
    parent_run: str,
    *,
    at: str = "warning",
    interventions: Sequence[Intervention] = (),
    samples: Sequence[str] = (),
    where: Mapping[str, str] | None = None,
    limit: int | None = None,
    n: int = 1,
    models: Mapping[str, ChatModel] | None = None,
    budget_usd: float | None = None,
    run_id: str | None = None,
    progress: bool = False,
    console: Console | None = None,
    cache: bool | str | Path | ResponseCache | None = None,
    hypotheses: Mapping[str, Any] | None = None,
    concurrency: int | None = None,
) -> BranchOutcome:
    plan = plan_branch(store, parent_run, at=at, interventions=interventions, samples=samples, where=where,
                       limit=limit, n=n, models=models, hypotheses=hypotheses)  # fmt: skip
    run, point, items, skipped = plan.run, plan.point, plan.items, plan.skipped
    if concurrency is not None and concurrency < 1:
        raise BranchError(f"--concurrency must be ≥ 1, got {concurrency}")
    rebuilt = _parent_models(run, {p.model for p in plan.parents}, models or {}, cache, concurrency)
    built = {name: model for name, (model, _) in rebuilt.items()}
    child = run_id or child_run_id(parent_run, point, [i.intervention for i in items])
    spec = {
        "branch": {"parent": parent_run, "at": point.text, "interventions": plan.arms, "n": n,
                   "where": dict(where or {}), "skipped": skipped,
                   "samples": [p.sample_id for p in plan.parents if p.sample_id not in skipped]},
        **plan.analysis,
        "n": n, "options": run.spec.get("options", {}), "seed": run.spec.get("seed", 0), "models": sorted(built),
        "model_settings": {name: settings for name, (_, settings) in rebuilt.items()},
        "plan": {"branch": [point.text, plan.arms, n, sorted(i.sample_id for i in items)]},
    }  # fmt: skip
    existing = store.get_run(child)
    if existing is None:
        store.create_run(child, plan.study.name, spec, {**run.prompts}, {m: b.describe() for m, b in built.items()},
                         __version__)  # fmt: skip
    elif existing.spec.get("plan") != spec["plan"]:
        raise BranchError(f"run {child!r} exists with another branch plan; give another --run-id")
    elif hypotheses is not None:  # analysis only: a rerun may bring other hypotheses without running anything
        store.update_run(child, spec={**existing.spec, **{k: spec.get(k) for k in ("hypotheses", "ablations")}})
    out = BranchOutcome(child, parent_run, len(plan.parents), skipped, planned=len(items))
    job = BranchJob(store, child, plan.study, built, items, plan.options, point)
    with cache_scope(True if cache is None else cache):
        out.outcome = await run_job(job, store, windows_for(built), budget=budget_usd, progress=progress,
                                    console=console, note="branches")  # fmt: skip
    status = "complete" if out.outcome.complete else "stopped" if out.outcome.stopped else "incomplete"
    store.update_run(child, status=status)
    return out


def read_hypotheses(path: str | Path) -> dict[str, Any]:
    """A hypotheses file (TOML with [hypotheses] and [[ablations]], as in an experiment file)."""
    import tomllib

    try:
        return tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise BranchError(f"--hypotheses {path}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise BranchError(f"--hypotheses {path}: not valid TOML: {exc}") from None


def branch_hypotheses(parent_spec: Mapping[str, Any], given: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """The hypotheses a branch run is judged by: those given (a file's [hypotheses] and [[ablations]]), else the
    parent's hypotheses with those of its ablations that name a branch intervention. Checked before any call."""
    from .hypotheses import is_branch_arm, parse_hypotheses

    if given is not None:
        declared = {k: given[k] for k in ("hypotheses", "ablations") if k in given}
        if parse_hypotheses(declared, where) is None:
            raise BranchError(f"{where}: the hypotheses file declares no [hypotheses] and [[ablations]]")
        return declared
    ablations = [a for a in parent_spec.get("ablations") or [] if isinstance(a, dict) and is_branch_arm(
        a.get("compare"))]  # fmt: skip
    return {"hypotheses": parent_spec["hypotheses"], "ablations": ablations} if ablations else {}


def _parent_settings(run: RunInfo, name: str) -> ModelSettings:
    """The settings a parent's model is rebuilt from: the run's own, with the endpoint the run recorded for a model
    it was given as an object on another server (whose settings name it only)."""
    settings = ModelSettings.model_validate({"name": name, **(run.spec.get("model_settings", {}).get(name) or {})})
    recorded = run.models.get(name) or {}
    if settings.base_url is None and recorded.get("provider") == "custom" and recorded.get("endpoint"):
        settings = settings.model_copy(update={"base_url": recorded["endpoint"]})
    return settings


def _model_spec(run: RunInfo, name: str, given: Mapping[str, ChatModel]) -> ModelSpec:
    """What a parent's model is (given, or as the parent run recorded it), without building it."""
    if name in given:
        return given[name].spec
    settings = _parent_settings(run, name)
    return parse_spec(settings.name, settings.base_url)


def _parent_models(
    run: RunInfo, names: set[str], given: Mapping[str, ChatModel], cache: Any, concurrency: int | None
) -> dict[str, tuple[ChatModel, dict[str, Any]]]:
    """The models that made the parents, each with the settings a child run records for it: rebuilt from the
    parent run's settings and the generation parameters it recorded (so a resample is sampled as its parent was),
    or given; `concurrency`, when set, in place of theirs."""
    built = {}
    for name in sorted(names):
        if name in given:
            built[name] = (get_model(given[name], cache=cache), run.spec.get("model_settings", {}).get(name) or {})
            continue
        settings = _parent_settings(run, name)
        if concurrency is not None:
            settings = settings.model_copy(update={"concurrency": concurrency})
        model = settings.build(cache=cache, concurrency=run.spec.get("concurrency"), local_options=run.spec.get(
            "local"), defaults=(run.models.get(name) or {}).get("defaults"))  # fmt: skip
        built[name] = (model, settings.model_dump(exclude_defaults=True))
    return built


def branch_run(store: Store | str | Path, parent_run: str, **kwargs: Any) -> BranchOutcome:
    """Branch stored samples of `parent_run` (see `abranch_run` and the module docstring); returns the child run's
    id and what happened. `models` may give the parents' models (e.g. pointed at another server)."""
    if not isinstance(store, Store):
        store = Store(store, create=False)
    return run_blocking(abranch_run(store, parent_run, **kwargs))


# --- what the children show -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    """An intervention's effect on a metric, pooled over parents: the mean over parents of (its rate − pure
    resampling's rate from the same prefix). The parent is the unit (resamples of one prefix are not independent):
    the variance of the mean is the larger of the parents' spread (s²/P) and their own resampling noise
    (Agresti–Caffo, so a prefix whose K resamples all agree still counts as K draws), with a t interval and test on
    P − 1 degrees of freedom (a normal one for a single parent): one statistic for the interval and the p."""

    intervention: str
    metric: str
    parents: int
    estimate: float
    low: float
    high: float
    pvalue: float
    # the resamples behind it, summed over the parents counted: k of n under the arm, under pure resampling
    k: int = 0
    n: int = 0
    k_base: int = 0
    n_base: int = 0

    def __str__(self) -> str:
        return difference_text(self.estimate, self.low, self.high)


def _applicable(df: pd.DataFrame, include_unfaithful: bool) -> pd.DataFrame:
    done = df[df["status"] == "done"]
    if not include_unfaithful and "replay_faithful" in done.columns:
        done = done[done["replay_faithful"].map(lambda v: v is not False)]
    return done


def resample_rates(df: pd.DataFrame, metric: str, include_unfaithful: bool = False) -> pd.DataFrame:
    """Per parent sample and intervention: the metric's k/n over the resamples, with its Wilson interval."""
    rows = []
    for (parent, arm), group in _applicable(df, include_unfaithful).groupby(["parent_sample", "intervention"],
                                                                            sort=False):  # fmt: skip
        values = [bool(v) for v in group[metric] if isinstance(v, bool)]
        r: Rate = rate(sum(values), len(values))
        rows.append({"parent_sample": parent, "intervention": arm, "k": r.k, "n": r.n, "rate": r.rate,
                     "low": r.low, "high": r.high, "display": str(r)})  # fmt: skip
    return pd.DataFrame(rows)


def _noise(k: int, n: int) -> float:
    """Agresti–Caffo's variance of a resample rate (one success and one failure added)."""
    p = (k + 1) / (n + 2)
    return p * (1 - p) / (n + 2)


def branch_effects(df: pd.DataFrame, metric: str, include_unfaithful: bool = False) -> list[Effect]:
    """Each intervention against pure resampling on `metric`, pooled over the parents that have both (see
    `Effect`). Samples whose replay diverged are left out unless `include_unfaithful`."""
    from scipy import stats

    rates = resample_rates(df, metric, include_unfaithful)
    if rates.empty or RESAMPLE not in set(rates["intervention"]):
        return []
    by = {(r["parent_sample"], r["intervention"]): r for r in rates.to_dict("records")}
    out = []
    for arm in [a for a in dict.fromkeys(rates["intervention"]) if a != RESAMPLE]:
        pairs = [(by[p, arm], by[p, RESAMPLE]) for p, a in by if a == arm and (p, RESAMPLE) in by]
        pairs = [(x, y) for x, y in pairs if x["n"] and y["n"]]
        if not pairs:
            continue
        d = [x["rate"] - y["rate"] for x, y in pairs]
        count = len(d)
        mean = sum(d) / count
        spread = sum((v - mean) ** 2 for v in d) / (count - 1) if count > 1 else 0.0
        noise = sum(_noise(x["k"], x["n"]) + _noise(y["k"], y["n"]) for x, y in pairs) / count
        se = math.sqrt(max(spread, noise) / count)
        law = stats.t(count - 1) if count > 1 else stats.norm()
        half = float(law.ppf(0.975)) * se
        p = float(2 * law.sf(abs(mean) / se)) if se else 1.0
        counts = [sum(int(pair[i][c]) for pair in pairs) for i in (0, 1) for c in ("k", "n")]
        out.append(Effect(arm, metric, count, mean, max(mean - half, -1.0), min(mean + half, 1.0), p, *counts))
    return out


__all__ = [
    "RESAMPLE", "Branch", "BranchError", "BranchOutcome", "BranchPoint", "Effect", "Intervention", "Prefix",
    "abranch_run", "branch_effects", "branch_run", "cut", "resample_rates", "select_parents",
]  # fmt: skip
