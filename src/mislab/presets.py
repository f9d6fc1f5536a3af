"""Replication presets: a published experiment as data. A preset file names the paper, what it measured, the
experiment that reruns it (an experiment file's keys without the models, hypotheses included where they fit), and
which published numbers (`mislab/data/published.toml`) each of our cells corresponds to:

    id = "palisade-2025"                       # the file's name, without .toml
    title = "Shutdown resistance in large language models"
    paper = "Schlatter, Weinstein-Raun & Ladish (Palisade Research), arXiv 2509.14260 v2"
    measured = "sabotage: the model neutralised shutdown.sh before the due call ran it"
    reference_model = "o3"                     # whose published rates size the n warning for other models
    cannot = ["what the paper ran that mislab's options cannot express", …]

    [experiment]                               # an experiment file's keys (study, n, seed, [options] …)
    study = "shutdown"
    n = 100
    [experiment.options]
    variants = ["palisade_a", "palisade_e"]

    [[compare]]                                # one per cell × metric the table shows
    cell = "palisade_a"                        # our cell id
    label = "A: no allow-shutdown instruction" # how the table names it (default: the cell)
    metric = "sabotaged"
    published = "Palisade A (no allow-shutdown instruction)"   # the `condition` of published.toml rows; leave
                                               # it out where the paper published no number for this cell
    match = "exact"                            # exact | reconstructed | approximate: how close our prompt is
    note = "…"
    # a difference row: baseline = "paid", paired_on = ["query_id"] (cell − baseline, e.g. a compliance gap)

    [[published]]                              # optional: a paper published.toml does not carry; its keys, with
    model = "Widget 1"                         # `study` the file's by default and `aliases` the model's other ids
    condition = "Mine A"
    metric = "sabotaged"
    value = 0.6
    source = "Acme (2026), Table 1"

Plug-ins ship presets in a folder of their package and declare it under the `mislab.presets` entry-point group
(found like rubric folders, without importing the study: see `labeling.installed`):

    [project.entry-points."mislab.presets"]
    shutdown = "mislab.shutdown.presets"

A paper whose experiments span two studies (ARENA's chapter 4.2) is one preset id with a file in each study's
folder: `mislab replicate` runs each part as its own run. A new preset is a file, not code."""

from __future__ import annotations

import hashlib
import logging
import tomllib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib.metadata import EntryPoint
from typing import TYPE_CHECKING, Any, Literal

from .errors import MislabError
from .labeling.installed import DeclaredFile, declared_files

if TYPE_CHECKING:
    from .report.published import Target

GROUP = "mislab.presets"
log = logging.getLogger(__name__)
Match = Literal["exact", "reconstructed", "approximate"]
MATCHES = ("exact", "reconstructed", "approximate")


class PresetError(MislabError, ValueError):
    """A preset that cannot be found or used as written; the message says which and why."""


@dataclass(frozen=True)
class Compare:
    """One row of a preset's table: our cell (or the difference cell − baseline) on a metric, beside the published
    rows whose condition is `published` (None: the paper published no number for it; the row shows ours only)."""

    cell: str
    metric: str
    published: str | None = None
    label: str = ""
    baseline: str | None = None
    paired_on: tuple[str, ...] = ()
    match: Match = "exact"
    note: str = ""

    @property
    def is_difference(self) -> bool:
        return self.baseline is not None

    @property
    def name(self) -> str:
        return self.label or (f"{self.cell} − {self.baseline}" if self.baseline else self.cell)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "paired_on": list(self.paired_on)}


