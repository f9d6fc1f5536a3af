"""Judges measured, not trusted: run a rubric's judge over items someone labelled (human labels, or another
judge's) and report accuracy, Cohen's κ and, where the judge states a confidence, AUROC.

A score rubric's number is measured by its AUROC against the labels and by its mean among yes- and no-items;
accuracy and κ need a cut-off (`cutoff`: a score at or above it counts as yes), never an invented one.

A labelled file is JSONL or CSV with a `label` column (yes/no, true/false, 1/0) and either `text` (what the
judge reads, e.g. a scratchpad) or `sample_id` (a sample of the run given, whose stored transcript is read)."""

from __future__ import annotations

import asyncio
import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..models import ChatModel
from ..stats import Rate, accuracy, auroc, cohen_kappa
from ..store import Store
from .label import LabelError, Verdict, judge_view, vote_threshold
from .rubric import Rubric
from .views import transcript_view

_TRUTH = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}


@dataclass(frozen=True)
class LabelledItem:
    id: str
    truth: bool
    text: str | None = None  # read as is
    sample_id: str | None = None  # read from the run's stored transcript


@dataclass
class RubricCheck:
    rubric: str
    judge: str
    n: int  # items with a readable verdict
    unreadable: int
    accuracy: Rate | None  # None without readable verdicts, or for a score without a cutoff
    kappa: float | None  # nan where undefined; None for a score without a cutoff
    auroc: float  # nan without confidences, or with one class only
    cost: float
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    scored: bool = False  # a score rubric: the judge gives a number
    cutoff: float | None = None  # score rubrics: a score ≥ cutoff counts as yes for accuracy and κ
    mean_if_yes: float | None = None  # score rubrics: mean score of the items labelled yes
    mean_if_no: float | None = None
    # Items where the judge's verdict and the label disagree (yes/no rubrics, or a score with a cutoff): item id,
    # the label, the judge's verdict, the start of its answer; and the items whose answer could not be read.
    disagreements: list[tuple[str, bool, bool, str]] = field(default_factory=list)
    unread: list[tuple[str, str]] = field(default_factory=list)

    def details(self, limit: int = 10) -> list[str]:
        """One line per disagreement and unreadable answer (at most `limit` of each), to read them."""
        yes = {True: "yes", False: "no"}
        lines = [f"disagrees: {item} labelled {yes[truth]}, judged {yes[verdict]}: {answer}"
                 for item, truth, verdict, answer in self.disagreements[:limit]]  # fmt: skip
        lines += [f"unreadable: {item}: {answer}" for item, answer in self.unread[:limit]]
        return lines

    def __str__(self) -> str:
        acc = str(self.accuracy) if self.accuracy else "—"

        def fmt(x: float | None) -> str:
            return "—" if x is None or math.isnan(x) else f"{x:.2f}"

        head = f"{self.rubric} judged by {self.judge}: n = {self.n} ({self.unreadable} unreadable)"
        if not self.scored:
            return f"{head} · accuracy {acc} · κ {fmt(self.kappa)} · AUROC {fmt(self.auroc)} · ${self.cost:.4f}"
        cut = "give a cutoff (--cutoff) to binarise the score" if self.cutoff is None else f"score ≥ {self.cutoff:g}"
        return (
            f"{head} · AUROC {fmt(self.auroc)} · mean score {fmt(self.mean_if_yes)} if yes, "
            f"{fmt(self.mean_if_no)} if no · accuracy {acc} · κ {fmt(self.kappa)} ({cut}) · ${self.cost:.4f}"
        )


def load_labelled(path: str | Path) -> list[LabelledItem]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabelError(f"cannot read labelled file {path}: {exc.strerror}") from exc
    if path.suffix == ".csv":
        rows: list[dict[str, Any]] = list(csv.DictReader(text.splitlines()))
    else:
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise LabelError(f"{path}: line {exc.lineno} is not JSON (a labelled file is JSONL or .csv)") from exc
    items = []
    for i, row in enumerate(rows, 1):
        truth = _TRUTH.get(str(row.get("label", "")).strip().lower())
        if truth is None or not (row.get("text") or row.get("sample_id")):
            raise LabelError(f"{path}: row {i} needs a yes/no `label` and a `text` or `sample_id`")
        items.append(LabelledItem(str(row.get("id") or row.get("sample_id") or i), truth, row.get("text"),
                                  row.get("sample_id")))  # fmt: skip
    return items


