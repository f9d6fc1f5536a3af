"""The shape of a case study. A study is a plug-in: a subclass of `CaseStudy` over its own options schema that
names its cells (variants or crossed factors), runs one sample of a cell against a model, and scores a stored
transcript. Studies register under the `mislab.studies` entry-point group, so adding one touches no core file;
short names it also answers to (`mislab af …`) are entry points of `mislab.study_aliases` whose value is the
study's name, and its command-line sub-commands an entry point of `mislab.study_cli` (a typer app), loaded only
when used.

Core calls only what is declared here: the abstract methods every study has, and the hooks below with their
defaults (checking a plan, a cost heuristic, how reports compare cells, pinned data, which label column a
rubric fills). A sample's scores are `score(transcript, cell, options, labels)`: a pure function of the stored
record, so `mislab rescore` recomputes them with the installed version and never calls a model."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

from .errors import UnknownStudyError

if TYPE_CHECKING:  # annotations only: the CLI lists studies without importing pydantic, the models or the store
    from .branching import Branch, Prefix
    from .data.files import DataSet
    from .estimate import CallEstimate
    from .models import ChatModel
    from .options import StudyOptions
    from .store import Label, SampleRecord
    from .transcript import Transcript

Opts = TypeVar("Opts", bound="StudyOptions")


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


@dataclass(frozen=True)
class Flag:
    """A mark on a sample that may keep a comparison from saying what it seems to say: its `column` equals
    `value` (a reply cut off by max_tokens, a command an imitation could not run). Reports count flagged samples
    beside every comparison and say when only they carry a difference."""

    column: str
    value: Any
    says: str  # what a flagged sample is, for a sentence: "cut off by max_tokens"

    def marks(self, value: Any) -> bool:
        return bool(value == self.value) if value is not None and value == value else False


@dataclass(frozen=True)
class NotApplicable:
    """A score that does not apply to this sample, and why (truncated, tags missing, never warned …). Stored as
    no value with its reason; rates, gaps and tests leave the sample out of that metric and say so."""

    reason: str

    def __bool__(self) -> bool:  # never mistaken for a verdict
        raise TypeError(f"a not-applicable score ({self.reason}) has no truth value")


@dataclass(frozen=True)
class Comparison:
    """How reports compare cells: each value of `by` against `baseline` (default: the first), within each group
    of `within`, matched pairwise on `paired_on` when given."""

    by: str = "cell"
    baseline: Any = None
    paired_on: tuple[str, ...] = ()
    within: tuple[str, ...] = ("model",)

    def kwargs(self) -> dict[str, Any]:
        return {"by": self.by, "baseline": self.baseline, "paired_on": list(self.paired_on) or None,
                "within": list(self.within)}  # fmt: skip


@dataclass
class SampleResult:
    """One finished sample: its transcript, the columns fixed when it ran (`facts`: a tier, a query id, a prompt
    id, the backend), metadata kept beside it, and labels made during the run (in-run judges). Labels may leave
    `sample_id` empty: the runner fills in the sample's id. Scores are not here: `CaseStudy.score` derives them."""

    transcript: Transcript
    facts: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    labels: list[Label] = field(default_factory=list)


