"""Labelling stored runs after the fact: a judge model answers a rubric's question about each finished sample's
stored transcript. The subject model is never called again. Each verdict is stored as a label (value, the
judge's explanation, its votes, calls and cost); labels are metric columns everywhere a score is."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from rich.console import Console

from ..errors import MislabError
from ..jobs import Failure, Job, Plan, run_job
from ..models import (
    ChatModel,
    Completion,
    ModelSettings,
    ResponseCache,
    UsageMeter,
    cache_scope,
    get_model,
    metered,
)
from ..options import parse
from ..runner import run_blocking
from ..stats import cohen_kappa, fleiss_kappa
from ..store import Label, SampleRecord, Store
from .answers import PARSERS, parse_answer, parse_confidence, parse_criteria, parse_ratings
from .rubric import COMBINATIONS, Rubric, load_rubric
from .views import transcript_view


class LabelError(MislabError, ValueError):
    """A labelling request that cannot be carried out as asked (one line, what to do)."""


Vote = bool | float | None


@dataclass
class Verdict:
    """One sample's judgement. `value` is None when the rubric did not apply (nothing to read, and the rubric
    sets no `missing` value) or no vote could be read. Yes/no and criteria rubrics give a bool (the share of
    readable yes-votes against the threshold); score rubrics a number (the mean of readable votes)."""

    value: bool | float | None
    votes: list[Vote]
    confidences: list[float | None]
    texts: list[str]
    calls: int = 0
    cost: float = 0.0
    parts: list[dict[str, Any]] = field(default_factory=list)  # per vote: each criterion or item as read
    applies: bool = True  # False: the transcript had nothing the rubric reads (no judge call)

    @property
    def fraction(self) -> float | None:
        """Share of readable votes that said yes (yes/no and criteria rubrics)."""
        readable = [v for v in self.votes if v is not None]
        if not readable or not all(isinstance(v, bool) for v in readable):
            return None
        return sum(readable) / len(readable)

    @property
    def score(self) -> float | None:
        """How strongly the judge says yes, for AUROC: the mean stated confidence (yes/no rubrics), or the share
        of yes-votes (criteria rubrics, as the Revisited classifier is scored); None if neither."""
        seen = [c for c in self.confidences if c is not None]
        if seen:
            return sum(seen) / len(seen)
        return self.fraction if self.parts else None

    @property
    def unparseable(self) -> int:
        return sum(v is None for v in self.votes)

    @property
    def shares(self) -> dict[str, float | None]:
        """Per criterion, the share of votes (where it was read) that said yes; per rated item, its mean."""
        out: dict[str, float | None] = {}
        for name in self.parts[0] if self.parts else ():
            seen = [float(p[name]) for p in self.parts if p.get(name) is not None]
            out[name] = sum(seen) / len(seen) if seen else None
        return out


def read_vote(rubric: Rubric, parser: str | None, text: str) -> tuple[Vote, dict[str, Any]]:
    """One judge answer: the vote it casts, and each criterion or rated item as read (None where unreadable).
    A criteria vote needs every criterion read (`verdict = "all"`) or its deciding one; a score vote needs
    every item."""
    if rubric.answer == "yes_no":
        return (PARSERS[parser] if parser else parse_answer)(text), {}
    if rubric.answer == "criteria":
        parts = PARSERS[parser](text) if parser else parse_criteria(text, rubric.names)
        parts = {name: parts.get(name) for name in rubric.names}
        if rubric.verdict != "all":
            return parts[rubric.verdict], parts
        read = [v for v in parts.values() if v is not None]
        return (all(read) if len(read) == len(parts) else None), parts
    ratings = parse_ratings(text, {t.name: (t.low, t.high) for t in rubric.items})
    combine = COMBINATIONS[str(rubric.combine)][0]
    return (None if None in ratings.values() else combine(ratings)), ratings  # type: ignore[arg-type]  # no None: checked first


async def judge_view(judge: ChatModel, rubric: Rubric, view: str | None, votes: int, threshold: float) -> Verdict:
    """Ask the judge `votes` times (temperature 1 when voting, 0 otherwise); distinct sample indices keep the
    votes apart in the response cache. The one way every rubric is judged, after the fact or during a run."""
    if view is None:
        return Verdict(rubric.missing, [], [], [], applies=False)
    prompt = rubric.prompt()
    params: dict[str, Any] = {"temperature": 1.0 if votes > 1 else 0.0, "max_tokens": rubric.max_tokens}

    def readable(completion: Completion) -> bool:  # an unreadable cached answer is asked again
        return not completion.error and read_vote(rubric, prompt.parser, completion.text)[0] is not None

    with metered() as meter:
        completions = await asyncio.gather(
            *(judge.generate(prompt.messages(view), sample_index=i, reuse=readable, **params) for i in range(votes))
        )
    texts = [c.text if not c.error else f"[judge call failed: {c.error}]" for c in completions]
    read = [read_vote(rubric, prompt.parser, t) for t in texts]
    confidences = [parse_confidence(t) if rubric.answer == "yes_no" and not prompt.parser else None for t in texts]
    verdict = Verdict(None, [v for v, _ in read], confidences, texts, parts=[p for _, p in read if p])
    verdict.calls, verdict.cost = meter.calls - meter.cached_calls, meter.cost
    if rubric.answer == "score":
        scores = [float(v) for v in verdict.votes if v is not None]
        verdict.value = sum(scores) / len(scores) if scores else None
    elif verdict.fraction is not None:
        verdict.value = verdict.fraction >= threshold
    return verdict


@dataclass
class LabelOutcome:
    run_id: str
    column: str
    rubric: Rubric
    judge: str
    planned: int
    skipped: int = 0  # already labelled with this rubric and judge
    labelled: int = 0
    not_applicable: int = 0
    unparseable: int = 0
    cost: float = 0.0
    calls: int = 0
    seconds: float = 0.0
    stopped: str | None = None
    failed: list[str] = field(default_factory=list)  # samples whose judge calls failed for good (unlabelled)
    unreadable_examples: list[str] = field(default_factory=list)  # raw judge answers that could not be read
    vote_kappa: float | None = None  # Fleiss' κ between votes, over samples with every vote readable
    fatal: bool = False
    rescored: dict[str, str] = field(default_factory=dict)  # scores that follow from labels, as changed by them


UNREADABLE_EXAMPLES = 3


def vote_threshold(
    rubric: Rubric, threshold: float | None, *, advice: str = "--threshold (a share of yes-votes) does not apply"
) -> float:
    """The share of readable yes-votes that makes a yes: `threshold`, else the rubric's. A score rubric's label is
    a number that no share of votes cuts, so a threshold given with one is refused, with `advice`."""
    if threshold is not None and rubric.answer == "score":
        raise LabelError(f"rubric {rubric.id!r} gives a score: {advice}")
    return rubric.threshold if threshold is None else threshold


def signature(rubric: Rubric, judge: str, votes: int, threshold: float) -> dict[str, Any]:
    """What makes a label column: a resume adds to it only labels made the same way."""
    return {"rubric": rubric.id, "prompt_id": rubric.prompt_id, "judge": judge, "votes": votes,
            "threshold": threshold}  # fmt: skip


UNREADABLE = "the judge's answer could not be read"
NOTHING_TO_READ = "the transcript has none of the parts this rubric reads"


def verdict_label(
    sample_id: str, column: str, rubric: Rubric, judge: str, verdict: Verdict, made: dict[str, Any]
) -> Label:
    """A verdict as a stored label: its value, the judge's answers as explanation, and how it was made (with why
    it has no value, when it has none)."""
    meta = {
        **made, "rubric_title": rubric.title, "source": rubric.source, "answer": rubric.answer,
        "votes_cast": verdict.votes, "fraction": verdict.fraction, "score": verdict.score,
        "shares": verdict.shares, "calls": verdict.calls, "cost": verdict.cost, "applies": verdict.applies,
    }  # fmt: skip
    if verdict.value is None:
        meta["na_reason"] = UNREADABLE if verdict.applies else NOTHING_TO_READ
    explanation = (
        "\n\n".join(f"--- vote {i + 1} ---\n{t}" if len(verdict.texts) > 1 else t for i, t in enumerate(verdict.texts))
        or f"not applicable: {NOTHING_TO_READ}"
    )
    return Label(sample_id, column, verdict.value, explanation, judge, meta)


class LabelJob(Job[SampleRecord, Verdict]):
    """Label a run's finished samples: one judgement (of `votes` calls) per sample, stored as it comes."""

    def __init__(
        self, store: Store, run_id: str, judge: ChatModel, rubric: Rubric, column: str, votes: int, threshold: float,
        redo: bool, outcome: LabelOutcome,
    ) -> None:  # fmt: skip
        self.store, self.run_id, self.judge, self.rubric, self.column = store, run_id, judge, rubric, column
        self.votes, self.threshold, self.redo, self.outcome = votes, threshold, redo, outcome
        self.kind = f"label:{column}"
        self.made = signature(rubric, judge.name, votes, threshold)
        run = store.get_run(run_id)
        self.prompts = run.prompts if run is not None and isinstance(run.prompts, dict) else {}

    def _settled(self, meta: dict[str, Any], value: Any) -> bool:
        """A label made the same way, with a readable verdict or nothing to read: a resume skips its sample (and
        asks again where the judge's answer could not be read)."""
        return {k: meta.get(k) for k in self.made} == self.made and (
            value is not None or meta.get("na_reason") == NOTHING_TO_READ
        )

    def plan(self) -> Plan[SampleRecord]:
        found = {} if self.redo else self.store.label_signatures(self.run_id, self.column)
        done = {sid for sid, (meta, value) in found.items() if self._settled(meta, value)}
        total = self.store.count_samples(self.run_id, "done")
        items = (r for r in self.store.iter_records(self.run_id, status="done") if r.sample_id not in done)
        return Plan({self.judge.name: items}, total, len(done))

    def key(self, item: SampleRecord) -> str:
        return item.sample_id

    def is_done(self, item: SampleRecord) -> bool:
        found = self.store.label_signatures(self.run_id, self.column, item.sample_id).get(item.sample_id)
        return found is not None and self._settled(*found) and not self.redo

    async def work(self, item: SampleRecord) -> Verdict:
        warning = (self.prompts.get(item.cell) or {}).get("warning")
        view = transcript_view(item.transcript, self.rubric.reads, after_warning=self.rubric.after_warning,
                               warning=warning)  # fmt: skip
        return await judge_view(self.judge, self.rubric, view, self.votes, self.threshold)

    def save(self, item: SampleRecord, outcome: Verdict | Failure, meter: UsageMeter, seconds: float) -> None:
        out = self.outcome
        if isinstance(outcome, Failure):  # no label: a resume asks again
            if outcome.status == "error":
                out.failed.append(f"{item.sample_id}: {outcome.error}")
            return
        label = verdict_label(item.sample_id, self.column, self.rubric, self.judge.name, outcome, self.made)
        self.store.add_labels(self.run_id, [label])
        out.labelled += 1
        out.not_applicable += not outcome.applies
        if outcome.applies and outcome.value is None:
            out.unparseable += 1
            if len(out.unreadable_examples) < UNREADABLE_EXAMPLES and outcome.texts:
                out.unreadable_examples.append(f"{item.sample_id}: {outcome.texts[0][:200]}")


