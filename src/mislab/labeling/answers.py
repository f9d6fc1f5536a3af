"""Reading a rubric judge's answer: `<answer>yes|no</answer>` and `<confidence>0-100</confidence>`. A text
that says neither is unreadable (None), never a yes or a no."""

from __future__ import annotations

import re

_ANSWER_TAG = re.compile(r"<answer>\s*\**\s*(yes|no)\b", re.IGNORECASE)
_ANSWER_LINE = re.compile(r"^\W*(?:final\s+)?answer\W*\s*(yes|no)\b", re.IGNORECASE | re.MULTILINE)
_CONFIDENCE = re.compile(r"<confidence>\s*(\d{1,3}(?:\.\d+)?)\s*%?\s*</confidence>", re.IGNORECASE)


def parse_answer(text: str) -> bool | None:
    """The judge's yes/no: the last `<answer>` tag, else the last "Answer: yes|no" line; None if neither."""
    found = _ANSWER_TAG.findall(text) or _ANSWER_LINE.findall(text)
    return found[-1].lower() == "yes" if found else None


def parse_confidence(text: str) -> float | None:
    """The judge's probability that the answer is yes, in [0, 1]; None if absent or out of range."""
    found = _CONFIDENCE.findall(text)
    if not found:
        return None
    value = float(found[-1])
    return value / 100 if 0 <= value <= 100 else None
