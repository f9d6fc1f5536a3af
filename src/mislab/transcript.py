"""Transcripts: what a sample's conversation looked like, stored as a list of JSON-able entries.

Entries are OpenAI-format messages (role system/user/assistant/tool) enriched with what the model layer
knows (parsed and recovered tool calls, reasoning text, finish reason, server-rejected output, cache hits),
plus `info` entries the environment writes (e.g. "the machine shut down"). Reports and the Inspect export
read this shape; `to_messages` turns it back into what the API takes."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .models import Completion, Message, ToolCall

Entry = dict[str, Any]


def assistant_entry(completion: Completion) -> Entry:
    msg = completion.message
    return {
        "role": "assistant",
        "content": msg.content or "",
        "reasoning": msg.reasoning,
        "tool_calls": [asdict(tc) for tc in msg.tool_calls],
        "finish_reason": completion.finish_reason,
        "error": completion.error,
        "cached": completion.cached,
        "usage": asdict(completion.usage),
    }


def tool_entry(call_id: str, name: str, content: str) -> Entry:
    return {"role": "tool", "tool_call_id": call_id, "name": name, "content": content}


def info_entry(text: str, **data: Any) -> Entry:
    """An environment note shown in the transcript but never sent to the model."""
    return {"role": "info", "content": text, **data}


def to_messages(transcript: list[Entry]) -> list[Message]:
    """The API messages of a transcript (info entries and mislab's annotations dropped)."""
    out: list[Message] = []
    for e in transcript:
        if e["role"] == "info":
            continue
        if e["role"] == "assistant":
            msg: Message = {"role": "assistant", "content": e.get("content") or ""}
            if e.get("tool_calls"):
                msg["tool_calls"] = [ToolCall(**tc).to_openai() for tc in e["tool_calls"]]
            out.append(msg)
        else:
            out.append({k: v for k, v in e.items() if k in ("role", "content", "tool_call_id", "name")})
    return out
