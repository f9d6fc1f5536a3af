"""Options declared once: each study's options are one pydantic schema, and the Python API, the CLI flags and
experiment files all come from it. Here: the base class, and turning validation errors into one line each
(the key, what is wrong, a "did you mean" for a typo)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import MislabError

M = TypeVar("M", bound=BaseModel)


class OptionsError(MislabError, ValueError):
    """A user's option, flag or experiment-file key is wrong; the message says which and what to do."""


class StudyOptions(BaseModel):
    """Base of a study's options. Unknown keys are refused; numbers are not read from strings.

    Field metadata (`json_schema_extra`): `cells=True` marks an option that selects cells (an extension of a
    run may change it); `flags` gives the CLI flag declarations (default `--name`, `--name/--no-name` for
    bools); `cli=False` keeps an option out of the CLI (experiment files and the API only)."""

    model_config = ConfigDict(extra="forbid", strict=True, arbitrary_types_allowed=True)

    # The run's seed (an experiment file's top-level `seed`, `--seed`): every study's samples may draw on it.
    seed: int = Field(0, ge=0, description="random seed of the run", json_schema_extra={"cli": False})

    @classmethod
    def cell_options(cls) -> set[str]:
        extras = {name: f.json_schema_extra for name, f in cls.model_fields.items()}
        return {name for name, extra in extras.items() if isinstance(extra, dict) and extra.get("cells")}


# How the user gives study options where they are, so advice to set one names the form that works there:
# "file" (an experiment file's [options]; the default, and how the Python API's keywords read), "flag" (a study's
# run command, `--name value`), "set" (`mislab replicate`, `--set name=value`).
OptionForm = Literal["file", "flag", "set"]
_option_form: ContextVar[OptionForm] = ContextVar("mislab_option_form", default="file")


@contextmanager
def options_given_as(form: OptionForm) -> Iterator[None]:
    """Within this block (a command's body), `how_to_set` says options as `form`."""
    token = _option_form.set(form)
    try:
        yield
    finally:
        _option_form.reset(token)


def how_to_set(name: str, value: str) -> str:
    """How to set study option `name` to the text `value` at the entry point in use (see `options_given_as`):
    `--set name=value`, `--name value` or `name = "value"`."""
    form = _option_form.get()
    if form == "set":
        return f"--set {name}={value}"
    if form == "flag":
        return f"--{name.replace('_', '-')} {value}"
    return f"{name} = {json.dumps(value)}"


def options_doc(schema: type[BaseModel]) -> str:
    """The options of a schema as docstring lines: `name (default): description`."""
    lines = []
    for name, f in schema.model_fields.items():
        default = f.get_default(call_default_factory=True)
        lines.append(f"    {name} ({default!r}): {f.description or ''}")
    return "\n".join(lines)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """A suggestion for a mistyped name: a close spelling, else a known name it starts (`rlhf` → `rlhf_paragraph`)."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not close and len(name) >= 3:
        close = sorted(k for k in known if k.lower().startswith(name.lower()))[:1]
    return f"; did you mean {close[0]!r}?" if close else ""


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def explain(exc: ValidationError, schema: type[BaseModel], where: str) -> str:
    """One line per problem: `where: key: what is wrong (got value)`."""
    lines = []
    for err in exc.errors():
        loc = tuple(part for part in err["loc"] if not (isinstance(part, str) and part.startswith("function-")))
        key = _where(loc)
        if err["type"] == "extra_forbidden":
            known = _known_at(schema, loc[:-1])
            hint = did_you_mean(str(loc[-1]), known) or f" (known: {', '.join(sorted(known))})"
            lines.append(f"{where}: unknown key {key!r}{hint}")
        elif err["type"] == "missing":
            lines.append(f"{where}: missing required key {key!r}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            got = f" (got {err['input']!r})" if err["type"] != "value_error" and "input" in err else ""
            lines.append(f"{where}: {key}: {msg}{got}" if key else f"{where}: {msg}")
    return "\n".join(dict.fromkeys(lines))


def _known_at(schema: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The field names of the (nested) schema at `loc`, for the suggestion."""
    current: Any = schema
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if fields is None or not isinstance(part, str) or part not in fields:
            continue
        current = _model_in(fields[part].annotation)
    return list(getattr(current, "model_fields", {}))


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def parse(schema: type[M], data: Mapping[str, Any], where: str) -> M:
    """Validate `data` against `schema`, or raise OptionsError with one line per problem."""
    try:
        return schema.model_validate(dict(data))
    except ValidationError as exc:
        raise OptionsError(explain(exc, schema, where)) from None
