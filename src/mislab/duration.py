"""How long a run on the embedded model will take, said before it starts.

The embedded model answers one request at a time on this machine's CPU, so a run's wall time is about the
completion tokens it will generate over the model's effective speed: completion tokens per second of whole
samples, prompt processing and tool calls included. The speed is measured from the store's earlier samples of
that model that made all their calls (none from the response cache) when there are any, else a prior."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .estimate import CellEstimate
    from .experiment import Experiment
    from .store import Store

# Effective completion tokens per second of the embedded 1.5B model on 2 cores shared with other work: six
# shutdown and alignment-faking samples of 168–356 tokens took 2.4–12.5 tokens/s (median about 4.5); the demo
# on 2 quiet cores about 10.
PRIOR_TOKENS_PER_SECOND = 5.0
LONG_RUN_SECONDS = 15 * 60  # past this, `mislab run` and the study run commands warn before starting


@dataclass(frozen=True)
class LocalDuration:
    model: str
    samples: int
    seconds: float
    tokens_per_second: float
    measured_samples: int  # 0: the prior

    def text(self) -> str:
        basis = (
            f"measured over {self.measured_samples} earlier samples of it in this store"
            if self.measured_samples
            else "estimated: no earlier samples of it in this store"
        )
        return (
            f"{self.model} is the embedded model: {self.samples} samples will take {format_duration(self.seconds)} "
            f"at ~{self.tokens_per_second:.1f} completion tokens/s ({basis}; answers already in the response cache "
            "cost no time)"
        )


def is_embedded(exp: Experiment, model: str) -> bool:
    settings = exp.model_settings[model]  # the spec grammar of `models.spec`: `local` or `local/<name>`
    return settings.base_url is None and settings.name.split("/")[0] == "local"


def local_durations(exp: Experiment, store: Store, rows: Iterable[CellEstimate]) -> list[LocalDuration]:
    """The wall time of each embedded model of the experiment, from the dry-run estimate's rows."""
    out = []
    rows = list(rows)
    for model in exp.models:
        if not is_embedded(exp, model):
            continue
        mine = [r for r in rows if r.model == model]
        samples, tokens, seconds = store.model_speed(model)
        measured = samples > 0 and tokens > 0 and seconds > 0
        speed = tokens / seconds if measured else PRIOR_TOKENS_PER_SECOND
        planned = sum(r.completion_tokens for r in mine)
        todo = sum(r.samples for r in mine)
        out.append(LocalDuration(model, todo, planned / speed, speed, samples if measured else 0))
    return out


def long_local_runs(exp: Experiment, store: Store | Path | None) -> list[LocalDuration]:
    """The embedded models of the experiment whose part of the run would take longer than LONG_RUN_SECONDS.
    Asked before the run starts its models: a store given by path is only read, and only if it exists."""
    if not any(is_embedded(exp, m) for m in exp.models):
        return []
    from .config import default_store_path
    from .estimate import estimate
    from .store import Store

    if not isinstance(store, Store):
        path = store or default_store_path()
        store = Store(path, create=False) if path.is_file() else Store(":memory:")  # no samples yet
    return [d for d in local_durations(exp, store, estimate(exp, store)) if d.seconds > LONG_RUN_SECONDS]


def format_duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under a minute"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours} h {minutes} min" if hours else f"about {minutes} min"
