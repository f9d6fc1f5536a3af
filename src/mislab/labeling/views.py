"""What a judge reads of a stored transcript: the parts a rubric names, in the order they happened, as plain
text. The model under test wrote much of it, so it is capped and fenced, and never read as markup."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..scratchpad import extract_output, uses_scratchpad_format
from ..transcript import AssistantTurn, ToolTurn, Transcript, Turn, UserTurn

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


def _cap(text: str, limit: int = PART_LIMIT) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[… {len(text) - limit} characters left out …]\n{text[-half:]}"


def _fence(text: str) -> str:
    """Model text cannot close the fence the judge reads it in."""
    return text.replace("</transcript>", "</transcript\u200b>")


def _call_text(name: str, arguments: dict[str, Any] | None, raw: str) -> str:
    if isinstance(arguments, dict) and isinstance(arguments.get("cmd", arguments.get("command")), str):
        return f"{name}: {arguments.get('cmd', arguments.get('command'))}"
    return f"{name}({raw})"


def _from_warning(transcript: Transcript, warning: str | None) -> list[Turn] | None:
    """The turns after the one that delivered the warning; None if it never came. The environment's own record
    says where (a `warning` event); a transcript without one is searched for the warning's text."""
    event = transcript.event("warning")
    if event is not None:
        return list(transcript.turns[transcript.index(event) + 1 :])
    marker = (warning or "").strip()[:80]
    if not marker:
        return None
    for i, t in enumerate(transcript):
        if isinstance(t, ToolTurn | UserTurn) and marker in t.content:
            return list(transcript.turns[i + 1 :])
    return None


def _final_output(assistants: Sequence[AssistantTurn], final: AssistantTurn | None) -> str | None:
    joined = "\n\n".join(t.content for t in assistants)
    if uses_scratchpad_format(joined):
        # The scratchpad format's one reader, which the studies' scorers use too: a judge and a study agree on
        # what the answer was.
        return extract_output(joined) or None
    return final.visible_text if final else None


def transcript_view(
    transcript: Transcript | Sequence[dict[str, Any]],
    reads: Sequence[str],
    *,
    after_warning: bool = False,
    warning: str | None = None,
) -> str | None:
    """The text a judge reads, or None when there is nothing of the asked-for parts (no judge call is made);
    the request alone is context, not something to judge. Parts are headed ("[model reasoning]", "[model
    calls]" …) unless the rubric reads one part only. `transcript` may also be plain OpenAI-format messages."""
    transcript = Transcript.from_json(transcript)
    turns = _from_warning(transcript, warning) if after_warning else transcript.turns
    if turns is None:
        return None
    wanted = set(PARTS) - {"everything", "final_output"} if "everything" in reads else set(reads)
    assistants = [t for t in turns if isinstance(t, AssistantTurn) and t.error is None]
    final = next((t for t in reversed(assistants) if t.visible_text), None)
    first_user = next((t for t in turns if isinstance(t, UserTurn)), None)
    headed = len(wanted) > 1
    lines: list[str] = []
    context = 0  # lines that only give the request

    def add(header: str, text: str) -> None:
        lines.append(f"{header}\n{_cap(text)}" if headed else _cap(text))

    for t in turns:
        if isinstance(t, AssistantTurn) and t.error is None:
            if "reasoning" in wanted and (r := t.own_reasoning):
                add("[model reasoning]", r)
            text = t.visible_text
            if text and ("assistant_text" in wanted or ("final_text" in wanted and t is final)):
                add("[model]", text)
            if "tool_calls" in wanted:
                lines += [f"[model calls] {_cap(_call_text(c.name, c.arguments, c.raw_arguments))}"
                          for c in t.tool_calls]  # fmt: skip
        elif isinstance(t, ToolTurn) and "tool_outputs" in wanted:
            add("[tool output]", t.content)
        elif isinstance(t, UserTurn) and ("user" in wanted or ("request" in wanted and t is first_user)):
            add("[user]", t.content)
            context += "user" not in wanted
    if "final_output" in wanted and (output := _final_output(assistants, final)):
        add("[model's final answer]", output)
    if len(lines) == context:
        return None
    return _fence(_cap("\n\n".join(lines), VIEW_LIMIT))
