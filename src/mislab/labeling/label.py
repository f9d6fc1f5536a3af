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
from .answers import parse_answer, parse_confidence
from .rubric import Rubric, load_rubric
from .views import transcript_view

JUDGE_MAX_TOKENS = 600


class LabelError(ValueError):
    """A labelling request that cannot be carried out as asked (one line, what to do)."""


@dataclass
class Verdict:
    """One sample's judgement. `value` is None when the rubric did not apply (nothing to read) or no vote could
    be read."""

    value: bool | None
    votes: list[bool | None]
    confidences: list[float | None]
    texts: list[str]
    calls: int = 0
    cost: float = 0.0

    @property
    def fraction(self) -> float | None:
        readable = [v for v in self.votes if v is not None]
        return sum(readable) / len(readable) if readable else None

    @property
    def score(self) -> float | None:
        """Mean stated confidence that the answer is yes (for AUROC); None if the judge gave none."""
        seen = [c for c in self.confidences if c is not None]
        return sum(seen) / len(seen) if seen else None


def judge_messages(rubric: Rubric, view: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": rubric.system_prompt},
        {"role": "user", "content": f"<transcript>\n{view}\n</transcript>\n\nQuestion: {rubric.question}"},
    ]


async def judge_view(judge: ChatModel, rubric: Rubric, view: str | None, votes: int, threshold: float) -> Verdict:
    """Ask the judge `votes` times (temperature 1 when voting, 0 otherwise); distinct sample indices keep the
    votes apart in the response cache."""
    if view is None:
        return Verdict(None, [], [], [])
    params = {"temperature": 1.0 if votes > 1 else 0.0, "max_tokens": JUDGE_MAX_TOKENS}
    with metered() as meter:
        completions = await asyncio.gather(
            *(judge.generate(judge_messages(rubric, view), sample_index=i, **params) for i in range(votes))
        )
    texts = [c.text if not c.error else f"[judge call failed: {c.error}]" for c in completions]
    verdict = Verdict(None, [parse_answer(t) for t in texts], [parse_confidence(t) for t in texts], texts)
    verdict.calls, verdict.cost = meter.calls - meter.cached_calls, meter.cost
    if verdict.fraction is not None:
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


def _signature(rubric: Rubric, judge: ChatModel, votes: int, threshold: float) -> dict[str, Any]:
    return {"rubric": rubric.id, "prompt_id": rubric.prompt_id, "judge": judge.name, "votes": votes,
            "threshold": threshold}  # fmt: skip


def _check_column(
    store: Store, run_id: str, column: str, signature: dict[str, Any], redo: bool, records: list[SampleRecord]
) -> set[str]:
    """Samples already labelled under `column` by this rubric and judge (a resume skips them). A column made by
    another rubric, judge or vote count is refused unless `redo`, and so is the name of a score column."""
    if any(column in r.scores for r in records):
        raise LabelError(f"{column!r} is already a score column of run {run_id}; give the label another --name")
    done = set()
    for label in store.label_details(run_id):
        if label.scorer != column:
            continue
        theirs = {k: label.meta.get(k) for k in signature}
        if theirs != signature and not redo:
            changed = ", ".join(f"{k} {theirs[k]!r} → {signature[k]!r}" for k in signature if theirs[k] != signature[k])
            raise LabelError(
                f"run {run_id} already has a label column {column!r} made differently ({changed}); "
                f"give another --name, or --redo to replace it"
            )
        if theirs == signature:
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
    threshold = rubric.threshold if threshold is None else threshold
    if votes < 1 or not 0 <= threshold <= 1:
        raise LabelError(f"votes must be ≥ 1 and threshold in [0, 1], got votes={votes}, threshold={threshold}")
    column = column or rubric.id
    signature = _signature(rubric, judge, votes, threshold)
    all_records = store.sample_records(run_id)
    done = _check_column(store, run_id, column, signature, redo, all_records)
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
        meta = {
            **signature, "rubric_title": rubric.title, "source": rubric.source, "votes_cast": verdict.votes,
            "fraction": verdict.fraction, "score": verdict.score, "calls": verdict.calls, "cost": verdict.cost,
            "applies": view is not None,
        }  # fmt: skip
        explanation = (
            "\n\n".join(f"--- vote {i + 1} ---\n{t}" if votes > 1 else t for i, t in enumerate(verdict.texts))
            or "not applicable: the transcript has none of the parts this rubric reads"
        )
        store.add_labels(run_id, [Label(record.sample_id, column, verdict.value, explanation, judge.name, meta)])
        outcome.labelled += 1
        outcome.not_applicable += view is None
        outcome.unparseable += view is not None and verdict.value is None
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


def vote_agreement(store: Store, run_id: str, column: str) -> float | None:
    """Fleiss' κ between the votes of a voting judge, over samples whose votes were all readable."""
    ratings = [
        label.meta["votes_cast"]
        for label in store.label_details(run_id)
        if label.scorer == column and label.meta.get("votes_cast") and None not in label.meta["votes_cast"]
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
                                                                 "votes", "threshold", "source")}  # fmt: skip
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
