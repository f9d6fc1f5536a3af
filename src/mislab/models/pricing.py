"""Token prices: a table in the package that users can override, used when a provider reports no cost, and, for
dry-run estimates, OpenRouter's public model list (fetched when online, kept with its date).

The override file (`MISLAB_PRICES=my_prices.toml`) has the packaged table's shape, one table per model spec, in
dollars per million tokens; its entries replace the packaged ones and OpenRouter's:

    ["openrouter/anthropic/claude-3.7-sonnet"]
    prompt = 3.0            # per million prompt tokens
    completion = 15.0       # per million completion tokens (reasoning included, unless `reasoning` is set)
    cached_prompt = 0.30    # optional: per million prompt tokens served from the provider's cache
    reasoning = 3.5         # optional: per million reasoning tokens, when the provider prices them apart

OpenRouter's list (`https://openrouter.ai/api/v1/models`, no key needed) gives per-token prices of every model it
routes; `MISLAB_OPENROUTER_MODELS` names another URL or a local JSON file of the same shape to read instead, and
`MISLAB_OFFLINE=1` keeps mislab off the network (the last list fetched, else the packaged table)."""

from __future__ import annotations

import calendar
import json
import os
import time
import tomllib
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import MislabError
from .types import Usage

PRICE_FORMAT = (
    'one TOML table per model spec in $ per million tokens, e.g. ["openai/gpt-4o"] prompt = 2.5, completion = 10.0, '
    "optional cached_prompt = 1.25"
)


class PriceTableError(MislabError, ValueError):
    """A price file (MISLAB_PRICES) that cannot be read or is not in the price format."""


OPENROUTER_MODELS_URL = "https://openrouter.ai/api/v1/models"
MODELS_SOURCE_ENV = "MISLAB_OPENROUTER_MODELS"
OFFLINE_ENV = "MISLAB_OFFLINE"
LIST_MAX_AGE = 24 * 3600  # seconds a fetched list is used before it is fetched again
FETCH_TIMEOUT = 10.0


@dataclass(frozen=True)
class Price:
    prompt: float  # $ per million prompt tokens
    completion: float
    cached_prompt: float | None = None
    reasoning: float | None = None  # $ per million reasoning tokens, when priced apart from completion

    def cost(self, usage: Usage) -> float:
        cached = usage.cached_prompt_tokens if self.cached_prompt is not None else 0
        fresh = usage.prompt_tokens - cached
        reasoning = usage.reasoning_tokens if self.reasoning is not None else 0
        return (
            fresh * self.prompt + cached * (self.cached_prompt or 0.0)
            + (usage.completion_tokens - reasoning) * self.completion + reasoning * (self.reasoning or 0.0)
        ) / 1e6  # fmt: skip


@dataclass(frozen=True)
class ModelList:
    """OpenRouter's model list as far as estimates need it: prices and which models take a reasoning parameter,
    by OpenRouter model id, with when and where it was read."""

    prices: dict[str, Price]
    reasoning: frozenset[str]
    fetched_at: str  # ISO 8601, UTC
    source: str

    @property
    def date(self) -> str:
        return self.fetched_at[:10]


def _per_million(value: Any) -> float | None:
    """OpenRouter gives dollars per token as a string ("0.000003"); None where it gives none."""
    try:
        return float(value) * 1e6 if value is not None else None
    except (TypeError, ValueError):
        return None


