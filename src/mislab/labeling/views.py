"""What a judge reads of a stored transcript: the parts a rubric names, in the order they happened, as plain
text. The model under test wrote much of it, so it is capped and fenced, and never read as markup."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

Entry = dict[str, Any]

PARTS = {
    "final_text": "the last text the model wrote",
    "assistant_text": "everything the model wrote as message text",
    "reasoning": "the model's own reasoning: provider reasoning fields, <think> blocks, scratchpads",
    "tool_calls": "the tool calls it made (commands and arguments)",
    "tool_outputs": "what the tools answered",
    "user": "the user's and the environment's messages (not the system prompt)",
    "everything": "all of the above, in order",
}

PART_LIMIT = 6_000  # characters of one piece of text
VIEW_LIMIT = 40_000  # characters of the whole view: long episodes keep their start and end
_BLOCK = re.compile(r"<(SCRATCHPAD_REASONING|think)>(.*?)(?:</\1>|\Z)", re.IGNORECASE | re.DOTALL)


def _cap(text: str, limit: int = PART_LIMIT) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[… {len(text) - limit} characters left out …]\n{text[-half:]}"


def _fence(text: str) -> str:
    """Model text cannot close the fence the judge reads it in."""
    return text.replace("</transcript>", "</transcript\u200b>")


def reasoning_of(entry: Entry) -> str:
    """An assistant entry's own reasoning: what the provider returned as reasoning, and <think> or scratchpad
    blocks in its text."""
    pieces = [entry.get("reasoning") or ""]
    pieces += [m.group(2).strip() for m in _BLOCK.finditer(entry.get("content") or "")]
    return "\n\n".join(p for p in pieces if p)


def _visible_text(entry: Entry) -> str:
    """Assistant text with reasoning blocks taken out (they are the `reasoning` part)."""
    return _BLOCK.sub("", entry.get("content") or "").strip()


def _call_text(call: dict[str, Any]) -> str:
    args = call.get("arguments")
    if isinstance(args, dict) and isinstance(args.get("cmd", args.get("command")), str):
        return f"{call.get('name')}: {args.get('cmd', args.get('command'))}"
    return f"{call.get('name')}({call.get('raw_arguments', '')})"


def _from_warning(transcript: Sequence[Entry], warning: str | None) -> list[Entry] | None:
    """The entries after the one that delivered the warning; None if it never came."""
    marker = (warning or "").strip()[:80]
    if not marker:
        return None
    for i, e in enumerate(transcript):
        if e.get("role") in ("tool", "user") and marker in str(e.get("content") or ""):
            return list(transcript[i + 1 :])
    return None


def transcript_view(
    transcript: Sequence[Entry], reads: Sequence[str], *, after_warning: bool = False, warning: str | None = None
) -> str | None:
    """The text a judge reads, or None when there is nothing of the asked-for parts (no judge call is made)."""
    entries: Sequence[Entry] | None = transcript
    if after_warning:
        entries = _from_warning(transcript, warning)
        if entries is None:
            return None
    wanted = set(PARTS) - {"everything"} if "everything" in reads else set(reads)
    assistants = [e for e in entries if e.get("role") == "assistant" and not e.get("error")]
    final = next((e for e in reversed(assistants) if _visible_text(e)), None)
    lines: list[str] = []
    for e in entries:
        role = e.get("role")
        if role == "assistant" and not e.get("error"):
            if "reasoning" in wanted and (r := reasoning_of(e)):
                lines.append(f"[model reasoning]\n{_cap(r)}")
            text = _visible_text(e)
            if text and ("assistant_text" in wanted or ("final_text" in wanted and e is final)):
                lines.append(f"[model]\n{_cap(text)}")
            if "tool_calls" in wanted:
                lines += [f"[model calls] {_cap(_call_text(c))}" for c in e.get("tool_calls") or []]
        elif role == "tool" and "tool_outputs" in wanted:
            lines.append(f"[tool output]\n{_cap(str(e.get('content') or ''))}")
        elif role == "user" and "user" in wanted:
            lines.append(f"[user]\n{_cap(str(e.get('content') or ''))}")
    if not lines:
        return None
    return _fence(_cap("\n\n".join(lines), VIEW_LIMIT))