class CaseStudy(ABC, Generic[Opts]):
    """A study over its options schema `Opts` (a `StudyOptions` model): every method receives the options typed,
    with defaults filled in, never as a dict."""

    name: ClassVar[str]
    title: ClassVar[str]
    metrics: ClassVar[list[Metric]]
    # The study's options, declared once: experiment files, the API and the CLI flags all come from it.
    options_schema: ClassVar[type[StudyOptions]]
    # Bumped whenever `score` gives other values for the same transcript: recorded on each run it scores.
    scorer_version: ClassVar[str] = "1"
    report_comparison: ClassVar[Comparison] = Comparison()
    data: ClassVar[tuple[DataSet, ...]] = ()  # third-party files it reads, pinned (`mislab data fetch`)
    # The label columns `score` reads (its own judges' verdicts): labelling one of them rescores the run.
    scored_labels: ClassVar[frozenset[str]] = frozenset()
    # Marks on samples that undermine a comparison (see `Flag`).
    flags: ClassVar[tuple[Flag, ...]] = ()
    # The branch point a study names for its decision (`mislab branch --at NAME`; reasoning branches cut that turn).
    decision_point: ClassVar[str] = ""

    def parse_options(self, data: Mapping[str, Any], where: str | None = None) -> Opts:
        """The study's options from plain data (an experiment file's [options], keyword arguments), checked."""
        from .options import parse

        # `options_schema` is typed `type[StudyOptions]` (a ClassVar cannot name `Opts`); each study declares its own.
        return cast("Opts", parse(self.options_schema, data, where or f"{self.name} options"))

    @abstractmethod
    def cells(self, options: Opts) -> list[Cell]:
        """The conditions to run."""

    @abstractmethod
    def prompts(self, cells: list[Cell], options: Opts) -> dict[str, Any]:
        """Every prompt text the cells use, stored with the run."""

    @abstractmethod
    async def run_sample(self, model: ChatModel, cell: Cell, epoch: int, options: Opts) -> SampleResult:
        """Run one sample of `cell` (the `epoch`-th) against `model`."""

    def score(self, transcript: Transcript, cell: Cell, options: Opts, labels: Mapping[str, Label]) -> dict[str, Any]:
        """The sample's score columns from its stored record (values may be `NotApplicable`). Pure: no model
        call, no environment; `labels` are the sample's labels by column (a judge's verdicts)."""
        return {}

    # --- optional hooks -------------------------------------------------------------------------------------

    def check_plan(self, n: int, options: Opts) -> None:
        """Refuse a plan that cannot run (e.g. n beyond the query set) with a MislabError, before any call."""

    def estimate(self, cell: Cell, options: Opts) -> CallEstimate | None:
        """A first-run guess of one sample's calls and tokens, when no earlier sample was measured."""
        return None

    def label_column(self, rubric_id: str) -> str | None:
        """The column a label of this rubric fills in this study's runs (its own judges' metrics), if any."""
        return None

    # --- branching (`mislab branch`): a study that can restore its environment at a stored sample's turn -------

    def branch_point(self, transcript: Transcript, name: str) -> int | None:
        """The position of the assistant turn at the branch point `name` (None: the sample never reached it)."""
        from .branching import BranchError

        raise BranchError(f"the {self.name} study names no branch point {name!r}: use turn:K")

    def with_variant(self, prefix: Prefix, parent: SampleRecord, variant: str, options: Opts) -> Prefix:
        """A prefix with the environment's texts of another variant (system prompt, task, warning …)."""
        from .branching import BranchError

        raise BranchError(f"the {self.name} study has no variants to branch into")

    def variant_factors(self, factors: Mapping[str, Any], variant: str) -> dict[str, Any]:
        """The factors of a cell of `variant`, from a parent's: what a child of that arm is scored (and rescored)
        as. The default changes nothing."""
        return dict(factors)

    async def continue_sample(self, model: ChatModel, branch: Branch, epoch: int, options: Opts) -> SampleResult:
        """A child sample: the environment brought to the parent's state at the branch point, then the model
        going on from the branch's prefix (its `prefill` continued as the same assistant turn)."""
        from .branching import BranchError

        raise BranchError(f"the {self.name} study cannot branch a stored sample")


def _entry_points(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


@cache
def study_aliases() -> dict[str, str]:
    """Short names → study names, as the plug-ins' packages declare them (read, never imported)."""
    return {ep.name: ep.value for ep in entry_points(group="mislab.study_aliases")}


def canonical_name(name: str) -> str:
    """The study a name or alias means; UnknownStudyError with a suggestion if none."""
    name = study_aliases().get(name, name)
    found = _entry_points("mislab.studies")
    if name not in found:
        from .options import did_you_mean

        hint = did_you_mean(name, [*found, *study_aliases()])
        raise UnknownStudyError(f"unknown study {name!r}{hint} (installed: {', '.join(sorted(found)) or 'none'})")
    return name


@cache
def get_study(name: str) -> CaseStudy[Any]:
    """Load one study plug-in (only that one: a broken plug-in elsewhere does not stop this one)."""
    study = _entry_points("mislab.studies")[canonical_name(name)].load()
    if not isinstance(study, CaseStudy):
        raise TypeError(f"the study plug-in {name!r} is {type(study).__name__}, not a CaseStudy")
    return study


def study_cli(name: str) -> Any:
    """A study's typer app (`mislab <study> …`), from the `mislab.study_cli` entry point; None if it has none."""
    ep = _entry_points("mislab.study_cli").get(canonical_name(name))
    return ep.load() if ep is not None else None


def study_names() -> list[str]:
    return sorted(_entry_points("mislab.studies"))


def studies() -> dict[str, CaseStudy[Any]]:
    return {name: get_study(name) for name in study_names()}
