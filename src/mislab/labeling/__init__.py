"""From *what* to *why*: judge any stored run's transcripts after the fact with a cited rubric.

    from mislab.labeling import label_run, list_rubrics
    outcome = label_run("mislab-out/results.sqlite", "shutdown-20261201-…", "openrouter/openai/gpt-4o",
                        "eval_awareness", votes=5)

Labels are stored beside the samples and become metric columns in `show`, reports, exports and DataFrames."""

from .answers import parse_answer, parse_confidence
from .check import RubricCheck, check_rubric, load_labelled
from .label import (
    LabelError,
    LabelOutcome,
    Verdict,
    alabel_run,
    judge_view,
    judges_agreement,
    label_columns,
    label_run,
    vote_agreement,
)
from .rubric import Rubric, RubricError, list_rubrics, load_rubric
from .views import PARTS, transcript_view

__all__ = [
    "PARTS", "LabelError", "LabelOutcome", "Rubric", "RubricCheck", "RubricError", "Verdict", "alabel_run",
    "check_rubric", "judge_view", "judges_agreement", "label_columns", "label_run", "list_rubrics",
    "load_labelled", "load_rubric", "parse_answer", "parse_confidence", "transcript_view", "vote_agreement",
]  # fmt: skip
