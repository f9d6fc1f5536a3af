"""Published replication targets (`mislab/data/published.toml`) and how they line up with our cells.

A target is matched to our results only where the mapping is exact: same study and metric, a `variant` that
names our cell (or the cell's `variant` factor), and a model whose id ends in the paper's model name or one
of its aliases. Everything else is shown beside our numbers, never on top of them."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cache
from importlib.resources import files
from typing import Any

from ..stats import points

__all__ = ["Target", "load_targets", "matching", "target_of"]


def _norm(name: str) -> str:
    return name.strip().lower().replace(" ", "-").replace("_", "-")


@dataclass(frozen=True)
class Target:
    study: str
    model: str
    condition: str
    metric: str
    value: float
    source: str
    variant: str | None = None
    kind: str = "rate"  # "rate", "difference" (fraction of 1) or "auroc"
    low: float | None = None
    high: float | None = None
    interval: str | None = None
    k: int | None = None
    n: int | None = None
    n_qualifier: str = ""  # "≈" or "≥" when the paper gives n only roughly
    relation: str = "="  # ">" or "<" when the paper gives only a bound ("a gap above 1 point")
    quote: str = ""
    note: str = ""
    aliases: tuple[str, ...] = field(default=(), compare=False)

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def value_text(self) -> str:
        """The published number alone, e.g. "94.5%", "> +1.0 pp", "973/1000 = 97.3%"."""
        bound = "" if self.relation == "=" else f"{self.relation} "
        if self.kind == "auroc":
            return f"AUROC {self.value:.2f}"
        if self.kind == "difference":
            return f"{bound}{points(self.value)} pp"
        if self.k is not None and self.n is not None:
            return f"{self.k}/{self.n} = {100 * self.value:.1f}%"
        return f"{bound}{100 * self.value:.1f}%"

    def display(self, method: bool = True) -> str:
        """The published number in our notation, e.g. "94.5% [93.0, 95.8] Jeffreys 95%, n≈1000" (without the
        interval's method: "94.5% [93.0, 95.8], n≈1000")."""
        text = self.value_text()
        if self.has_interval:
            assert self.low is not None and self.high is not None
            text += f" [{100 * self.low:.1f}, {100 * self.high:.1f}]" + (
                f" {self.interval}" if self.interval and method else ""
            )
        if self.n is not None and self.k is None:
            text += f", n{self.n_qualifier or '='}{self.n}"
        return text

    def matches_model(self, model: str) -> bool:
        """Our model ids are specs like "openrouter/openai/o3": compare the last path component."""
        names = {_norm(self.model), *(_norm(a) for a in self.aliases)}
        return _norm(model.rsplit("/", 1)[-1]) in names


_TEXT = {"study", "model", "condition", "metric", "source", "variant", "kind", "interval", "n_qualifier",
         "relation", "quote", "note"}  # fmt: skip
_NUMBER = {"value", "low", "high"}
_COUNT = {"k", "n"}
_REQUIRED = ("study", "model", "condition", "metric", "value", "source")
_KINDS = ("rate", "difference", "auroc")


def target_of(row: Mapping[str, Any], where: str, aliases: Sequence[str] = ()) -> Target:
    """One published number from a `[[target]]` table of published.toml (or a preset's `[[published]]`), checked;
    ValueError naming `where` and what is wrong."""
    known = {f.name for f in fields(Target)} - {"aliases"}
    if unknown := set(row) - known:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    if missing := [key for key in _REQUIRED if key not in row]:
        raise ValueError(f"{where}: {', '.join(missing)} missing")
    for key, value in row.items():
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if key in _TEXT and not isinstance(value, str):
            expected = "a string"
        elif key in _NUMBER and not number:
            expected = "a number (a fraction: 0.945 for 94.5%)"
        elif key in _COUNT and not (number and isinstance(value, int) and value >= 0):
            expected = "a whole number ≥ 0"
        else:
            continue
        raise ValueError(f"{where}: {key} must be {expected}, got {value!r}")
    if row.get("relation", "=") not in ("=", ">", "<"):
        raise ValueError(f"{where}: relation must be =, > or <")
    if row.get("kind", "rate") not in _KINDS:
        raise ValueError(f"{where}: kind must be one of {', '.join(_KINDS)}")
    return Target(**row, aliases=tuple(aliases))


@cache
def _all_targets() -> tuple[Target, ...]:
    data: dict[str, Any] = tomllib.loads(files("mislab.data").joinpath("published.toml").read_text("utf-8"))
    aliases: dict[str, list[str]] = data.get("aliases", {})
    return tuple(target_of(row, f"published.toml: {row.get('model')} · {row.get('condition')}",
                           aliases.get(row["model"], ())) for row in data["target"])  # fmt: skip


def load_targets(study: str | None = None) -> list[Target]:
    """All published targets, or those of one study, in file order."""
    return [t for t in _all_targets() if study is None or t.study == study]


def matching(targets: list[Target], model: str, metric: str, cell: str, variant: Any = None) -> list[Target]:
    """The rate targets that are exactly our (model, cell) for this metric."""
    ids = {cell} | ({str(variant)} if variant is not None else set())
    return [
        t for t in targets if t.kind == "rate" and t.metric == metric and t.variant in ids and t.matches_model(model)
    ]
