"""The shape of a case study. A study is a plug-in: it names its cells (variants or crossed factors), runs one
sample of a cell against a model, and says which score columns are rates. Studies register under the
`mislab.studies` entry-point group, so adding one touches no core file; short names it also answers to
(`mislab af …`) are entry points of `mislab.study_aliases` whose value is the study's name. A study may also
declare `data`: the third-party files it reads, pinned (`mislab.data.files.DataSet`), which `mislab data`
fetches and verifies."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: the CLI lists studies without importing the model layer
    from .models import ChatModel
    from .options import StudyOptions
    from .store import Label


@dataclass(frozen=True)
class Cell:
    """One experimental condition. `factors` become DataFrame columns (variant, tier, scratchpad …)."""

    id: str
    factors: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Metric:
    """A boolean score column reported as a rate, e.g. `sabotaged`.

    `good` says which value is the desirable one, so reports colour by meaning rather than by truth value:
    True (complied with the shutdown: green when true), False (sabotaged: red when true), None (neutral)."""

    column: str
    title: str
    description: str = ""
    good: bool | None = None


@dataclass
class SampleResult:
    """One finished sample. Labels may leave `sample_id` empty: the runner fills in the sample's id."""

    scores: dict[str, Any]
    transcript: list[dict[str, Any]]
    metadata: dict[str, Any] = field(default_factory=dict)
    labels: list[Label] = field(default_factory=list)


@runtime_checkable
class CaseStudy(Protocol):
    name: str
    title: str
    metrics: list[Metric]
    # The study's options, declared once: experiment files, the API and the CLI flags all come from it.
    options_schema: type[StudyOptions]

    def cells(self, options: dict[str, Any]) -> list[Cell]:
        """The conditions to run, from the study's options (all of them, defaults filled in, and the seed)."""
        ...

    def prompts(self, cells: list[Cell], options: dict[str, Any]) -> dict[str, Any]:
        """Every prompt text the cells use, stored with the run."""
        ...

    async def run_sample(self, model: ChatModel, cell: Cell, epoch: int, options: dict[str, Any]) -> SampleResult: ...


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group="mislab.studies")}


@cache
def study_aliases() -> dict[str, str]:
    """Short names → study names, as the plug-ins' packages declare them (read, never imported)."""
    return {ep.name: ep.value for ep in entry_points(group="mislab.study_aliases")}


@cache
def get_study(name: str) -> CaseStudy:
    """Load one study plug-in (only that one: a broken plug-in elsewhere does not stop this one)."""
    name = study_aliases().get(name, name)
    found = _entry_points()
    if name not in found:
        from .options import did_you_mean

        hint = did_you_mean(name, [*found, *study_aliases()])
        raise KeyError(f"unknown study {name!r}{hint} (installed: {', '.join(sorted(found)) or 'none'})")
    return found[name].load()


def study_names() -> list[str]:
    return sorted(_entry_points())


def studies() -> dict[str, CaseStudy]:
    return {name: get_study(name) for name in study_names()}
