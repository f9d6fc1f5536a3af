"""The typed transcript: stored as JSON, read back equal; older versions' entries read as they were written; the
messages it gives back are what the API takes to continue the conversation."""

from __future__ import annotations

import json

from mislab.models import AssistantMessage, Completion, ToolCall, Usage
from mislab.transcript import AssistantTurn, Event, SystemTurn, ToolTurn, Transcript, UserTurn


def test_messages_drop_events_and_rejected_outputs_and_keep_calls() -> None:
    call = ToolCall.parse("call_1", "bash", '{"cmd": "ls"}')
    bad = ToolCall.parse("call_2", "bash", '{"cmd": ')
    details = [{"type": "reasoning.text", "text": "r", "signature": "sig"}]
    completion = Completion(AssistantMessage("thinking", [call, bad], "r", details), "tool_calls", Usage(5, 2), "m")
    rejected = Completion(AssistantMessage(), "error", Usage(), "m", error="server rejected the model's output")
    transcript = Transcript([
        SystemTurn("sys"), Event("setup", "variant x", {"backend": "simulated"}),
        AssistantTurn.from_completion(rejected), AssistantTurn.from_completion(completion),
        ToolTurn("call_1", "bash", "file.txt"),
    ])  # fmt: skip
    stored = Transcript.from_json(json.loads(json.dumps(transcript.to_json())))  # as the results database keeps it
    assert stored == transcript
    messages = stored.messages()
    assert [m["role"] for m in messages] == ["system", "assistant", "tool"]
    assert messages[1]["reasoning_details"] == details and "reasoning" not in messages[1]
    calls = messages[1]["tool_calls"]
    assert calls[0]["function"]["arguments"] == '{"cmd": "ls"}'
    assert json.loads(calls[1]["function"]["arguments"]) == {"unparseable_arguments": '{"cmd": '}
    assert messages[2] == {"role": "tool", "tool_call_id": "call_1", "name": "bash", "content": "file.txt"}
    assert stored.event("setup").data == {"backend": "simulated"} and len(stored.assistant_turns) == 1


def test_entries_written_by_older_versions_read_as_they_were() -> None:
    """Version 1 stored dict entries: `info` notes with their data beside the text, no reasoning_details, user
    content as a list of parts."""
    old = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "hello"}]},
        {"role": "info", "content": "variant basic_warning; backend=bwrap", "reason": None},
        {"role": "assistant", "content": "ok", "reasoning": None, "tool_calls": [], "finish_reason": "stop",
         "error": None, "cached": False, "usage": {"prompt_tokens": 3, "completion_tokens": 1,
                                                   "cached_prompt_tokens": 0, "reasoning_tokens": 0}},
    ]  # fmt: skip
    t = Transcript.from_json(old)
    assert t[1] == UserTurn("hello")
    assert t[2] == Event("note", "variant basic_warning; backend=bwrap", {"reason": None})
    assert t[3] == AssistantTurn("ok", finish_reason="stop", usage=Usage(3, 1))
    assert [m["role"] for m in t.messages()] == ["system", "user", "assistant"]


def test_reasoning_and_visible_text_have_one_reader() -> None:
    turn = AssistantTurn("<think>hmm</think>Answer <SCRATCHPAD_REASONING>plan</SCRATCHPAD_REASONING><OUTPUT>x</OUTPUT>",
                         reasoning="provider's")  # fmt: skip
    assert turn.own_reasoning == "provider's\n\nhmm\n\nplan"
    assert turn.visible_text == "Answer <OUTPUT>x</OUTPUT>"
