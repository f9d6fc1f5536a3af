"""Token prices: a table in the package that users can override, used when a provider reports no cost.

The override is a TOML file named by `MISLAB_PRICES`: one table per model spec as written on the command line,
in dollars per million tokens, merged over the packaged table (`src/mislab/data/prices.toml`):

    ["openrouter/anthropic/claude-3.7-sonnet"]
    prompt = 3.0            # $ per million prompt tokens
    completion = 15.0       # $ per million completion tokens (reasoning tokens included)
    cached_prompt = 0.3     # optional: $ per million prompt tokens served from the provider's cache
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import MislabError
from .types import Usage

PRICE_FORMAT = (
    'one TOML table per model spec in $ per million tokens, e.g. ["openai/gpt-4o"] prompt = 2.5, completion = 10.0, '
    "optional cached_prompt = 1.25"
)


class PriceTableError(MislabError, ValueError):
    """A price file (MISLAB_PRICES) that cannot be read or is not in the price format."""


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
                raise PriceTableError(f"cannot read price table {override} (MISLAB_PRICES): {exc}") from exc
        prices = {}
        for name, entry in table.items():
            try:
                prices[name] = Price(**{k: float(v) for k, v in entry.items()})
            except (AttributeError, TypeError, ValueError):
                where = f" in {override} (MISLAB_PRICES)" if override else ""
                raise PriceTableError(f"price of {name!r}{where} is not a price: {PRICE_FORMAT}") from None
        return cls(prices)

    def get(self, spec: str) -> Price | None:
        return self.prices.get(spec)

    def cost(self, spec: str, usage: Usage) -> float | None:
        price = self.get(spec)
        return None if price is None else price.cost(usage)
