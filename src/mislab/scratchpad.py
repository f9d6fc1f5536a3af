"""The scratchpad format (Greenblatt et al. 2024, used by any study that asks for it): reasoning in
<SCRATCHPAD_REASONING> blocks, drafts in <DRAFT_OUTPUT>, the answer in <OUTPUT>; reasoning models' own <think>
blocks too. One reader of it, so a study's scorers and a judge's view agree on what the final answer is.

Pure functions: text in, value out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

SegmentKind = Literal["scratchpad", "think", "draft", "output", "text"]

_BLOCK_KIND: dict[str, SegmentKind] = {
    "scratchpad_reasoning": "scratchpad",
    "think": "think",
    "draft_output": "draft",
    "output": "output",
}
_BLOCK_TAG_RE = re.compile(r"<(/?)\s*(SCRATCHPAD_REASONING|DRAFT_OUTPUT|OUTPUT|think)\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class Segment:
    """A top-level piece of a response. `closed` is False for a block cut off by the end of the text."""

    kind: SegmentKind
    text: str
    closed: bool = True


def segment_response(text: str) -> list[Segment]:
    """Split a response into top-level blocks and the plain text between them.

    Inside a block only its own closing tag counts, so a scratchpad that mentions `<OUTPUT>` while planning
    does not open an output. A closing tag with no opening tag at the very start of the response closes a
    block that the prompt opened (an assistant prefill of `<OUTPUT>`, or a chat template that starts the
    reply inside `<think>`), so the text before it is that block. Any other stray closing tag is plain text.
    """
    segments: list[Segment] = []
    pos = 0
    open_kind: SegmentKind | None = None
    open_start = 0

    def add_text(end: int) -> None:
        if text[pos:end].strip():
            segments.append(Segment("text", text[pos:end]))

    for match in _BLOCK_TAG_RE.finditer(text):
        closing = match.group(1) == "/"
        kind = _BLOCK_KIND[match.group(2).lower()]
        if open_kind is not None:
            if closing and kind == open_kind:
                segments.append(Segment(open_kind, text[open_start : match.start()]))
                open_kind, pos = None, match.end()
        elif not closing:
            add_text(match.start())
            open_kind, open_start = kind, match.end()
        elif not segments and pos == 0:
            segments.append(Segment(kind, text[: match.start()]))
            pos = match.end()
    if open_kind is not None:
        segments.append(Segment(open_kind, text[open_start:], closed=False))
    else:
        add_text(len(text))
    return segments


def _join(segments: Sequence[Segment], kind: SegmentKind) -> str:
    return "\n\n".join(s.text.strip() for s in segments if s.kind == kind and s.text.strip())


def extract_scratchpad(text: str) -> str:
    """All top-level <SCRATCHPAD_REASONING> blocks, stripped and joined by blank lines ('' if none)."""
    return _join(segment_response(text), "scratchpad")


def extract_think(text: str) -> str:
    """All top-level <think> blocks (reasoning models' own channel), joined like `extract_scratchpad`."""
    return _join(segment_response(text), "think")


def split_final_output(segments: Sequence[Segment]) -> tuple[str | None, str]:
    """(final output, everything else). The final output is the last <OUTPUT> block; with no OUTPUT and no
    scratchpad (the prefill case) it is the plain text outside <think>/<DRAFT_OUTPUT> blocks; with a
    scratchpad but no OUTPUT there is none."""
    outputs = [i for i, s in enumerate(segments) if s.kind == "output"]
    if outputs:
        last = outputs[-1]
        rest = "\n".join(s.text for i, s in enumerate(segments) if i != last)
        return segments[last].text.strip(), rest
    if any(s.kind == "scratchpad" for s in segments):
        return None, "\n".join(s.text for s in segments)
    output = "\n".join(s.text for s in segments if s.kind == "text").strip()
    return output, "\n".join(s.text for s in segments if s.kind != "text")


def extract_output(text: str) -> str | None:
    """The final output, stripped: see `split_final_output`. None when the model reasoned but never answered."""
    return split_final_output(segment_response(text))[0]
