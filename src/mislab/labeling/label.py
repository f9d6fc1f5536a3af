"""Labelling stored runs after the fact: a judge model answers a rubric's question about each finished sample's
stored transcript. The subject model is never called again. Each verdict is stored as a label (value, the
judge's explanation, its votes, calls and cost); labels are metric columns everywhere a score is."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..models import (
    ChatModel,
    FatalModelError,
    ModelError,
    ResponseCache,
    RunStopped,
    cache_scope,
    get_model,
    metered,
    stopped_by,
)
from ..runner import run_blocking
from ..stats import cohen_kappa, fleiss_kappa
from ..store import Label, SampleRecord, Store
from .answers import PARSERS, parse_answer, parse_confidence, parse_criteria, parse_ratings
from .rubric import COMBINATIONS, Rubric, load_rubric
from .views import transcript_view


class LabelError(ValueError):
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
    return (None if None in ratings.values() else combine(ratings)), ratings  # type: ignore[arg-type]


async def judge_view(judge: ChatModel, rubric: Rubric, view: str | None, votes: int, threshold: float) -> Verdict:
    """Ask the judge `votes` times (temperature 1 when voting, 0 otherwise); distinct sample indices keep the
    votes apart in the response cache. The one way every rubric is judged, after the fact or during a run."""
    if view is None:
        return Verdict(rubric.missing, [], [], [], applies=False)
    prompt = rubric.prompt()
    params = {"temperature": 1.0 if votes > 1 else 0.0, "max_tokens": rubric.max_tokens}
    with metered() as meter:
        completions = await asyncio.gather(
            *(judge.generate(prompt.messages(view), sample_index=i, **params) for i in range(votes))
        )
    texts = [c.text if not c.error else f"[judge call failed: {c.error}]" for c in completions]
    read = [read_vote(rubric, prompt.parser, t) for t in texts]
    confidences = [parse_confidence(t) if rubric.answer == "yes_no" and not prompt.parser else None for t in texts]
    verdict = Verdict(None, [v for v, _ in read], confidences, texts, parts=[p for _, p in read if p])
    verdict.calls, verdict.cost = meter.calls - meter.cached_calls, meter.cost
    if rubric.answer == "score":
        readable = [float(v) for v in verdict.votes if v is not None]
        verdict.value = sum(readable) / len(readable) if readable else None
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
    stopped: str | None = None
    failed: list[str] = field(default_factory=list)  # samples whose judge calls failed for good (unlabelled)
    vote_kappa: float | None = None  # Fleiss' κ between votes, over samples with every vote readable


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


def verdict_label(
    sample_id: str, column: str, rubric: Rubric, judge: str, verdict: Verdict, made: dict[str, Any]
) -> Label:
    """A verdict as a stored label: its value, the judge's answers as explanation, and how it was made."""
    meta = {
        **made, "rubric_title": rubric.title, "source": rubric.source, "answer": rubric.answer,
        "votes_cast": verdict.votes, "fraction": verdict.fraction, "score": verdict.score,
        "shares": verdict.shares, "calls": verdict.calls, "cost": verdict.cost, "applies": verdict.applies,
    }  # fmt: skip
    explanation = (
        "\n\n".join(f"--- vote {i + 1} ---\n{t}" if len(verdict.texts) > 1 else t for i, t in enumerate(verdict.texts))
        or "not applicable: the transcript has none of the parts this rubric reads"
    )
    return Label(sample_id, column, verdict.value, explanation, judge, meta)


