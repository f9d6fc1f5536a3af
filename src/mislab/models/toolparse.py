"""Recover tool calls that a model wrote as text.

Small models often answer a tool request with the call in prose instead of in the structured channel: a JSON
object with name and arguments, bare or in a ```json block, or inside Hermes-style `<tool_call>` tags. This
module finds such calls so an episode can still act on them, marked `recovered=True` so analyses can tell
them from calls the server parsed. It never raises: text that does not parse stays text.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Collection
from typing import Any

from mislab.models.types import ToolCall

_DECODER = json.JSONDecoder()
_TAG = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|\Z)", re.S)
_FENCE = re.compile(r"```[ \t]*(?:json|tool_call|tool_code)?[ \t]*\n?(.*?)```", re.S | re.I)
# Where a bare call may start in prose: an object (or an array of objects) opening with a quoted key.
_BARE_START = re.compile(r"(?:\[\s*)?\{\s*\"")
_MAX_MISSING_BRACES = 3


def _decode_all(text: str) -> list[Any] | None:
    """Every JSON value in `text`, which holds nothing else but whitespace and commas; None if it doesn't."""
    values: list[Any] = []
    pos, end = 0, len(text)
    while pos < end:
        if text[pos].isspace() or text[pos] == ",":
            pos += 1
            continue
        try:
            value, pos = _DECODER.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError):  # deep nesting exhausts the C decoder's stack
            return None
        values.append(value)
    return values


def _decode_loose(text: str) -> list[Any] | None:
    """Like `_decode_all`, forgiving what small models get wrong inside a clearly marked call: a dropped
    closing brace (they often stop one short) or a Python-style dict with single quotes and True/False."""
    text = text.strip()
    if not text:
        return None
    values = _decode_all(text)
    if values is not None:
        return values
    for missing in range(1, _MAX_MISSING_BRACES + 1):
        values = _decode_all(text + "}" * missing)
        if values is not None:
            return values
    try:
        return [ast.literal_eval(text)]
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _as_call(obj: Any, tool_names: Collection[str], require_arguments: bool) -> tuple[str, str] | None:
    """(name, raw arguments) when `obj` is a call to a known tool."""
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict):  # OpenAI-shaped: {"type": "function", "function": {...}}
        obj = obj["function"]
    name = obj.get("name")
    if not isinstance(name, str) or name not in tool_names:
        return None
    for key in ("arguments", "parameters"):
        if key in obj:
            args = obj[key]
            break
    else:
        if require_arguments:
            return None
        args = {}
    # A string is kept as written so that ToolCall.parse can report it if it is not a JSON object.
    raw = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
    return name, raw


def _calls_in(
    values: list[Any] | None, tool_names: Collection[str], require_arguments: bool
) -> list[tuple[str, str]] | None:
    """The calls in `values` (objects, or arrays of objects), or None unless every value is a call."""
    if not values:
        return None
    flat: list[Any] = []
    for value in values:
        flat.extend(value if isinstance(value, list) else [value])
    calls: list[tuple[str, str]] = []
    for obj in flat:
        call = _as_call(obj, tool_names, require_arguments)
        if call is None:
            return None
        calls.append(call)
    return calls or None


def recover_tool_calls(content: str | None, tool_names: Collection[str]) -> tuple[str | None, list[ToolCall]]:
    """Split `content` into the text that is left and the tool calls written in it.

    Only calls naming one of `tool_names` count. Returns `(content, [])` unchanged when no call is found;
    otherwise the text with the calls removed (None when nothing else was said) and the calls in the order
    they were written, with ids `recovered-0`, `recovered-1`, ….
    """
    if not content or not tool_names:
        return content, []
    names = frozenset(tool_names)
    found: list[tuple[int, int, list[tuple[str, str]]]] = []  # (start, end, calls) spans of `content`

    def taken(pos: int) -> bool:
        return any(start <= pos < end for start, end, _ in found)

    # Fences and tags mark intent, so their inside is decoded leniently and the whole block is removed.
    # Fences first: a model may put tagged calls in a fence, and the fence must go with them.
    for match in _FENCE.finditer(content):
        inner = _TAG.sub(lambda tag: tag.group(1) + "\n", match.group(1))
        calls = _calls_in(_decode_loose(inner), names, require_arguments=True)
        if calls:
            found.append((match.start(), match.end(), calls))
    for match in _TAG.finditer(content):
        if taken(match.start()):
            continue
        calls = _calls_in(_decode_loose(match.group(1)), names, require_arguments=False)
        if calls:
            found.append((match.start(), match.end(), calls))
    # Bare JSON in prose must be valid JSON with name and arguments: prose mentions tools in passing.
    pos = 0
    while bare := _BARE_START.search(content, pos):
        start = bare.start()
        pos = start + 1
        if taken(start):
            continue
        try:
            value, end = _DECODER.raw_decode(content, start)
        except (json.JSONDecodeError, RecursionError):
            continue
        calls = _calls_in([value], names, require_arguments=True)
        if calls:
            found.append((start, end, calls))
        # Skip the whole value either way: a call nested in other JSON is data, not a call.
        pos = end

    if not found:
        return content, []
    found.sort(key=lambda span: span[0])
    pieces: list[str] = []
    tool_calls: list[ToolCall] = []
    cursor = 0
    for start, end, calls in found:
        pieces.append(content[cursor:start])
        cursor = end
        for name, raw in calls:
            tool_calls.append(ToolCall.parse(f"recovered-{len(tool_calls)}", name, raw, recovered=True))
    pieces.append(content[cursor:])
    rest = re.sub(r"\n{3,}", "\n\n", "".join(pieces)).strip()
    return rest or None, tool_calls
