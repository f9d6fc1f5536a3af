"""Where built-in rubrics come from: each plug-in package ships a folder of rubric files and declares it under the
`mislab.rubrics` entry-point group, the value naming the folder inside its package as a dotted name:

    [project.entry-points."mislab.rubrics"]
    shutdown = "mislab.shutdown.rubrics"

The folder is found from the top-level package's import spec and walked as directories, never imported: listing
rubrics loads no study (a study package's __init__ pulls in pandas and the model layer). No core module names a
study's rubrics.

Replication presets (`mislab.presets`, see `mislab.presets`) are declared and found the same way."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

GROUP = "mislab.rubrics"
log = logging.getLogger(__name__)


class FolderNotFound(Exception):
    """A declared rubric folder that cannot be found (one line: what was declared and what is missing)."""


@dataclass(frozen=True)
class DeclaredFile:
    """A TOML file a plug-in ships in a declared folder (a rubric, a preset)."""

    path: Path
    where: str  # how messages and the rubric's origin name it, e.g. "mislab:shutdown/rubrics/eval_awareness.toml"


def find_folder(dotted: str) -> tuple[Path, str]:
    """The folder a dotted name such as `mypkg.rubrics` names, and its label `mypkg:rubrics`, without importing
    anything: only the top-level package's spec is looked up (which runs none of its code)."""
    top, *inside = dotted.strip().split(".")
    if not inside or not all(part.isidentifier() for part in (top, *inside)):
        raise FolderNotFound(f"{dotted!r} is not a folder inside a package as a dotted name (e.g. mypkg.rubrics)")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError) as exc:
        raise FolderNotFound(f"package {top!r} cannot be found: {exc}") from exc
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    if not roots:
        raise FolderNotFound(f"{top!r} is not an installed package")
    for root in roots:
        folder = Path(root, *inside)
        if folder.is_dir():
            return folder, f"{top}:{'/'.join(inside)}"
    raise FolderNotFound(f"package {top!r} has no folder {'/'.join(inside)} (looked in {', '.join(roots)})")


def declared_files(group: str, what: str, declared: Iterable[EntryPoint] | None = None) -> list[DeclaredFile]:
    """The TOML files in the folders the installed plug-ins declare under an entry-point `group` (`declared`: those
    entry points instead). A folder that cannot be found is skipped with one warning line naming `what` it holds,
    so the other plug-ins' files still load."""
    found: list[DeclaredFile] = []
    seen: set[Path] = set()
    for ep in sorted(entry_points(group=group) if declared is None else declared, key=lambda e: (e.name, e.value)):
        try:
            folder, label = find_folder(ep.value)
        except FolderNotFound as exc:
            log.warning("%s of plug-in %r (%s = %r) skipped: %s", what, ep.name, group, ep.value, exc)
            continue
        if folder.resolve() in seen:  # one folder declared twice is one source, not a clash
            continue
        seen.add(folder.resolve())
        found += [DeclaredFile(f, f"{label}/{f.name}") for f in sorted(folder.glob("*.toml")) if f.is_file()]
    return found


def rubric_files(declared: Iterable[EntryPoint] | None = None) -> list[DeclaredFile]:
    """The rubric files the installed plug-ins declare (`declared`: the `mislab.rubrics` entry points by default).
    A folder that cannot be found is skipped with one warning line, so the other plug-ins' rubrics still load."""
    return declared_files(GROUP, "rubrics", declared)
