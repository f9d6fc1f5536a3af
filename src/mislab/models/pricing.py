"""Token prices: a table in the package that users can override, used when a provider reports no cost."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .types import Usage


@dataclass(frozen=True)
class Price:
    prompt: float  # $ per million prompt tokens
    completion: float
    cached_prompt: float | None = None

    def cost(self, usage: Usage) -> float:
        cached = usage.cached_prompt_tokens if self.cached_prompt is not None else 0
        fresh = usage.prompt_tokens - cached
        return (
            fresh * self.prompt + cached * (self.cached_prompt or 0.0) + usage.completion_tokens * self.completion
        ) / 1e6


class PriceTable:
    def __init__(self, prices: dict[str, Price]):
        self.prices = prices

    @classmethod
    def load(cls, override: Path | None = None) -> PriceTable:
        table = tomllib.loads(resources.files("mislab.data").joinpath("prices.toml").read_text())
        override = override or (Path(os.environ["MISLAB_PRICES"]) if os.environ.get("MISLAB_PRICES") else None)
        if override:
            try:
                table.update(tomllib.loads(Path(override).read_text()))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ValueError(f"cannot read price table {override}: {exc}") from exc
        return cls({name: Price(**entry) for name, entry in table.items()})

    def get(self, spec: str) -> Price | None:
        return self.prices.get(spec)

    def cost(self, spec: str, usage: Usage) -> float | None:
        price = self.get(spec)
        return None if price is None else price.cost(usage)
