"""The model layer: `get_model(spec)` gives a `ChatModel` for any OpenAI-compatible endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from ..config import cache_dir, read_secret
from .cache import ResponseCache
from .chat import ChatModel, ModelError, UsageMeter, metered
from .pricing import Price, PriceTable
from .retry import RetryPolicy
from .spec import ModelSpec, ModelSpecError, parse_spec
from .types import AssistantMessage, Completion, Message, Tool, ToolCall, Usage

__all__ = [
    "AssistantMessage", "ChatModel", "Completion", "Message", "ModelError", "ModelSpec", "ModelSpecError",
    "Price", "PriceTable", "ResponseCache", "RetryPolicy", "Tool", "ToolCall", "Usage", "UsageMeter",
    "cache_scope", "current_cache_scope", "default_cache", "get_model", "metered", "parse_spec",
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
    **defaults: Any,
) -> ChatModel:
    """A model from a spec: `local`, `local/qwen2.5-coder-0.5b`, `openrouter/<vendor>/<model>`,
    `openai/<model>`, or any model name with `base_url`.

    `cache`: True for the user cache, False for none, or a path / ResponseCache; None (the default) follows
    the run in progress (see `cache_scope`), else the user cache. `defaults` are
    generation parameters applied to every call (temperature, max_tokens, seed, provider extras …).
    `local_options` go to the embedded server (e.g. `{"cache_prompt": False}` for repeatable runs).
    """
    if isinstance(spec, ChatModel):
        return spec
    parsed = parse_spec(spec, base_url)
    if cache is None:
        cache = _run_cache.get()
        cache = True if cache is None else cache
    if cache is True:
        response_cache: ResponseCache | None = default_cache()
    elif cache is False or cache is None:
        response_cache = None
    elif isinstance(cache, ResponseCache):
        response_cache = cache
    else:
        response_cache = default_cache(Path(cache))
    common: dict[str, Any] = {"cache": response_cache, "retry": retry, "prices": prices}

    if parsed.provider == "local":
        from .local import ensure_server

        name = None if parsed.model == "default" else parsed.model
        options = local_options or {}
        server = ensure_server(name, **options)
        parsed = ModelSpec(parsed.spec, "local", server.model_name, server.base_url, None, True)
        return ChatModel(
            parsed, api_key="local", max_concurrency=max_concurrency or 1, identity=server.identity,
            info=server.describe(), timeout=900.0, reconnect=lambda: ensure_server(name, **options).base_url,
            **common, **defaults,
        )  # fmt: skip

    key = api_key or (read_secret(parsed.api_key_env) if parsed.api_key_env else None)
    if key is None and parsed.provider in ("openrouter", "openai"):
        raise ModelError(f"{parsed.spec}: no API key; set {parsed.api_key_env} in the environment or a .env file")
    return ChatModel(parsed, api_key=key, max_concurrency=max_concurrency or 8, **common, **defaults)
