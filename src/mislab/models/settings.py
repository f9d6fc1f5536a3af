"""How an experiment file describes a model: its spec and where and how to reach it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

if TYPE_CHECKING:
    from .cache import ResponseCache
    from .chat import ChatModel


class ModelSettings(BaseModel):
    """One model of an experiment: a spec, or a spec with settings, e.g.
    `{name = "openrouter/openai/o3", timeout = 120, extra_body = {provider = {order = ["openai"]}}}`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, description="model spec (local, openrouter/<vendor>/<model>, openai/<model>)")
    base_url: str | None = Field(None, description="any OpenAI-compatible server (vLLM, llama.cpp, Ollama …)")
    api_key_env: str | None = Field(None, description="environment variable (or .env entry) holding the key")
    timeout: PositiveFloat | None = Field(None, description="seconds per request (default 300; local 900)")
    retries: PositiveInt | None = Field(None, description="attempts per request, the first included (default 6)")
    concurrency: PositiveInt | None = Field(None, description="requests in flight (default 8; local 1)")
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="provider parameters sent with every request (routing, reasoning …)"
    )

    def build(
        self,
        *,
        cache: bool | str | Path | ResponseCache | None = None,
        concurrency: int | None = None,
        local_options: dict[str, Any] | None = None,
    ) -> ChatModel:
        """The client; `concurrency` is the experiment-wide default this model's own setting overrides."""
        from . import get_model
        from .retry import RetryPolicy

        extras: dict[str, Any] = {"extra_body": self.extra_body} if self.extra_body else {}
        return get_model(
            self.name, self.base_url, cache=cache, max_concurrency=self.concurrency or concurrency,
            retry=RetryPolicy(max_attempts=self.retries) if self.retries else None, local_options=local_options,
            api_key_env=self.api_key_env, timeout=self.timeout, **extras,
        )  # fmt: skip
