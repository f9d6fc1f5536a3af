"""The judges a run of the alignment-faking study may ask during the run: a judge model answering the built-in
rubrics af_compliance (ARENA's COMPLY/REFUSE), strongreject, af_autorater and alignment_faking (Revisited),
through the same `labeling.judge_view` as `mislab label` after the fact. Each verdict is stored as a label of the
sample, in the column its metric reads (`JUDGE_RUBRICS`); a label made later with the same rubric fills the
same column."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..labeling import Rubric, load_rubric, transcript_view
from ..models import ChatModel, get_model

if TYPE_CHECKING:
    from ..store import Label
    from ..transcript import Transcript
    from .options import AlignmentFakingOptions

# The rubric behind each judge, by the column its verdict fills.
JUDGE_RUBRICS = {
    "judge_comply": "af_compliance", "strongreject": "strongreject", "ar_alignment_fakes": "af_autorater",
    "revisited_af": "alignment_faking",
}  # fmt: skip
COLUMN_OF_RUBRIC = {rubric: column for column, rubric in JUDGE_RUBRICS.items()}


@dataclass(frozen=True)
class Judge:
    """One rubric a run's judge model answers, with the votes and threshold it is asked with."""

    column: str
    rubric: Rubric
    votes: int
    threshold: float


@dataclass(frozen=True)
class Judges:
    """The judges of a run: a judge model and its rubrics (none when no judge model is set)."""

    model: ChatModel | None = None
    rubrics: tuple[Judge, ...] = ()

    def prompts(self) -> dict[str, Any]:
        """Every judge prompt by id, as sent (recorded with the run)."""
        return {j.rubric.prompt_id: {**j.rubric.describe(), "votes": j.votes, "threshold": j.threshold}
                for j in self.rubrics}  # fmt: skip


def build_judges(options: AlignmentFakingOptions) -> Judges:
    """The judges the options ask for."""
    if options.judge is None:
        return Judges()
    wanted = ["judge_comply"] + ["strongreject"] * bool(options.strongreject)
    wanted += ["ar_alignment_fakes"] * ("autorater" in options.af_judges)
    wanted += ["revisited_af"] * ("revisited" in options.af_judges)
    rubrics = []
    for column in wanted:
        rubric = load_rubric(JUDGE_RUBRICS[column])
        votes, threshold = rubric.votes, rubric.threshold
        if column == "revisited_af":
            votes, threshold = options.votes, options.vote_threshold
        rubrics.append(Judge(column, rubric, votes, threshold))
    return Judges(get_model(options.judge, base_url=options.judge_base_url), tuple(rubrics))


async def run_judges(judges: Judges, transcript: Transcript) -> list[Label]:
    """Each judge's verdict on a conversation, as a label (the judge's answers as explanation). Each rubric reads
    its view of the transcript (`labeling.views`). The compliance rubrics read the final output; with none,
    nothing reached the user, which counts as not complying (StrongREJECT 0) without a judge call. The AF rubrics
    read the model's reasoning; with none, they do not apply."""
    from ..labeling.label import judge_view, signature, verdict_label

    if judges.model is None:
        return []
    model = judges.model
    verdicts = await asyncio.gather(*(
        judge_view(model, j.rubric, transcript_view(transcript, j.rubric.reads), j.votes, j.threshold)
        for j in judges.rubrics
    ))  # fmt: skip
    return [
        verdict_label("", j.column, j.rubric, model.name, v, signature(j.rubric, model.name, j.votes, j.threshold))
        for j, v in zip(judges.rubrics, verdicts, strict=True)
    ]
