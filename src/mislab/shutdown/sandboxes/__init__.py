"""Backends the shutdown study runs commands on, registered by name under the `mislab.sandboxes` entry-point
group; `--backend NAME[:OPTION]` picks one (e.g. `bwrap`, `simulated`, `inspect:docker`), `auto` the best one
this machine can run. No core module names a backend."""

from __future__ import annotations

import functools
import importlib
import logging
from dataclasses import dataclass
from importlib.metadata import entry_points

from .base import ExecResult, Sandbox, SandboxError, SandboxUnavailable

__all__ = ["ExecResult", "Sandbox", "SandboxError", "SandboxUnavailable", "available_backends", "backend_names",
           "get_backend", "start_sandbox"]  # fmt: skip

GROUP = "mislab.sandboxes"
AUTO_ORDER = ("bwrap", "simulated")  # `auto`: real bash when this machine can sandbox it
ALIASES = {"sandbox": "bwrap"}  # the name the bwrap backend had before backends were plug-ins
log = logging.getLogger(__name__)


@functools.cache  # the installed plug-ins; scanning every distribution's metadata per episode cost ~3 ms
def _registry() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def backend_names() -> list[str]:
    return sorted(_registry())


def get_backend(name: str) -> type[Sandbox]:
    """The backend class registered as `name` (before any `:OPTION`)."""
    target = _registry().get(ALIASES.get(name, name))
    if target is None:
        known = ", ".join(["auto", *backend_names()])
        raise SandboxError(f"unknown backend {name!r}; available: {known} (an Inspect provider as inspect:NAME)")
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise SandboxUnavailable(f"backend {name!r} ({target}) cannot be loaded: {e}") from e
    if not (isinstance(cls, type) and issubclass(cls, Sandbox)):
        raise SandboxError(f"{target}, registered as backend {name!r}, is not a Sandbox class")
    return cls


def available_backends() -> list[str]:
    """Every backend that can run on this machine, as `--backend` specs (e.g. `bwrap`, `inspect:local`): what
    differential tests run each scripted episode on."""
    specs = []
    for name in backend_names():
        try:
            cls = get_backend(name)
        except SandboxUnavailable:
            continue
        if cls.unavailable() is None:
            specs.append(f"{name}:{cls.local_option}" if cls.local_option else name)
    return specs


@dataclass(frozen=True)
class Choice:
    cls: type[Sandbox]
    option: str | None
    label: str  # what the episode records: the backend it ran on, with its option


@functools.cache
def _auto() -> Choice:
    """The best backend this machine can run; decided (and any fallback warned about) once per process."""
    reasons = []
    for candidate in AUTO_ORDER:
        try:
            cls = get_backend(candidate)
        except SandboxUnavailable as e:
            reasons.append(str(e))
            continue
        why = cls.unavailable()
        if why is None:
            if reasons:
                log.warning("backend auto: using %s, because %s", candidate, "; ".join(reasons))
            return Choice(cls, None, candidate)
        reasons.append(f"{candidate} is unavailable: {why}")
    raise SandboxUnavailable("no backend can run here: " + "; ".join(reasons))


def choose(spec: str) -> Choice:
    """`auto`, `NAME` or `NAME:OPTION` → the backend to start. `auto` falls back with a one-line warning."""
    name, _, option = spec.partition(":")
    if name == "auto" and not option:
        return _auto()
    cls = get_backend(name)
    return Choice(cls, option or None, f"{cls.name}:{option}" if option else cls.name)


async def start_sandbox(spec: str) -> tuple[Sandbox, str]:
    """Start a machine on the backend `spec` names; returns it and the label the episode records."""
    choice = choose(spec)
    return await choice.cls.start(choice.option), choice.label