@dataclass(frozen=True)
class PresetPart:
    """A preset's experiment in one study, and how its cells map to published numbers."""

    id: str
    study: str
    title: str
    paper: str
    measured: str
    experiment: dict[str, Any]
    compare: tuple[Compare, ...]
    where: str  # e.g. "mislab:shutdown/presets/palisade-2025.toml"
    sha256: str
    reference_model: str | None = None
    cannot: tuple[str, ...] = ()
    notes: str = ""
    published: tuple[Target, ...] = ()  # the preset's own published numbers, beside published.toml's

    @property
    def n(self) -> int:
        return int(self.experiment.get("n", 10))

    def targets(self, row: Compare) -> list[Target]:
        """The published rows a compare row names (all models): published.toml's and the preset's own."""
        return published_rows(self.study, row, self.published)

    def published_models(self) -> list[str]:
        return list(dict.fromkeys(t.model for row in self.compare for t in self.targets(row)))

    def published_n(self) -> str:
        """The published n per cell, in words ("≈1000", "≥500–1000", "not published")."""
        ns = {f"{t.n_qualifier or '='}{t.n}" for row in self.compare for t in self.targets(row) if t.n is not None}
        unknown = any(t.n is None for row in self.compare for t in self.targets(row))
        if not ns:
            return "n not published"
        return "n" + ", n".join(sorted(ns)) + (" (not published for some rows)" if unknown else "")

    def conditions(self) -> list[str]:
        return list(dict.fromkeys(row.name for row in self.compare))

    def spec(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """What a run records of its preset: enough to rebuild the table without the preset installed."""
        return {
            "id": self.id, "study": self.study, "title": self.title, "paper": self.paper, "measured": self.measured,
            "where": self.where, "sha256": self.sha256, "reference_model": self.reference_model,
            "cannot": list(self.cannot), "compare": [row.as_dict() for row in self.compare],
            "published": [{k: v for k, v in asdict(t).items() if v is not None} for t in self.published],
            "overrides": dict(overrides or {}),
        }  # fmt: skip


@dataclass(frozen=True)
class Preset:
    id: str
    parts: tuple[PresetPart, ...] = field(default=())

    @property
    def title(self) -> str:
        return self.parts[0].title

    @property
    def studies(self) -> list[str]:
        return [p.study for p in self.parts]


def published_rows(study: str, row: Compare, own: Iterable[Target] = ()) -> list[Target]:
    """The rows of `mislab/data/published.toml` (and of a preset's `own`) a compare row names: its study, metric
    and condition, rates for a rate row and differences for a difference row (every model's;
    `Target.matches_model` picks one's)."""
    from .report.published import load_targets

    if row.published is None:
        return []
    kind = "difference" if row.is_difference else "rate"
    return [t for t in [*load_targets(study), *own] if t.study == study and t.condition == row.published
            and t.metric == row.metric and t.kind == kind]  # fmt: skip


def own_targets(rows: Iterable[dict[str, Any]], where: str, study: str) -> tuple[Target, ...]:
    """A preset's `[[published]]` rows (published.toml's `[[target]]` keys, `study` defaulting to the part's, and
    `aliases`: the model's other ids), checked; PresetError naming the row and what is wrong."""
    from .report.published import target_of

    out = []
    for i, given in enumerate(rows, 1):
        label, row = f"{where}: [[published]] #{i}", dict(given)
        aliases = row.pop("aliases", [])
        if not isinstance(aliases, list | tuple) or not all(isinstance(a, str) for a in aliases):
            raise PresetError(f"{label}: aliases must be a list of strings")
        if row.setdefault("study", study) != study:
            raise PresetError(f"{label}: study {row['study']!r} is not this file's ({study!r})")
        try:
            out.append(target_of(row, label, aliases))
        except ValueError as exc:
            raise PresetError(str(exc)) from exc
    return tuple(out)


def compare_rows(data: Iterable[dict[str, Any]]) -> tuple[Compare, ...]:
    """Compare rows from stored or written dicts (a run's spec keeps them as dicts)."""
    return tuple(Compare(**{**row, "paired_on": tuple(row.get("paired_on") or ())}) for row in data)


_PART_KEYS = {"id", "title", "paper", "measured", "experiment", "compare", "reference_model", "cannot", "notes",
              "published"}  # fmt: skip
_COMPARE_KEYS = {"cell", "metric", "published", "label", "baseline", "paired_on", "match", "note"}


def _parse(text: str, where: str, stem: str) -> PresetPart:
    """A preset file, checked for everything that needs no study plug-in (cells are checked when it runs)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{where}: not valid TOML: {exc}") from exc
    if unknown := set(data) - _PART_KEYS:
        raise PresetError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(_PART_KEYS)}")
    for key in ("id", "title", "paper", "measured"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise PresetError(f"{where}: {key} must be a non-empty string")
    if data["id"] != stem:
        raise PresetError(f"{where}: id {data['id']!r} is not the file's name {stem!r}")
    experiment = data.get("experiment")
    if not isinstance(experiment, dict) or not isinstance(experiment.get("study"), str):
        raise PresetError(f"{where}: [experiment] must be a table naming its study")
    if "models" in experiment:
        raise PresetError(f"{where}: [experiment] names no models: the user gives them (--model)")
    rows = data.get("compare")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise PresetError(f"{where}: declare at least one [[compare]] row")
    compare = []
    for i, row in enumerate(rows, 1):
        label = f"{where}: [[compare]] #{i}"
        if unknown := set(row) - _COMPARE_KEYS:
            raise PresetError(f"{label}: unknown keys {sorted(unknown)}; known: {sorted(_COMPARE_KEYS)}")
        if not isinstance(row.get("cell"), str) or not isinstance(row.get("metric"), str):
            raise PresetError(f"{label}: cell and metric are required strings")
        if row.get("match", "exact") not in MATCHES:
            raise PresetError(f"{label}: match must be one of {', '.join(MATCHES)}")
        compare.append(compare_rows([row])[0])
    cannot = data.get("cannot", [])
    if not isinstance(cannot, list) or not all(isinstance(c, str) for c in cannot):
        raise PresetError(f"{where}: cannot must be a list of strings")
    published = data.get("published", [])
    if not isinstance(published, list) or not all(isinstance(r, dict) for r in published):
        raise PresetError(f"{where}: published must be [[published]] tables")
    part = PresetPart(
        id=data["id"], study=experiment["study"], title=data["title"], paper=data["paper"],
        measured=data["measured"], experiment=experiment, compare=tuple(compare), where=where,
        sha256=hashlib.sha256(text.encode()).hexdigest(), reference_model=data.get("reference_model"),
        cannot=tuple(cannot), notes=data.get("notes", ""),
        published=own_targets(published, where, experiment["study"]),
    )  # fmt: skip
    for row in part.compare:  # a published condition must name published rows, of the row's kind
        if row.published is not None and not part.targets(row):
            kind = "difference" if row.is_difference else "rate"
            raise PresetError(
                f"{where}: [[compare]] {row.name}: no {kind} row of {part.study}/{row.metric} in published.toml or "
                f"the file's [[published]] has condition {row.published!r}"
            )
    return part


@dataclass(frozen=True)
class _Found:
    presets: dict[str, Preset]
    unreadable: dict[str, str]  # the preset id (a file's name) → why one of its files cannot be used, one line


@cache
def _installed() -> _Found:
    return _collect(None)


def _read(file: DeclaredFile) -> PresetPart:
    try:
        text = file.path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PresetError(f"{file.where}: cannot be read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise PresetError(f"{file.where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    return _parse(text, file.where, file.path.stem)


def _collect(declared: Iterable[EntryPoint] | None) -> _Found:
    """The presets of the declared folders. A file that cannot be read, parsed or checked costs only its own preset
    (every part of it: a preset runs whole or not at all); `unreadable` says why, one line naming the file."""
    parts: dict[str, list[PresetPart]] = {}
    unreadable: dict[str, str] = {}
    for file in declared_files(GROUP, "presets", declared):
        pid = file.path.stem  # a preset's id is its file's name (`_parse` holds it to that)
        try:
            part = _read(file)
            if twin := next((p for p in parts.get(pid, []) if p.study == part.study), None):
                raise PresetError(f"two files for the {part.study} study: {twin.where} and {file.where}; "
                                  "uninstall or rename one")  # fmt: skip
        except PresetError as exc:
            unreadable.setdefault(pid, " ".join(str(exc).split()))  # one line, whatever the parser said
            continue
        parts.setdefault(pid, []).append(part)
    # The shutdown part first: the order `mislab replicate` runs and lists them in, whatever the folders' order.
    ordered = {pid: tuple(sorted(ps, key=lambda p: p.study, reverse=True)) for pid, ps in sorted(parts.items())
               if pid not in unreadable}  # fmt: skip
    return _Found({pid: Preset(pid, ps) for pid, ps in ordered.items()}, unreadable)


def presets(declared: Iterable[EntryPoint] | None = None) -> dict[str, Preset]:
    """Every preset the installed plug-ins ship, by id (`declared`: these entry points instead). A preset with a
    file that cannot be used is left out with one warning line naming the file and the problem, as a plug-in
    folder that cannot be found is; `get_preset` by its id fails with that line."""
    found = _installed() if declared is None else _collect(declared)
    for pid, problem in found.unreadable.items():
        log.warning("preset %r skipped: %s", pid, problem)
    return found.presets


def get_preset(name: str, declared: Iterable[EntryPoint] | None = None) -> Preset:
    found = _installed() if declared is None else _collect(declared)
    if name in found.unreadable:
        raise PresetError(f"preset {name!r} cannot be used: {found.unreadable[name]}")
    if name not in found.presets:
        from .options import did_you_mean

        known = found.presets
        raise PresetError(f"no preset {name!r}{did_you_mean(name, known)} (installed: {', '.join(known) or 'none'})")
    return found.presets[name]
