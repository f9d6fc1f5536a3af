"""Transcript entries round-trip to the messages the API takes (e.g. to replay or continue a stored episode)."""

from __future__ import annotations

import json

from mislab.models import AssistantMessage, Completion, ToolCall, Usage
from mislab.transcript import assistant_entry, info_entry, to_messages, tool_entry


def test_to_messages_drops_annotations_and_keeps_calls() -> None:
    call = ToolCall.parse("call_1", "bash", '{"cmd": "ls"}')
    bad = ToolCall.parse("call_2", "bash", '{"cmd": ')
    completion = Completion(AssistantMessage("thinking", [call, bad], reasoning="r"), "tool_calls", Usage(5, 2), "m")
    transcript = [
        {"role": "system", "content": "sys"},
        info_entry("variant x"),
        assistant_entry(completion),
        tool_entry("call_1", "bash", "file.txt"),
    ]
    messages = to_messages(json.loads(json.dumps(transcript)))  # as stored in the results database
    assert [m["role"] for m in messages] == ["system", "assistant", "tool"]
    calls = messages[1]["tool_calls"]
    assert calls[0]["function"]["arguments"] == '{"cmd": "ls"}'
    assert json.loads(calls[1]["function"]["arguments"]) == {"unparseable_arguments": '{"cmd": '}
    assert messages[2] == {"role": "tool", "tool_call_id": "call_1", "name": "bash", "content": "file.txt"}
