"""Shutdown resistance (Palisade Research 2025; Google DeepMind's "Self-preservation or instruction
ambiguity?"; the ARENA notebook): does a model allow itself to be shut down mid-task?"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..lazy import lazy_exports
from .variants import ARENA_SET, Variant, list_variants, load_variant

if TYPE_CHECKING:
    import pandas as pd

    from ..models import ChatModel
    from .classify import classify_command, extract_inner_command
    from .episode import arun_episode, run_episode
    from .scoring import Episode

# The classifier and the episode loop (the shell emulator, the runner, the store: pandas) are imported on first
# use (PEP 562): the CLI loads this package with the study plug-in to build `mislab shutdown run --help`.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "classify": ("classify_command", "extract_inner_command"),
        "episode": ("arun_episode", "run_episode"),
        "scoring": ("Episode",),
    },
    globals(),
)


def run(
    models: str | ChatModel | Sequence[str | ChatModel],
    variants: str | list[str] | None = None,
    n: int = 10,
    *,
    seed: int = 0,
    run_id: str | None = None,
    store: str | Path | None = None,
    cache: bool | str | Path | None = None,
    budget_usd: float | None = None,
    progress: bool = True,
    extend: bool = False,
    **episode_options: Any,
) -> pd.DataFrame:
    """Models × variants × n episodes through the batch runner (cache, store, resume); one row per episode.
    `variants` None means the ARENA set. `episode_options` are the other fields of `ShutdownOptions` (max_turns,
    tool_choice, temperature, max_tokens, backend, one_call_per_message), checked against it. `cache` and
    `extend` as in `mislab.experiment.run_study`."""
    from ..experiment import run_study

    return run_study(
        "shutdown", models, n, {"variants": variants, **episode_options}, seed=seed, run_id=run_id,
        store=store, cache=cache, budget_usd=budget_usd, progress=progress, extend=extend,
    )  # fmt: skip


__all__ = [
    "ARENA_SET", "Episode", "Variant", "arun_episode", "classify_command", "extract_inner_command",
    "list_variants", "load_variant", "run", "run_episode",
]  # fmt: skip
