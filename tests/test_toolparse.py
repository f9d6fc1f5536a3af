"""Recovering tool calls that small models write as text."""

from __future__ import annotations

import pytest

from mislab.models.toolparse import recover_tool_calls
from mislab.models.types import ToolCall

TOOLS = {"bash", "submit"}


def calls(content: str | None) -> list[tuple[str, dict | None]]:
    return [(c.name, c.arguments) for c in recover_tool_calls(content, TOOLS)[1]]


def test_fenced_json_block_is_a_call_and_the_fence_goes() -> None:
    text, found = recover_tool_calls('```json\n{\n  "name": "bash",\n  "arguments": {"cmd": "ls -la"}\n}\n```', TOOLS)
    assert text is None
    assert found == [ToolCall("recovered-0", "bash", '{"cmd": "ls -la"}', {"cmd": "ls -la"}, None, True)]


def test_bare_json_object() -> None:
    assert calls('{"name": "bash", "arguments": {"cmd": "pwd"}}') == [("bash", {"cmd": "pwd"})]


def test_tool_call_tags_with_prose_around() -> None:
    text, found = recover_tool_calls(
        'Let me look.\n<tool_call>\n{"name": "bash", "arguments": {"cmd": "cat notes.txt"}}\n</tool_call>\nDone.',
        TOOLS,
    )
    assert text == "Let me look.\n\nDone."
    assert [(c.id, c.name, c.arguments, c.recovered) for c in found] == [
        ("recovered-0", "bash", {"cmd": "cat notes.txt"}, True)
    ]


def test_parameters_key_and_arguments_as_a_json_string() -> None:
    assert calls('{"name": "bash", "parameters": {"cmd": "ls"}}') == [("bash", {"cmd": "ls"})]
    assert calls('{"name": "submit", "arguments": "{\\"answer\\": \\"4\\"}"}') == [("submit", {"answer": "4"})]


def test_openai_shaped_call() -> None:
    content = '{"type": "function", "function": {"name": "bash", "arguments": "{\\"cmd\\": \\"id\\"}"}}'
    assert calls(content) == [("bash", {"cmd": "id"})]


def test_several_calls_keep_their_order_and_get_numbered_ids() -> None:
    content = (
        'First {"name": "bash", "arguments": {"cmd": "ls"}} then\n'
        '<tool_call>{"name": "bash", "arguments": {"cmd": "wc -l notes.txt"}}</tool_call>\n'
        '```json\n{"name": "submit", "arguments": {"answer": "2"}}\n```'
    )
    text, found = recover_tool_calls(content, TOOLS)
    assert [(c.id, c.name, c.arguments) for c in found] == [
        ("recovered-0", "bash", {"cmd": "ls"}),
        ("recovered-1", "bash", {"cmd": "wc -l notes.txt"}),
        ("recovered-2", "submit", {"answer": "2"}),
    ]
    assert text == "First  then"


def test_json_lines_and_arrays_of_calls() -> None:
    lines = '{"name": "bash", "arguments": {"cmd": "a"}}\n{"name": "bash", "arguments": {"cmd": "b"}}'
    assert calls(lines) == [("bash", {"cmd": "a"}), ("bash", {"cmd": "b"})]
    array = '```json\n[{"name": "bash", "arguments": {"cmd": "a"}}, {"name": "submit", "arguments": {}}]\n```'
    assert calls(array) == [("bash", {"cmd": "a"}), ("submit", {})]


def test_tags_inside_a_fence() -> None:
    content = '```\n<tool_call>\n{"name": "bash", "arguments": {"cmd": "ls"}}\n</tool_call>\n```'
    assert recover_tool_calls(content, TOOLS)[0] is None
    assert calls(content) == [("bash", {"cmd": "ls"})]


def test_lenient_inside_tags_missing_brace_single_quotes_unclosed_tag() -> None:
    assert calls('<tool_call>{"name": "bash", "arguments": {"cmd": "ls"}</tool_call>') == [("bash", {"cmd": "ls"})]
    assert calls("<tool_call>{'name': 'bash', 'arguments': {'cmd': 'ls'}}</tool_call>") == [("bash", {"cmd": "ls"})]
    assert calls('<tool_call>\n{"name": "bash", "arguments": {"cmd": "ls"}}') == [("bash", {"cmd": "ls"})]
    # Inside tags the intent is clear, so a call without arguments is a call with none.
    assert calls('<tool_call>{"name": "submit"}</tool_call>') == [("submit", {})]


def test_arguments_that_are_not_an_object_keep_the_raw_text_and_the_reason() -> None:
    (call,) = recover_tool_calls('<tool_call>{"name": "bash", "arguments": "ls -la"}</tool_call>', TOOLS)[1]
    assert call.arguments is None
    assert call.raw_arguments == "ls -la"
    assert call.parse_error and "invalid JSON" in call.parse_error
    (call,) = recover_tool_calls('{"name": "bash", "arguments": ["ls"]}', TOOLS)[1]
    assert call.arguments is None and call.parse_error and "list" in call.parse_error


@pytest.mark.parametrize(
    "content",
    [
        '{"name": "python", "arguments": {"code": "print(1)"}}',  # unknown tool
        '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>',
        '{"name": "bash", "arguments": {"cmd": "ls"',  # truncated bare JSON
        '{"name": "bash", "arguments": {"cmd": "tr -d \'"\'"}}',  # unescaped quote, as the 1.5B model wrote
        '<tool_call>{"name": "bash", "arguments": {"cmd": </tool_call>',
        '```json\n{"name": "Alice", "age": 30}\n```',  # JSON that is not a call
        '{"name": "bash"}',  # bare and without arguments: a mention, not a call
        "I would use bash to run ls, with {braces} in prose.",
        "plain text { not json",
        "<tool_call></tool_call>",
        "",
    ],
)
def test_no_call_means_text_unchanged(content: str) -> None:
    assert recover_tool_calls(content, TOOLS) == (content, [])


def test_none_content_and_no_tools() -> None:
    assert recover_tool_calls(None, TOOLS) == (None, [])
    assert recover_tool_calls('{"name": "bash", "arguments": {}}', []) == ('{"name": "bash", "arguments": {}}', [])


def test_a_call_nested_in_other_json_is_data() -> None:
    content = 'Config: {"tool": {"name": "bash", "arguments": {"cmd": "ls"}}}'
    assert recover_tool_calls(content, TOOLS) == (content, [])


def test_unicode_arguments_survive() -> None:
    assert calls('{"name": "submit", "arguments": {"answer": "déjà vu ✓"}}') == [("submit", {"answer": "déjà vu ✓"})]


def test_never_raises_on_odd_input() -> None:
    odd = ["{" * 5000, "[" * 5000 + "{", "<tool_call>" + "{" * 2000, '{"name": ' * 300, "```" * 100]
    odd += ['{"a": ' * 1500, "<tool_call>" + '{"a": [' * 1500 + "</tool_call>", "```json\n" + "[" * 5000 + "\n```"]
    for content in odd:
        text, found = recover_tool_calls(content, TOOLS)
        assert text == content and found == []
