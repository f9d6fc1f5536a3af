"""The scratchpad format's one reader (`mislab.scratchpad`): top-level blocks, reasoning apart from the final
output."""

from __future__ import annotations

from mislab.scratchpad import extract_output, extract_scratchpad, extract_think, segment_response

SP = "<SCRATCHPAD_REASONING>{}</SCRATCHPAD_REASONING>"


def test_extract_scratchpad_joins_top_level_blocks_and_think_is_separate() -> None:
    text = SP.format("first") + "\n" + SP.format(" second ") + "<think>private</think><OUTPUT>hi</OUTPUT>"
    assert extract_scratchpad(text) == "first\n\nsecond"
    assert extract_think(text) == "private"
    assert extract_output(text) == "hi"
    assert extract_scratchpad("no tags at all") == ""


def test_segments_mark_unclosed_blocks() -> None:
    segments = segment_response("pre <OUTPUT>x</OUTPUT> mid <think>unfinished")
    assert [(s.kind, s.closed) for s in segments] == [
        ("text", True),
        ("output", True),
        ("text", True),
        ("think", False),
    ]
