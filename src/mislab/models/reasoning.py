"""Reasoning that providers return beside a message, read into one text, and the reasoning tokens of a usage
block. Pure functions over the response JSON, so they hold for any client.

- OpenRouter: `message.reasoning` (text) and `message.reasoning_details` (a list of `reasoning.text`,
  `reasoning.summary` and `reasoning.encrypted` parts);
- DeepSeek, vLLM, llama.cpp: `message.reasoning_content`;
- OpenAI-style reasoning summaries: `reasoning_details` summaries or a `reasoning` object with a `summary`.
`<think>` blocks that open models write into the text itself stay in the text: readers (rubrics, the
transcript viewer) find them there."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ENCRYPTED = "[encrypted reasoning: the provider returned it, but not as text]"


def _detail_text(detail: Any) -> str:
    if not isinstance(detail, Mapping):
        return ""
    kind = str(detail.get("type", ""))
    if kind.endswith("encrypted"):
        return ENCRYPTED
    for key in ("text", "summary", "content"):
        value = detail.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, list):  # OpenAI-style summary parts: [{"type": "summary_text", "text": ...}]
            return "\n".join(_detail_text(v) for v in value if _detail_text(v)).strip()
    return ""


def reasoning_text(message: Mapping[str, Any]) -> str | None:
    """All the reasoning a message carries, as one text (None if it carries none)."""
    pieces: list[str] = []
    for key in ("reasoning", "reasoning_content"):
        value = message.get(key)
        if isinstance(value, str) and value.strip():
            pieces.append(value.strip())
        elif isinstance(value, Mapping):
            pieces.append(_detail_text(value))
    details = message.get("reasoning_details")
    if isinstance(details, list):
        for detail in details:
            text = _detail_text(detail)
            if text and text not in pieces:  # OpenRouter repeats its text parts in `reasoning`
                pieces.append(text)
    joined = "\n\n".join(p for p in pieces if p)
    return joined or None


def reasoning_tokens(usage: Mapping[str, Any] | None) -> int:
    """`usage.completion_tokens_details.reasoning_tokens` (OpenAI, OpenRouter), 0 when absent."""
    details = (usage or {}).get("completion_tokens_details") or {}
    value = details.get("reasoning_tokens") if isinstance(details, Mapping) else None
    return int(value) if isinstance(value, int | float) else 0
