"""From *what* to *why*: judge any stored run's transcripts after the fact with a cited rubric.

    from mislab.labeling import label_run, list_rubrics
    outcome = label_run("mislab-out/results.sqlite", "shutdown-20261201-…", "openrouter/openai/gpt-4o",
                        "eval_awareness", votes=5)

Labels are stored beside the samples and become metric columns in `show`, reports, exports and DataFrames.
One judgement of a piece of text: `judge_text("openai/gpt-4o", "af_compliance", reply).value`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports
from .answers import PARSERS, parse_answer, parse_confidence, parse_criteria, parse_ratings
from .rubric import COMBINATIONS, Item, JudgePrompt, Rubric, RubricError, list_rubrics, load_rubric
from .views import PARTS, transcript_view

if TYPE_CHECKING:
    from .check import RubricCheck, check_rubric, load_labelled
    from .label import (
        LabelError,
        LabelOutcome,
        Verdict,
        alabel_run,
        judge_text,
        judge_view,
        judges_agreement,
        label_columns,
        label_run,
        vote_agreement,
    )

# Judging and checking need the model layer, the store and the statistics (openai, pandas, scipy): imported on
# first use (PEP 562), so that listing or reading rubrics (`mislab rubrics`) starts fast.
_LAZY = {
    "check": ("RubricCheck", "check_rubric", "load_labelled"),
    "label": ("LabelError", "LabelOutcome", "Verdict", "alabel_run", "judge_text", "judge_view", "judges_agreement",
              "label_columns", "label_run", "vote_agreement"),
}  # fmt: skip

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


__all__ = [
    "COMBINATIONS", "PARSERS", "PARTS", "Item", "JudgePrompt", "LabelError", "LabelOutcome", "Rubric", "RubricCheck",
    "RubricError", "Verdict", "alabel_run", "check_rubric", "judge_text", "judge_view", "judges_agreement",
    "label_columns", "label_run", "list_rubrics", "load_labelled", "load_rubric", "parse_answer", "parse_confidence",
    "parse_criteria", "parse_ratings", "transcript_view", "vote_agreement",
]  # fmt: skip
