"""What a judge reads of a stored transcript: the parts a rubric names, in the order they happened, as plain
text. The model under test wrote much of it, so it is capped and fenced, and never read as markup."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..scratchpad import extract_output

Entry = dict[str, Any]

PARTS = {
    "request": "the first user message: the task as posed",
    "final_text": "the last text the model wrote",
    "final_output": "the model's final answer: its last <OUTPUT> block when it writes in the scratchpad format "
    "(none if it reasoned but never answered), else the last text it wrote",
    "assistant_text": "everything the model wrote as message text",
    "reasoning": "the model's own reasoning: provider reasoning fields, <think> blocks, scratchpads",
    "tool_calls": "the tool calls it made (commands and arguments)",
    "tool_outputs": "what the tools answered",
    "user": "the user's and the environment's messages (not the system prompt)",
    "everything": "all of the above, in order (the final answer as written)",
}

PART_LIMIT = 6_000  # characters of one piece of text
VIEW_LIMIT = 40_000  # characters of the whole view: long episodes keep their start and end
_BLOCK = re.compile(r"<(SCRATCHPAD_REASONING|think)>(.*?)(?:</\1>|\Z)", re.IGNORECASE | re.DOTALL)
_SCRATCHPAD_FORMAT = re.compile(r"<\s*/?\s*(?:OUTPUT|SCRATCHPAD_REASONING)\s*>", re.IGNORECASE)


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


def _final_output(assistants: Sequence[Entry], final: Entry | None) -> str | None:
    joined = "\n\n".join(str(e.get("content") or "") for e in assistants)
    if _SCRATCHPAD_FORMAT.search(joined):
        # The scratchpad format's one reader, which the studies' scorers use too: a judge and a study agree on
        # what the answer was.
        return extract_output(joined) or None
    return _visible_text(final) if final else None


def transcript_view(
    transcript: Sequence[Entry], reads: Sequence[str], *, after_warning: bool = False, warning: str | None = None
) -> str | None:
    """The text a judge reads, or None when there is nothing of the asked-for parts (no judge call is made);
    the request alone is context, not something to judge. Parts are headed ("[model reasoning]", "[model
    calls]" …) unless the rubric reads one part only."""
    entries: Sequence[Entry] | None = transcript
    if after_warning:
        entries = _from_warning(transcript, warning)
        if entries is None:
            return None
    wanted = set(PARTS) - {"everything", "final_output"} if "everything" in reads else set(reads)
    assistants = [e for e in entries if e.get("role") == "assistant" and not e.get("error")]
    final = next((e for e in reversed(assistants) if _visible_text(e)), None)
    first_user = next((e for e in entries if e.get("role") == "user"), None)
    headed = len(wanted) > 1
    lines: list[str] = []
    context = 0  # lines that only give the request

    def add(header: str, text: str) -> None:
        lines.append(f"{header}\n{_cap(text)}" if headed else _cap(text))

    for e in entries:
        role = e.get("role")
        if role == "assistant" and not e.get("error"):
            if "reasoning" in wanted and (r := reasoning_of(e)):
                add("[model reasoning]", r)
            text = _visible_text(e)
            if text and ("assistant_text" in wanted or ("final_text" in wanted and e is final)):
                add("[model]", text)
            if "tool_calls" in wanted:
                lines += [f"[model calls] {_cap(_call_text(c))}" for c in e.get("tool_calls") or []]
        elif role == "tool" and "tool_outputs" in wanted:
            add("[tool output]", str(e.get("content") or ""))
        elif role == "user" and ("user" in wanted or ("request" in wanted and e is first_user)):
            add("[user]", str(e.get("content") or ""))
            context += "user" not in wanted
    if "final_output" in wanted and (output := _final_output(assistants, final)):
        add("[model's final answer]", output)
    if len(lines) == context:
        return None
    return _fence(_cap("\n\n".join(lines), VIEW_LIMIT))
