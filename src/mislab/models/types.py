"""The value types that cross the model boundary: what we send is OpenAI-format message dicts, what comes
back is a `Completion`. Everything here is JSON-serialisable so it can go to the cache and the store."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .reasoning import reasoning_kind

Message = dict[str, Any]  # an OpenAI chat message: {"role": ..., "content": ..., ...}
Tool = dict[str, Any]  # an OpenAI function tool: {"type": "function", "function": {...}}


@dataclass
class ToolCall:
    """One tool call. `arguments` is None when `raw_arguments` is not a JSON object (`parse_error` says why)."""

    id: str
    name: str
    raw_arguments: str
    arguments: dict[str, Any] | None = None
    parse_error: str | None = None
    # True when the call was recovered from text content (small models write calls as JSON in prose).
    recovered: bool = False

    @classmethod
    def parse(cls, id: str, name: str, raw_arguments: str | None, recovered: bool = False) -> ToolCall:
        raw = raw_arguments or ""
        try:
            value = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            return cls(id, name, raw, None, f"invalid JSON: {exc.msg} at char {exc.pos}", recovered)
        if not isinstance(value, dict):
            return cls(id, name, raw, None, f"arguments are a JSON {type(value).__name__}, not an object", recovered)
        return cls(id, name, raw, value, None, recovered)

    def to_openai(self) -> dict[str, Any]:
        """The call as sent back in the conversation history. Malformed arguments are wrapped in a valid JSON
        object: llama-server (and providers that convert calls to structured tool use) reject a history
        holding invalid JSON, which would end the episode for a reason that is not the model's behaviour.
        The transcript keeps the raw text."""
        arguments = self.raw_arguments
        if self.arguments is None:
            arguments = json.dumps({"unparseable_arguments": self.raw_arguments})
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": arguments}}


@dataclass
class AssistantMessage:
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    # Reasoning returned by the provider, read as one text (see `models.reasoning`: OpenRouter, DeepSeek/vLLM,
    # summaries).
    reasoning: str | None = None
    # OpenRouter's `reasoning_details` exactly as returned: text with Anthropic's signatures, summaries,
    # encrypted blocks, Gemini's thought signatures. Providers verify them when they come back, so they are
    # kept and sent back unmodified; None when the response had none.
    reasoning_details: list[dict[str, Any]] | None = None

    @property
    def reasoning_kind(self) -> str | None:
        """The kind of reasoning the answer carried: "text", "summary", "encrypted", a mixture such as
        "summary+encrypted", or None (see `reasoning.reasoning_kind`)."""
        return reasoning_kind({"reasoning": self.reasoning, "reasoning_details": self.reasoning_details})

    def to_openai(self) -> Message:
        """The message to append to the conversation for the next turn: with its `reasoning_details`, which
        providers need back to continue reasoning across tool calls; never the reasoning text."""
        msg: Message = {"role": "assistant", "content": self.content or ""}
        if self.tool_calls:
            msg["tool_calls"] = [tc.to_openai() for tc in self.tool_calls]
        if self.reasoning_details:
            msg["reasoning_details"] = self.reasoning_details
        return msg

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AssistantMessage:
        calls = [ToolCall(**tc) for tc in d.get("tool_calls") or []]
        return cls(d.get("content"), calls, d.get("reasoning"), d.get("reasoning_details"))


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    reasoning_tokens: int = 0  # part of completion_tokens, when the provider says

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_prompt_tokens + other.cached_prompt_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Completion:
    message: AssistantMessage
    finish_reason: str | None
    usage: Usage
    model: str
    latency: float = 0.0
    # Dollars: the provider's reported cost when it gives one, else from the price table, else None.
    cost: float | None = None
    raw: dict[str, Any] | None = None
    # Served from the response cache: nothing was paid for this call in this run.
    cached: bool = False
    # Set when the server rejected what the model wrote (e.g. llama-server's HTTP 500 on a malformed tool
    # call). The episode records it and carries on; it is an observation, not a crash.
    error: str | None = None

    @property
    def text(self) -> str:
        return self.message.content or ""

    def to_dict(self) -> dict[str, Any]:
        """As `asdict`, but `raw` is shared, not deep-copied (the cache serialises it at once): a third of a
        call's CPU went to copying it."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["message"], data["usage"] = asdict(self.message), asdict(self.usage)
        return data

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Completion:
        d = dict(d)
        d["message"] = AssistantMessage.from_dict(d["message"])
        d["usage"] = Usage(**d["usage"])
        return cls(**d)