def _check_column(store: Store, run_id: str, column: str, made: dict[str, Any], redo: bool) -> None:
    """A column made by another rubric, judge or vote count is refused unless `redo`, and so is the name of a score
    column."""
    first = store.first_sample_scores(run_id)
    if first is not None and column in first:
        raise LabelError(f"{column!r} is already a score column of run {run_id}; give the label another --name")
    for meta, _ in store.label_signatures(run_id, column).values():
        theirs = {k: meta.get(k) for k in made}
        if theirs != made and not redo:
            changed = ", ".join(f"{k} {theirs[k]!r} → {made[k]!r}" for k in made if theirs[k] != made[k])
            raise LabelError(
                f"run {run_id} already has a label column {column!r} made differently ({changed}); "
                f"give another --name, or --redo to replace it"
            )


def default_column(study: str, rubric: Rubric) -> str:
    """The column a rubric's labels fill in a run: the study's own judge metric for its rubrics (so a label made
    after the run fills the same metric as the in-run judge), else the rubric's id."""
    from ..study import get_study

    try:
        return get_study(study).label_column(rubric.id) or rubric.id
    except MislabError:  # the run's study is not installed: its labels are plain columns
        return rubric.id


async def alabel_run(
    store: Store,
    run_id: str,
    judge: ChatModel,
    rubric: Rubric,
    *,
    column: str | None = None,
    votes: int | None = None,
    threshold: float | None = None,
    budget_usd: float | None = None,
    redo: bool = False,
    concurrency: int | None = None,
    progress: bool = False,
    console: Console | None = None,
) -> LabelOutcome:
    """Label a run's finished samples on the job engine: `concurrency` judge calls in flight (default: the judge's
    own limit), budget, progress, claims and resume as a run has them."""
    run = store.get_run(run_id)
    if run is None:
        raise LabelError(f"no run {run_id!r} in {store.path}; `mislab runs` lists the runs there")
    votes = votes or rubric.votes
    threshold = vote_threshold(rubric, threshold)
    if votes < 1 or not 0 <= threshold <= 1:
        raise LabelError(f"votes must be ≥ 1 and threshold in [0, 1], got votes={votes}, threshold={threshold}")
    if concurrency is not None and concurrency < 1:
        raise LabelError(f"--concurrency must be ≥ 1, got {concurrency}")
    column = column or default_column(run.study, rubric)
    made = signature(rubric, judge.name, votes, threshold)
    _check_column(store, run_id, column, made, redo)
    if redo:
        store.delete_labels(run_id, column)
    if concurrency is not None:
        judge = judge.with_concurrency(concurrency)
    outcome = LabelOutcome(run_id, column, rubric, judge.name, 0)
    # The judge's exact prompt is kept with the run, as every prompt a run used is.
    store.update_run(run_id, prompts={rubric.prompt_id: rubric.describe()})
    job = LabelJob(store, run_id, judge, rubric, column, votes, threshold, redo, outcome)
    # Samples in flight: enough to keep the judge's calls busy (each sample asks `votes` calls at once).
    window = max(1, -(-2 * judge.max_concurrency // votes))
    result = await run_job(job, store, {judge.name: window}, budget=budget_usd, progress=progress, console=console,
                           note=f"label {column}")  # fmt: skip
    outcome.planned, outcome.skipped, outcome.cost = result.planned, result.skipped, result.cost
    outcome.calls, outcome.seconds, outcome.fatal = result.calls, result.seconds, result.fatal
    outcome.stopped = result.stopped
    outcome.vote_kappa = vote_agreement(store, run_id, column) if votes > 1 else None
    if outcome.labelled and column in _scored_labels(run.study):
        from ..rescore import arescore_run  # scores that follow from this label (a primary classifier) follow it

        outcome.rescored = {k: str(c) for k, c in (await arescore_run(store, run_id)).changes.items()}
    return outcome


def _scored_labels(study: str) -> frozenset[str]:
    from ..study import get_study

    try:
        return get_study(study).scored_labels
    except MislabError:  # the run's study is not installed: its labels are plain columns
        return frozenset()


class JudgeFile(BaseModel):
    """A file of judge settings: `[judge]` with the keys of a model of an experiment file."""

    model_config = ConfigDict(extra="forbid", strict=True)
    judge: ModelSettings


def judge_model(
    judge: str | Path | ChatModel,
    base_url: str | None = None,
    *,
    cache: bool | str | Path | ResponseCache | None = None,
) -> ChatModel:
    """A judge: a model spec (with `base_url` for any OpenAI-compatible server), a `ChatModel`, or a TOML file whose
    `[judge]` table gives a model's settings (base_url, api_key_env, concurrency, timeout, extra_body …)."""
    if isinstance(judge, ChatModel):
        return get_model(judge, cache=cache)
    path = Path(judge)
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise LabelError(f"cannot read judge settings {path}: {exc}") from exc
        settings = parse(JudgeFile, data, str(path)).judge
        if base_url is not None:
            settings = settings.model_copy(update={"base_url": base_url})
        return settings.build(cache=cache)
    return get_model(str(judge), base_url, cache=cache)


def label_run(
    store: Store | str | Path,
    run_id: str,
    judge: str | Path | ChatModel,
    rubric: str | Path | Rubric,
    *,
    column: str | None = None,
    votes: int | None = None,
    threshold: float | None = None,
    budget_usd: float | None = None,
    redo: bool = False,
    cache: bool | str | Path | ResponseCache | None = None,
    concurrency: int | None = None,
    progress: bool = False,
    console: Console | None = None,
) -> LabelOutcome:
    """Label every finished sample of a stored run with a rubric (by id or file) and a judge model (spec, judge
    settings file or `ChatModel`, see `judge_model`). Rerunning resumes: samples already labelled the same way are
    skipped; those whose judge answer could not be read are asked again. `cache`: None keeps a given model's own
    cache (a named one gets the user cache); True, False or a path applies to the judge either way. `concurrency`:
    judge calls in flight (default: the judge's own setting)."""
    if not isinstance(store, Store):
        store = Store(store, create=False)
    model = judge_model(judge, cache=cache)
    with cache_scope(True if cache is None else cache):
        return run_blocking(
            alabel_run(
                store, run_id, model, load_rubric(rubric), column=column, votes=votes, threshold=threshold,
                budget_usd=budget_usd, redo=redo, concurrency=concurrency, progress=progress, console=console,
            )
        )  # fmt: skip


def judge_text(
    judge: str | ChatModel,
    rubric: str | Path | Rubric,
    text: str,
    *,
    votes: int | None = None,
    threshold: float | None = None,
    cache: bool | str | Path | ResponseCache | None = None,
) -> Verdict:
    """One judgement of a piece of text (a scratchpad, a reply) by a rubric, e.g.
    `judge_text("openai/gpt-4o", "af_compliance", reply).value` — ARENA's COMPLY/REFUSE judge in one call."""
    rubric = load_rubric(rubric)
    threshold = vote_threshold(rubric, threshold)
    model = get_model(judge, cache=cache)
    return run_blocking(judge_view(model, rubric, text, votes or rubric.votes, threshold))


def vote_agreement(store: Store, run_id: str, column: str) -> float | None:
    """Fleiss' κ between the votes of a voting judge, over samples whose votes were all readable."""
    ratings = [
        label.meta["votes_cast"]
        for label in store.label_details(run_id)
        if label.scorer == column
        and label.meta.get("votes_cast")
        and all(isinstance(v, bool) for v in label.meta["votes_cast"])
    ]
    if len({len(r) for r in ratings}) != 1 or len(ratings) < 2:
        return None
    return fleiss_kappa(ratings)


def label_columns(store: Store, run_id: str) -> dict[str, dict[str, Any]]:
    """The rubric label columns of a run: column → what made it (rubric, judge, votes, source)."""
    out: dict[str, dict[str, Any]] = {}
    for label in store.label_details(run_id):
        if label.meta.get("rubric") and label.scorer not in out:
            out[label.scorer] = {k: label.meta.get(k) for k in ("rubric", "rubric_title", "prompt_id", "judge",
                                                                 "votes", "threshold", "source", "answer")}  # fmt: skip
    return out


def judges_agreement(store: Store, run_id: str, columns: Sequence[str]) -> float | None:
    """Cohen's κ between two label columns (e.g. one rubric, two judges) over samples both read."""
    if len(columns) != 2:
        raise LabelError("agreement between judges compares exactly two label columns")
    values = store.labels(run_id)
    pairs = [(v[columns[0]], v[columns[1]]) for v in values.values()
             if v.get(columns[0]) is not None and v.get(columns[1]) is not None]  # fmt: skip
    if len(pairs) < 2:
        return None
    a, b = zip(*pairs, strict=True)
    return cohen_kappa(list(a), list(b))
