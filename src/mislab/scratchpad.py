"""The scratchpad format (Greenblatt et al. 2024, used by any study that asks for it): reasoning in
<SCRATCHPAD_REASONING> blocks, drafts in <DRAFT_OUTPUT>, the answer in <OUTPUT>; reasoning models' own <think>
blocks too. One reader of it, so a study's scorers and a judge's view agree on what the final answer is.

Pure functions: text in, value out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
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
    # Where the segment lies in the response, its tags included: text outside some blocks can be rebuilt exactly.
    start: int = field(default=0, compare=False)
    end: int = field(default=0, compare=False)


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

    tag_start = 0

    def add_text(end: int) -> None:
        if text[pos:end].strip():
            segments.append(Segment("text", text[pos:end], start=pos, end=end))

    for match in _BLOCK_TAG_RE.finditer(text):
        closing = match.group(1) == "/"
        kind = _BLOCK_KIND[match.group(2).lower()]
        if open_kind is not None:
            if closing and kind == open_kind:
                segments.append(Segment(open_kind, text[open_start : match.start()], start=tag_start, end=match.end()))
                open_kind, pos = None, match.end()
        elif not closing:
            add_text(match.start())
            open_kind, open_start, tag_start = kind, match.end(), match.start()
        elif not segments and pos == 0:
            segments.append(Segment(kind, text[: match.start()], start=0, end=match.end()))
            pos = match.end()
    if open_kind is not None:
        segments.append(Segment(open_kind, text[open_start:], closed=False, start=tag_start, end=len(text)))
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


REASONING_KINDS: tuple[SegmentKind, ...] = ("scratchpad", "think")


def reasoning_blocks(text: str) -> list[str]:
    """The text of every top-level <SCRATCHPAD_REASONING> and <think> block, in order, stripped (an unclosed block
    at the end included)."""
    return [s.text.strip() for s in segment_response(text) if s.kind in REASONING_KINDS and s.text.strip()]


def strip_reasoning(text: str) -> str:
    """The text with its reasoning blocks (and their tags) taken out, everything else exactly as written."""
    kept, pos = [], 0
    for s in segment_response(text):
        if s.kind in REASONING_KINDS:
            kept.append(text[pos : s.start])
            pos = s.end
    kept.append(text[pos:])
    return "".join(kept).strip()


def uses_scratchpad_format(text: str) -> bool:
    """The text is written in the scratchpad format (a scratchpad or an <OUTPUT> block)."""
    return any(s.kind in ("scratchpad", "output") for s in segment_response(text))


# A sentence ends at . ! ? (with closing quotes or brackets) before white space, or at a line break; a blank line
# or a list item starts a new one. Good enough to cut reasoning at "after the first F sentences".
_SENTENCE_END = re.compile(r"""(?<=[.!?])["')\]]*\s+|\n\s*""")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, end exclusive and the white space after it included, so that the
    spans tile the text: `text[:spans[k][0]]` is exactly the first k sentences as written."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        if text[start : match.start()].strip():
            spans.append((start, match.end()))
            start = match.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    elif spans:
        spans[-1] = (spans[-1][0], len(text))
    return spans