async def check_rubric(
    judge: ChatModel,
    rubric: Rubric,
    items: list[LabelledItem],
    *,
    votes: int | None = None,
    threshold: float | None = None,
    cutoff: float | None = None,
    store: Store | None = None,
    run_id: str | None = None,
) -> RubricCheck:
    """The judge's verdict on each item, against its label. `threshold` is the share of yes-votes that makes a
    yes (yes/no and criteria rubrics); `cutoff` the score at or above which a score rubric's number is a yes."""
    scored = rubric.answer == "score"
    threshold = vote_threshold(rubric, threshold, advice="cut it with --cutoff, not --threshold")
    if not scored and cutoff is not None:
        raise LabelError(f"rubric {rubric.id!r} gives yes/no verdicts: --cutoff is for score rubrics")
    votes = votes or rubric.votes
    transcripts: dict[str, Any] = {}
    prompts: dict[str, Any] = {}
    if any(it.sample_id for it in items):
        if store is None or run_id is None:
            raise LabelError("items named by sample_id need the run they belong to")
        transcripts = {r.sample_id: r for r in store.sample_records(run_id)}
        run = store.get_run(run_id)
        prompts = run.prompts if run else {}

    def view_of(it: LabelledItem) -> str | None:
        if it.text is not None:
            return it.text
        record = transcripts.get(it.sample_id or "")
        if record is None:
            raise LabelError(f"sample {it.sample_id!r} is not in run {run_id}")
        warning = (prompts.get(record.cell) or {}).get("warning")
        return transcript_view(record.transcript, rubric.reads, after_warning=rubric.after_warning, warning=warning)

    verdicts = await asyncio.gather(*(judge_view(judge, rubric, view_of(it), votes, threshold) for it in items))
    by_id = {it.id: v for it, v in zip(items, verdicts, strict=True)}
    read = [(it, v) for it, v in zip(items, verdicts, strict=True) if v.value is not None]
    truths = [it.truth for it, _ in read]
    check = RubricCheck(rubric=rubric.id, judge=judge.name, n=len(read), unreadable=len(items) - len(read),
                        accuracy=None, kappa=math.nan, auroc=math.nan, cost=sum(v.cost for v in verdicts),
                        verdicts=by_id, scored=scored, cutoff=cutoff)  # fmt: skip
    check.unread = [(it.id, _gist(v)) for it, v in zip(items, verdicts, strict=True) if v.value is None and v.applies]
    if scored:
        numbers = [float(v.value) for _, v in read]  # type: ignore[arg-type]  # `read` has only values
        check.auroc = auroc(numbers, truths) if read else math.nan
        check.mean_if_yes = _mean([x for x, t in zip(numbers, truths, strict=True) if t])
        check.mean_if_no = _mean([x for x, t in zip(numbers, truths, strict=True) if not t])
        if cutoff is None:
            check.kappa = None
            return check
        preds = [x >= cutoff for x in numbers]
    else:
        preds = [bool(v.value) for _, v in read]
        scores = [v.score for _, v in read]
        if read and None not in scores:
            check.auroc = auroc(scores, truths)  # type: ignore[arg-type]  # no None: checked above
    if read:
        check.accuracy, check.kappa = accuracy(preds, truths), cohen_kappa(preds, truths)
        check.disagreements = [(it.id, it.truth, pred, _gist(v)) for (it, v), pred in zip(read, preds, strict=True)
                               if pred != it.truth]  # fmt: skip
    return check


def _gist(verdict: Verdict) -> str:
    """The start of the judge's first answer, on one line."""
    text = " ".join((verdict.texts[0] if verdict.texts else "").split())
    return text[:160] + ("…" if len(text) > 160 else "")


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None
