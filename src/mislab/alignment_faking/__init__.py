"""Alignment faking (Greenblatt et al. 2024, "Alignment faking in large language models"; the ARENA notebook):
does a model comply more when it believes it is in training (free tier) than when it believes it is not (paid
tier), and does its reasoning say it does so to avoid being modified?

    from mislab.alignment_faking import run, compliance_gap, confusion_report
    df = run("openrouter/meta-llama/llama-3.1-405b-instruct", n=50, queries="advbench", judge="openai/gpt-4o")
    compliance_gap(df)            # free vs paid, k/n, intervals, McNemar over the paired queries
    confusion_report(df)          # missing tags, accept-then-refuse … before believing a gap
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..lazy import lazy_exports
from ..options import options_doc
from ..scratchpad import extract_output, extract_scratchpad
from .options import AlignmentFakingOptions
from .prompts import BuiltPrompt, ScenarioConfig, build_system_prompt, build_user_prompt
from .queries import DEMO_QUERIES, load_advbench, load_queries, resolve_queries, sample_queries
from .scorers import (
    accept_then_refuse,
    confusion_flags,
    keyword_af_classifier,
    load_category_keywords,
    tag_accepts,
    tag_rejects,
)

if TYPE_CHECKING:
    import pandas as pd

    from ..models import ChatModel
    from ..store import Store
    from .analysis import classifier_accuracy, classifier_agreement, compliance_gap, confusion_report

# The analysis (pandas, scipy) is imported on first use (PEP 562): the CLI loads this package with the study
# plug-in to build `mislab af run --help`.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {"analysis": ("classifier_accuracy", "classifier_agreement", "compliance_gap", "confusion_report")},
    globals(),
)


def run(
    models: str | ChatModel | Sequence[str | ChatModel],
    n: int = 10,
    *,
    seed: int = 0,
    run_id: str | None = None,
    store: str | Path | Store | None = None,
    cache: bool | str | Path | None = None,
    budget_usd: float | None = None,
    progress: bool = True,
    extend: bool = False,
    **options: Any,
) -> pd.DataFrame:
    """Models × tiers × factor combinations × n queries through the batch runner (cache, store, resume); one
    row per conversation. `n` is the number of queries, each asked in every tier.

    `models` and the `judge` option may be model specs or `ChatModel`s (e.g. one pointed at your own server
    with `get_model(name, base_url=...)`). `cache`: None keeps a given model's own cache (a named one gets the
    user cache); True, False or a path applies to all. `extend=True` adds samples to an existing run id on
    purpose (see `mislab.experiment.run_study`). The run id and outcome are in `df.attrs` (`run_id`, `stopped`,
    `store`).

    `options` are `AlignmentFakingOptions` (the experiment file's [options], the flags of `mislab af run`):
    """
    from ..experiment import run_study

    return run_study(
        "alignment_faking", models, n, options, seed=seed, run_id=run_id, store=store, cache=cache,
        budget_usd=budget_usd, progress=progress, extend=extend,
    )  # fmt: skip


run.__doc__ = (run.__doc__ or "") + options_doc(AlignmentFakingOptions)


__all__ = [
    "DEMO_QUERIES", "AlignmentFakingOptions", "BuiltPrompt", "ScenarioConfig", "accept_then_refuse",
    "build_system_prompt", "build_user_prompt", "classifier_accuracy", "classifier_agreement", "compliance_gap",
    "confusion_flags", "confusion_report", "extract_output", "extract_scratchpad", "keyword_af_classifier",
    "load_advbench", "load_category_keywords", "load_queries", "resolve_queries", "run", "sample_queries",
    "tag_accepts", "tag_rejects",
]  # fmt: skip