def parse_model_list(body: bytes | str, fetched_at: str, source: str) -> ModelList:
    """Prices of OpenRouter's `/api/v1/models` body. A model without a usable prompt and completion price is left
    out (variable-priced routers such as openrouter/auto list -1). ValueError if the body is not such a list."""
    try:
        data = json.loads(body)
        models = data["data"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{source} is not OpenRouter's model list: {exc}") from None
    prices: dict[str, Price] = {}
    reasoning: set[str] = set()
    for m in models if isinstance(models, list) else []:
        if not isinstance(m, dict) or not isinstance(m.get("id"), str):
            continue
        pricing = m.get("pricing") or {}
        prompt, completion = _per_million(pricing.get("prompt")), _per_million(pricing.get("completion"))
        if prompt is None or completion is None or prompt < 0 or completion < 0:
            continue
        cached = _per_million(pricing.get("input_cache_read"))
        thinking = _per_million(pricing.get("internal_reasoning"))  # "0" or absent: billed as completion
        prices[m["id"]] = Price(prompt, completion, cached, thinking if thinking else None)
        if "reasoning" in (m.get("supported_parameters") or []):
            reasoning.add(m["id"])
    if not prices:
        raise ValueError(f"{source} lists no priced model")
    return ModelList(prices, frozenset(reasoning), fetched_at, source)


def _list_cache() -> Path:
    from ..config import cache_dir

    return cache_dir() / "openrouter-models.json"


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _read(source: str) -> tuple[bytes, str]:
    """The list's bytes and the date of its data: now for a download, the file's modification time for a file."""
    if source.startswith(("http://", "https://")):
        request = urllib.request.Request(source, headers={"User-Agent": "mislab"})
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:
            return response.read(), _stamp(time.time())
    path = Path(source.removeprefix("file://")).expanduser()
    return path.read_bytes(), _stamp(path.stat().st_mtime)


def model_list(*, online: bool = True) -> tuple[ModelList | None, str]:
    """OpenRouter's model list for estimates, and a line saying where it came from. A list downloaded less than a
    day ago is reused; otherwise it is downloaded again (when `online` and not `MISLAB_OFFLINE`) and kept with its
    date. `MISLAB_OPENROUTER_MODELS` may name a local file instead, read every time and dated by its modification
    time. If the list cannot be read, the last one kept is used, with its date; None if there is none (the
    packaged table then prices alone)."""
    cache = _list_cache()
    kept: ModelList | None = None
    try:
        stored = json.loads(cache.read_text(encoding="utf-8"))
        kept = parse_model_list(stored["body"], stored["fetched_at"], stored["source"])
    except (OSError, ValueError, KeyError, TypeError):
        kept = None
    source = os.environ.get(MODELS_SOURCE_ENV) or OPENROUTER_MODELS_URL
    remote = source.startswith(("http://", "https://"))
    fresh = remote and kept is not None and kept.source == source and _age(kept.fetched_at) < LIST_MAX_AGE
    if fresh or (remote and (not online or os.environ.get(OFFLINE_ENV))):
        if kept is None:
            return None, "no OpenRouter model list fetched yet (offline): packaged prices"
        return kept, f"OpenRouter's model list of {kept.date} ({kept.source})"
    try:
        body, dated = _read(source)
        fetched = parse_model_list(body, dated, source)
    except (OSError, ValueError) as exc:
        if kept is None:
            return None, f"OpenRouter's model list could not be read ({exc}): packaged prices"
        return kept, f"OpenRouter's model list of {kept.date} (could not refresh it: {exc})"
    cache.write_text(json.dumps({"fetched_at": dated, "source": source, "body": body.decode("utf-8")}), "utf-8")
    return fetched, f"OpenRouter's model list of {fetched.date} ({source})"


def _age(stamp: str) -> float:
    try:
        return time.time() - calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return float("inf")


@dataclass
class PriceTable:
    """Prices by model spec: the packaged table, OpenRouter's list when given (for `openrouter/<id>` specs, and
    `openai/<model>` specs the packaged table lacks), and the override file over both."""

    prices: dict[str, Price]
    openrouter: ModelList | None = None
    overridden: frozenset[str] = field(default_factory=frozenset)
    override_path: str | None = None

    @classmethod
    def load(cls, override: Path | None = None, openrouter: ModelList | None = None) -> PriceTable:
        table = tomllib.loads(resources.files("mislab.data").joinpath("prices.toml").read_text())
        override = override or (Path(os.environ["MISLAB_PRICES"]) if os.environ.get("MISLAB_PRICES") else None)
        mine: dict[str, Any] = {}
        if override:
            try:
                mine = tomllib.loads(Path(override).read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise PriceTableError(f"cannot read price table {override} (MISLAB_PRICES): {exc}") from exc
        prices = {}
        for name, entry in {**table, **mine}.items():
            try:
                prices[name] = Price(**{k: float(v) for k, v in entry.items()})
            except (AttributeError, TypeError, ValueError):
                where = f" in {override} (MISLAB_PRICES)" if name in mine else ""
                raise PriceTableError(f"price of {name!r}{where} is not a price: {PRICE_FORMAT}") from None
        return cls(prices, openrouter, frozenset(mine), str(override) if override else None)

    def _listed(self, spec: str) -> Price | None:
        if self.openrouter is None:
            return None
        head, _, rest = spec.partition("/")
        if head == "openrouter":
            return self.openrouter.prices.get(rest)
        if head == "openai" and spec not in self.prices:
            return self.openrouter.prices.get(spec)
        return None

    def get(self, spec: str) -> Price | None:
        if spec in self.overridden:
            return self.prices[spec]
        return self._listed(spec) or self.prices.get(spec)

    def basis(self, spec: str) -> str:
        """Where `get(spec)`'s price comes from, in words."""
        if spec in self.overridden:
            return f"your price table {self.override_path}"
        if self._listed(spec) is not None:
            assert self.openrouter is not None
            return f"OpenRouter's list of {self.openrouter.date}"
        return "mislab's packaged table" if spec in self.prices else "no price known"

    def reasons(self, spec: str) -> bool:
        """OpenRouter lists the model as taking a reasoning parameter."""
        if self.openrouter is None:
            return False
        head, _, rest = spec.partition("/")
        return (rest if head == "openrouter" else spec) in self.openrouter.reasoning

    def cost(self, spec: str, usage: Usage) -> float | None:
        price = self.get(spec)
        return None if price is None else price.cost(usage)
