"""How an experiment file describes a model: its spec and where and how to reach it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

if TYPE_CHECKING:
    from .cache import ResponseCache
    from .chat import ChatModel


class ReasoningRequest(BaseModel):
    """OpenRouter's `reasoning` request parameter. Its fields are checked here because a misspelt one is
    ignored by the provider, and the run would measure the model without the reasoning it was meant to have."""

    model_config = ConfigDict(extra="forbid", strict=True)

    effort: str | None = Field(None, description='how hard to think: "low", "medium", "high" … (OpenAI-style)')
    max_tokens: PositiveInt | None = Field(None, description="a reasoning token budget (Anthropic-style)")
    exclude: bool | None = Field(None, description="reason, but leave the reasoning out of the response")
    enabled: bool | None = Field(None, description="reasoning on or off at the provider's default effort")

    @model_validator(mode="after")
    def _one_budget(self) -> ReasoningRequest:
        if self.effort is not None and self.max_tokens is not None:
            raise ValueError("give effort or max_tokens, not both")
        return self


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
    reasoning: ReasoningRequest | None = Field(
        None, description='reasoning to ask for, sent with every request: {effort = "high"} or {max_tokens = 2000}'
    )
    carry_reasoning: bool = Field(
        True, description="send each answer's reasoning_details (signatures, encrypted reasoning) back in later turns"
    )

    def build(
        self,
        *,
        cache: bool | str | Path | ResponseCache | None = None,
        concurrency: int | None = None,
        local_options: dict[str, Any] | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> ChatModel:
        """The client; `concurrency` is the experiment-wide default this model's own setting overrides.
        `defaults`, the generation parameters a run recorded for its model (temperature, extra_body, reasoning …),
        stand in for this model's `extra_body` and `reasoning`: a model given as an object has them only there."""
        from . import get_model
        from .retry import RetryPolicy

        if defaults is None:
            reasoning = {"reasoning": self.reasoning.model_dump(exclude_none=True)} if self.reasoning else {}
            defaults = {**({"extra_body": self.extra_body} if self.extra_body else {}), **reasoning}
        return get_model(
            self.name, self.base_url, cache=cache, max_concurrency=self.concurrency or concurrency,
            retry=RetryPolicy(max_attempts=self.retries) if self.retries else None, local_options=local_options,
            api_key_env=self.api_key_env, timeout=self.timeout, carry_reasoning=self.carry_reasoning, **defaults,
        )  # fmt: skip
