"""Reasoning that providers return beside a message: read into one text, said what kind it was, and what of it
goes back in later requests; and the reasoning tokens of a usage block. Pure functions over the JSON, so they
hold for any client.

- OpenRouter: `message.reasoning` (text) and `message.reasoning_details` (a list of `reasoning.text` parts,
  with Anthropic's `signature` or Gemini's thought signature, `reasoning.summary` and `reasoning.encrypted`
  parts); the details go back unmodified in later requests, which is how reasoning continues across tool
  calls (Gemini 3 refuses a tool-call history without its signatures);
- DeepSeek, vLLM, llama.cpp: `message.reasoning_content`, never sent back (DeepSeek refuses it);
- OpenAI-style reasoning summaries: `reasoning_details` summaries or a `reasoning` object with a `summary`.
`<think>` blocks that open models write into the text itself stay in the text: readers (rubrics, the
transcript viewer) find them there."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

ENCRYPTED = "[encrypted reasoning: the provider returned it, but not as text]"

# The kinds `reasoning_kind` names, in the order a mixture lists them.
KINDS = ("text", "summary", "encrypted")


def _detail_kind(detail: Mapping[str, Any]) -> str:
    kind = str(detail.get("type", "")).removeprefix("reasoning.")
    # A text part with no text but a signature is Gemini's thought signature: the reasoning happened, and came
    # back only in encrypted form.
    if kind == "text" and not str(detail.get("text") or "").strip() and detail.get("signature"):
        return "encrypted"
    return kind


def _detail_text(detail: Any) -> str:
    if not isinstance(detail, Mapping):
        return ""
    if _detail_kind(detail) == "encrypted":
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


def reasoning_kind(message: Mapping[str, Any]) -> str | None:
    """What kind of reasoning a message carries, so a report can say when it was summarised or hidden: "text"
    (as the model wrote it), "summary" (the provider's summary of it), "encrypted" (opaque blocks and
    signatures only), or a mixture such as "summary+encrypted"; None when it carries none."""
    details = message.get("reasoning_details")
    kinds = {_detail_kind(d) for d in details if isinstance(d, Mapping)} if isinstance(details, list) else set()
    reasoning = message.get("reasoning")
    if isinstance(reasoning, Mapping):  # OpenAI-style: {"summary": [...], "encrypted_content": ...}
        if reasoning.get("summary"):
            kinds.add("summary")
        if reasoning.get("encrypted_content"):
            kinds.add("encrypted")
    kinds.discard("")
    if not kinds and reasoning_text(message):  # DeepSeek's `reasoning_content`, or OpenRouter's text alone
        kinds.add("text")
    return "+".join([k for k in KINDS if k in kinds] + sorted(kinds - set(KINDS))) or None


# Reasoning a response carries that no request may: DeepSeek refuses `reasoning_content` in a request, and the
# text is only a reading of what `reasoning_details` carry.
_NEVER_SENT = ("reasoning", "reasoning_content")


def outgoing_messages(messages: Sequence[dict[str, Any]], carry: bool) -> list[dict[str, Any]]:
    """The conversation as sent: assistant turns keep their `reasoning_details` unmodified when `carry`, lose them
    otherwise, and never carry reasoning text. Messages with nothing to drop are passed as they are."""
    drop = _NEVER_SENT if carry else (*_NEVER_SENT, "reasoning_details")
    out = []
    for message in messages:
        if message.get("role") == "assistant" and any(key in message for key in drop):
            message = {k: v for k, v in message.items() if k not in drop}
        out.append(message)
    return out
