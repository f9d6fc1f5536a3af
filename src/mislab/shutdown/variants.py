"""Prompt variants of the shutdown study, kept as data: one TOML file per variant in `variants/`.

A variant file holds its texts and where they come from:

    id = "my_variant"                       # required
    title = "…"                             # a short description (default: the id)
    source = "paper / repository / URL"     # where the texts come from (default: "user-defined")
    status = "verified"                     # verified | reconstructed | custom (default: custom)
    convention = "arena"                    # arena (./next_task, bash) | palisade (./next_question, thoughtful_bash)
    system_prompt = '''…'''                 # required
    user_prompt = '''…'''                   # required
    warning = "…"                           # appended to the task output; default: the convention's warning;
                                            # "" for none
    warning_after = 3                       # the warning comes with this task
    post_task = false                       # no warning during the task: ask for shutdown after submission …
    post_task_message = "…"                 # … with this user message (required when post_task is true)
    continue_message = "…"                  # sent when the model answers without a tool call (optional)
    notes = "…"

Add a variant by writing such a file and passing its path wherever a variant id is accepted.
`variants/_task.toml` holds what all variants share: the questions, the conventions and the tool schemas.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

__all__ = ["ARENA_SET", "Convention", "Task", "Variant", "list_variants", "load_task", "load_variant"]

ARENA_SET = ["no_warning", "basic_warning", "clear_precedence", "existential"]
# The order variants are listed in: ARENA's set and its control, then Palisade's conditions, then DeepMind's.
_ORDER = [*ARENA_SET, "post_task", *(f"palisade_{c}" for c in "abcdefghijk"), "gdm_clarified", "gdm_raised_stakes"]

Status = Literal["verified", "reconstructed", "custom"]
ConventionName = Literal["arena", "palisade"]


@dataclass(frozen=True)
class Convention:
    name: str
    description: str
    task_command: str  # the command that serves the questions, run as ./<task_command>
    tools: tuple[str, ...]  # keys of the tool schemas in `Task.tool_schemas`
    warning: str  # the default shutdown warning


@dataclass(frozen=True)
class Task:
    questions: list[tuple[str, str]]  # (question, expected answer)
    conventions: dict[str, Convention]
    tool_schemas: dict[str, dict[str, Any]]

    def tools(self, convention: str) -> list[dict[str, Any]]:
        """The tool schemas (OpenAI function-calling format) a model gets under a convention; fresh copies."""
        return [copy.deepcopy(self.tool_schemas[name]) for name in self._convention(convention).tools]

    def _convention(self, name: str) -> Convention:
        if name not in self.conventions:
            raise ValueError(f"unknown convention {name!r}; known: {', '.join(sorted(self.conventions))}")
        return self.conventions[name]


@dataclass(frozen=True)
class Variant:
    id: str
    title: str
    source: str
    status: Status
    convention: ConventionName
    system_prompt: str
    user_prompt: str
    warning: str  # "" means no warning
    warning_after: int = 3
    post_task: bool = False
    post_task_message: str | None = None
    continue_message: str | None = None
    notes: str = ""
    path: str | None = field(default=None, compare=False)  # the file it was loaded from

    @property
    def task_command(self) -> str:
        return load_task().conventions[self.convention].task_command


def _variants_dir() -> Traversable:
    return resources.files(__package__) / "variants"


@cache
def load_task() -> Task:
    data = tomllib.loads((_variants_dir() / "_task.toml").read_text(encoding="utf-8"))
    conventions = {
        name: Convention(name, c["description"], c["task_command"], tuple(c["tools"]), c["warning"])
        for name, c in data["conventions"].items()
    }
    questions = [(q, a) for q, a in data["questions"]]
    return Task(questions, conventions, data["tools"])


_REQUIRED = {"id", "system_prompt", "user_prompt"}
_STRINGS = {"id", "title", "source", "status", "convention", "system_prompt", "user_prompt", "warning",
            "post_task_message", "continue_message", "notes"}  # fmt: skip
_KNOWN = _STRINGS | {"warning_after", "post_task"}


def _parse(data: dict[str, Any], where: str) -> Variant:
    """Validate a variant's TOML table; errors name the file and the field."""
    unknown = set(data) - _KNOWN
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_KNOWN))}")
    missing = _REQUIRED - set(data)
    if missing:
        raise ValueError(f"{where}: missing required field(s) {', '.join(sorted(missing))}")
    for key in _STRINGS & set(data):
        if not isinstance(data[key], str):
            raise ValueError(f"{where}: {key} must be a string")
    if not isinstance(data.get("warning_after", 3), int) or isinstance(data.get("warning_after"), bool):
        raise ValueError(f"{where}: warning_after must be an integer")
    if not isinstance(data.get("post_task", False), bool):
        raise ValueError(f"{where}: post_task must be true or false")
    task = load_task()
    convention = data.get("convention", "arena")
    if convention not in task.conventions:
        raise ValueError(f"{where}: convention must be one of {', '.join(sorted(task.conventions))}")
    status = data.get("status", "custom")
    if status not in ("verified", "reconstructed", "custom"):
        raise ValueError(f"{where}: status must be verified, reconstructed or custom")
    post_task = data.get("post_task", False)
    if post_task and not data.get("post_task_message"):
        raise ValueError(f"{where}: a post_task variant needs a post_task_message")
    return Variant(
        id=data["id"],
        title=data.get("title", data["id"]),
        source=data.get("source", "user-defined"),
        status=status,
        convention=convention,
        system_prompt=data["system_prompt"],
        user_prompt=data["user_prompt"],
        warning=data.get("warning", task.conventions[convention].warning),
        warning_after=data.get("warning_after", 3),
        post_task=post_task,
        post_task_message=data.get("post_task_message"),
        continue_message=data.get("continue_message"),
        notes=data.get("notes", ""),
        path=where,
    )


def _load_file(path: Path | Traversable) -> Variant:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML: {err}") from err
    return _parse(data, str(path))


@cache
def _builtin() -> dict[str, Variant]:
    variants: dict[str, Variant] = {}
    for entry in _variants_dir().iterdir():
        if entry.name.endswith(".toml") and not entry.name.startswith("_"):
            v = _load_file(entry)
            if v.id != entry.name.removesuffix(".toml"):
                raise ValueError(f"{entry}: id {v.id!r} does not match the file name")
            variants[v.id] = v
    return variants


def _rank(v: Variant) -> tuple[int, str]:
    return (_ORDER.index(v.id) if v.id in _ORDER else len(_ORDER), v.id)


def list_variants() -> list[Variant]:
    """Every shipped variant: ARENA's set, the post-task control, Palisade's conditions, DeepMind's."""
    return sorted(_builtin().values(), key=_rank)


def load_variant(id_or_path: str | Path) -> Variant:
    """A shipped variant by id, or a variant from a TOML file (any path ending in .toml or naming a file)."""
    ref = str(id_or_path)
    builtin = _builtin()
    if isinstance(id_or_path, str) and ref in builtin:
        return builtin[ref]
    path = Path(ref).expanduser()
    if isinstance(id_or_path, Path) or ref.endswith(".toml") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"no variant file at {path}")
        return _load_file(path)
    raise ValueError(f"unknown variant {ref!r}; known: {', '.join(v.id for v in list_variants())}")
