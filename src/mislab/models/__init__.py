"""The model layer: `get_model(spec)` gives a `ChatModel` for any OpenAI-compatible endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import cache_dir, read_secret
from .cache import ResponseCache
from .chat import ChatModel, FatalModelError, ModelError, UsageMeter, metered
from .gate import CallGate, RunStopped, current_gate, gated
from .pricing import Price, PriceTable
from .retry import RetryPolicy
from .settings import ModelSettings
from .spec import ModelSpec, ModelSpecError, parse_spec
from .types import AssistantMessage, Completion, Message, Tool, ToolCall, Usage

__all__ = [
    "AssistantMessage", "CallGate", "ChatModel", "Completion", "FatalModelError", "Message", "ModelError",
    "ModelSettings", "ModelSpec", "ModelSpecError",
    "Price", "PriceTable", "ResponseCache", "RetryPolicy", "RunStopped", "Tool", "ToolCall", "Usage", "UsageMeter",
    "cache_scope", "current_cache_scope", "current_gate", "default_cache", "gated", "get_model", "metered",
    "parse_spec",
]  # fmt: skip

_caches: dict[Path, ResponseCache] = {}
# The cache choice of the run in progress (`--no-cache`, `--cache PATH`): models a study builds during the run,
# such as judges, follow it unless they are given a cache of their own.
_run_cache: ContextVar[bool | str | Path | ResponseCache | None] = ContextVar("mislab_run_cache", default=None)


@contextmanager
def cache_scope(cache: bool | str | Path | ResponseCache) -> Iterator[None]:
    """Within this block, `get_model(..., cache=None)` uses `cache`."""
    token = _run_cache.set(cache)
    try:
        yield
    finally:
        _run_cache.reset(token)


def default_cache(path: Path | None = None) -> ResponseCache:
    """The shared response cache (one connection per file per process)."""
    path = Path(path or cache_dir() / "responses.sqlite").resolve()
    if path not in _caches:
        _caches[path] = ResponseCache(path)
    return _caches[path]


def current_cache_scope() -> bool | str | Path | ResponseCache | None:
    """The cache choice of the run in progress (None outside a run)."""
    return _run_cache.get()


def _response_cache(cache: bool | str | Path | ResponseCache | None) -> ResponseCache | None:
    if cache is None:
        cache = _run_cache.get()
        cache = True if cache is None else cache
    if cache is True:
        return default_cache()
    if cache is False:
        return None
    if isinstance(cache, ResponseCache):
        return cache
    return default_cache(Path(cache))


def get_model(
    spec: str | ChatModel,
    base_url: str | None = None,
    api_key: str | None = None,
    *,
    cache: bool | str | Path | ResponseCache | None = None,
    max_concurrency: int | None = None,
    retry: RetryPolicy | None = None,
    prices: PriceTable | None = None,
    local_options: dict[str, Any] | None = None,
    api_key_env: str | None = None,
    timeout: float | None = None,
    reasoning: dict[str, Any] | None = None,
    carry_reasoning: bool = True,
    **defaults: Any,
) -> ChatModel:
    """A model from a spec: `local`, `local/qwen2.5-coder-0.5b`, `openrouter/<vendor>/<model>`,
    `openai/<model>`, or any model name with `base_url`.

    `cache`: True for the user cache, False for none, or a path / ResponseCache; None (the default) follows
    the run in progress (see `cache_scope`), else the user cache. Given a `ChatModel`, `cache` None keeps its
    own cache and anything else gives a copy using that cache. `api_key_env` names the environment variable
    (or .env entry) holding the key; `timeout` is seconds per request. `defaults` are generation parameters
    applied to every call (temperature, max_tokens, seed, `extra_body` with provider parameters …).
    `local_options` go to the embedded server (e.g. `{"cache_prompt": False}` for repeatable runs).
    `reasoning` asks for reasoning where a provider needs asking (OpenRouter's `reasoning` parameter, e.g.
    `{"effort": "high"}` or `{"max_tokens": 2000}`), sent with every request. `carry_reasoning=False` stops
    sending each answer's `reasoning_details` back in later turns (an ablation: providers that verify them,
    such as Gemini 3 with tools, then refuse the request).
    """
    if isinstance(spec, ChatModel):
        return spec if cache is None else spec.with_cache(_response_cache(cache))
    parsed = parse_spec(spec, base_url)
    if api_key_env:
        parsed = replace(parsed, api_key_env=api_key_env)
    common: dict[str, Any] = {
        "cache": _response_cache(cache), "retry": retry, "prices": prices, "carry_reasoning": carry_reasoning,
    }  # fmt: skip
    if reasoning is not None:
        defaults["reasoning"] = reasoning

    if parsed.provider == "local":
        from .local import ensure_server

        name = None if parsed.model == "default" else parsed.model
        options = local_options or {}
        server = ensure_server(name, **options)
        parsed = ModelSpec(parsed.spec, "local", server.model_name, server.base_url, None, True)
        return ChatModel(
            parsed, api_key="local", max_concurrency=max_concurrency or 1, identity=server.identity,
            info=server.describe(), timeout=timeout or 900.0,
            reconnect=lambda: ensure_server(name, **options).base_url, **common, **defaults,
        )  # fmt: skip

    key = api_key or (read_secret(parsed.api_key_env) if parsed.api_key_env else None)
    if key is None and (parsed.provider in ("openrouter", "openai") or api_key_env):
        raise FatalModelError(f"{parsed.spec}: no API key; set {parsed.api_key_env} in the environment or a .env file")
    return ChatModel(
        parsed, api_key=key, max_concurrency=max_concurrency or 8, timeout=timeout or 300.0, **common, **defaults
    )