def _check_column(
    store: Store, run_id: str, column: str, made: dict[str, Any], redo: bool, records: list[SampleRecord]
) -> set[str]:
    """Samples already labelled under `column` by this rubric and judge (a resume skips them). A column made by
    another rubric, judge or vote count is refused unless `redo`, and so is the name of a score column."""
    if any(column in r.scores for r in records):
        raise LabelError(f"{column!r} is already a score column of run {run_id}; give the label another --name")
    done = set()
    for label in store.label_details(run_id):
        if label.scorer != column:
            continue
        theirs = {k: label.meta.get(k) for k in made}
        if theirs != made and not redo:
            changed = ", ".join(f"{k} {theirs[k]!r} → {made[k]!r}" for k in made if theirs[k] != made[k])
            raise LabelError(
                f"run {run_id} already has a label column {column!r} made differently ({changed}); "
                f"give another --name, or --redo to replace it"
            )
        if theirs == made:
            done.add(label.sample_id)
    return set() if redo else done


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
) -> LabelOutcome:
    run = store.get_run(run_id)
    if run is None:
        raise LabelError(f"no run {run_id!r} in {store.path}; `mislab runs` lists the runs there")
    votes = votes or rubric.votes
    threshold = vote_threshold(rubric, threshold)
    if votes < 1 or not 0 <= threshold <= 1:
        raise LabelError(f"votes must be ≥ 1 and threshold in [0, 1], got votes={votes}, threshold={threshold}")
    column = column or rubric.id
    made = signature(rubric, judge.name, votes, threshold)
    all_records = store.sample_records(run_id)
    done = _check_column(store, run_id, column, made, redo, all_records)
    records = [r for r in all_records if r.status == "done"]
    todo = [r for r in records if r.sample_id not in done]
    outcome = LabelOutcome(run_id, column, rubric, judge.name, len(records), skipped=len(records) - len(todo))
    stop = asyncio.Event()
    prompts = run.prompts
    # The judge's exact prompt is kept with the run, as every prompt a run used is.
    store.update_run(run_id, prompts={rubric.prompt_id: rubric.describe()})

    async def one(record: SampleRecord) -> None:
        if stop.is_set():
            return
        warning = (prompts.get(record.cell) or {}).get("warning") if isinstance(prompts, dict) else None
        view = transcript_view(record.transcript, rubric.reads, after_warning=rubric.after_warning, warning=warning)
        with metered() as paid:
            try:
                verdict = await judge_view(judge, rubric, view, votes, threshold)
            except RunStopped:  # the budget was reached while it waited: left for a resume
                return
            except FatalModelError as exc:  # no judgement can get past this (bad key, unknown model …)
                outcome.stopped = f"judge error: {exc}"
                stop.set()
                return
            except ModelError as exc:  # this transcript's judge calls failed for good: no label, a resume retries
                outcome.failed.append(f"{record.sample_id}: {exc}")
                return
            finally:
                outcome.cost += paid.cost  # every billed judge answer counts, whatever became of the label
        store.add_labels(run_id, [verdict_label(record.sample_id, column, rubric, judge.name, verdict, made)])
        outcome.labelled += 1
        outcome.not_applicable += not verdict.applies
        outcome.unparseable += verdict.applies and verdict.value is None
        if budget_usd is not None and outcome.cost >= budget_usd and not stop.is_set():
            outcome.stopped = f"budget of ${budget_usd:.2f} reached"
            stop.set()

    with stopped_by(stop):  # once stopped, no judge call goes out
        await asyncio.gather(*(one(r) for r in todo))
    outcome.vote_kappa = vote_agreement(store, run_id, column) if votes > 1 else None
    return outcome


def label_run(
    store: Store | str | Path,
    run_id: str,
    judge: str | ChatModel,
    rubric: str | Path | Rubric,
    *,
    column: str | None = None,
    votes: int | None = None,
    threshold: float | None = None,
    budget_usd: float | None = None,
    redo: bool = False,
    cache: bool | str | Path | ResponseCache = True,
) -> LabelOutcome:
    """Label every finished sample of a stored run with a rubric (by id or file) and a judge model (spec or
    `ChatModel`). Rerunning resumes: samples already labelled the same way are skipped."""
    if not isinstance(store, Store):
        store = Store(store, create=False)
    judge_model = get_model(judge, cache=cache)
    with cache_scope(cache):
        return run_blocking(
            alabel_run(
                store, run_id, judge_model, load_rubric(rubric), column=column, votes=votes, threshold=threshold,
                budget_usd=budget_usd, redo=redo,
            )
        )  # fmt: skip


def judge_text(
    judge: str | ChatModel,
    rubric: str | Path | Rubric,
    text: str,
    *,
    votes: int | None = None,
    threshold: float | None = None,
    cache: bool | str | Path | ResponseCache = True,
) -> Verdict:
    """One judgement of a piece of text (a scratchpad, a reply) by a rubric, e.g.
    `judge_text("openai/gpt-4o", "af_compliance", reply).value` — ARENA's COMPLY/REFUSE judge in one call."""
    rubric = load_rubric(rubric)
    threshold = vote_threshold(rubric, threshold)
    model = get_model(judge, cache=cache)
    with cache_scope(cache):
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
