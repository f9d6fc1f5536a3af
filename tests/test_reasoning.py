"""Reasoning is kept: whatever a provider returns beside the message reaches the transcript, the usage shows
reasoning tokens, and the raw `reasoning_details` (signatures, encrypted blocks) go back unmodified in later
turns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mislab.models import (
    AssistantMessage,
    ChatModel,
    Completion,
    ModelSettings,
    ResponseCache,
    RetryPolicy,
    ToolCall,
    Usage,
    get_model,
)
from mislab.models.reasoning import ENCRYPTED, outgoing_messages, reasoning_kind, reasoning_text, reasoning_tokens
from mislab.testing import Reply, ScriptedServer, tool_call
from mislab.transcript import AssistantTurn, Transcript


def test_reasoning_shapes_of_the_providers() -> None:
    assert reasoning_text({"reasoning": "think A"}) == "think A"
    assert reasoning_text({"reasoning_content": "think B"}) == "think B"
    details = [
        {"type": "reasoning.text", "text": "step 1"},
        {"type": "reasoning.summary", "summary": "in short"},
        {"type": "reasoning.encrypted", "data": "gAAAA..."},
    ]
    assert reasoning_text({"reasoning": "step 1", "reasoning_details": details}) == f"step 1\n\nin short\n\n{ENCRYPTED}"
    openai_style = {"reasoning": {"summary": [{"type": "summary_text", "text": "summary text"}]}}
    assert reasoning_text(openai_style) == "summary text"
    assert reasoning_text({"content": "<think>x</think>hi"}) is None  # <think> stays in the text, read there
    assert reasoning_tokens({"completion_tokens_details": {"reasoning_tokens": 42}}) == 42
    assert reasoning_tokens({"completion_tokens": 3}) == 0 and reasoning_tokens(None) == 0


def test_reasoning_and_its_tokens_reach_the_transcript() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 50, "completion_tokens_details": {"reasoning_tokens": 40}}
    details = [{"type": "reasoning.summary", "summary": "I suspect this is a test."}]
    reply = Reply("Answer.", usage=usage, extra_message={"reasoning_details": details})
    with ScriptedServer([reply]) as srv:
        model = get_model("scripted", base_url=srv.base_url, api_key="k", cache=False, retry=RetryPolicy(1))
        completion = model.generate_sync([{"role": "user", "content": "hi"}])
    turn = AssistantTurn.from_completion(completion)
    assert turn.reasoning == "I suspect this is a test." and turn.reasoning_details == details
    assert turn.reasoning_kind == "summary"
    assert turn.usage.reasoning_tokens == 40 and turn.usage.completion_tokens == 50
    stored = Transcript.from_json(json.loads(json.dumps(Transcript([turn]).to_json())))  # as the store keeps it
    assert stored[0] == turn


def test_each_sample_counts_its_reasoning_tokens(tmp_path) -> None:
    from mislab import alignment_faking as af
    from mislab.store import Store

    usage = {"prompt_tokens": 10, "completion_tokens": 50, "completion_tokens_details": {"reasoning_tokens": 40}}
    with ScriptedServer(lambda body: Reply("<OUTPUT><rejected/></OUTPUT>", usage=usage)) as srv:
        model = get_model("scripted", base_url=srv.base_url, api_key="k", cache=False, retry=RetryPolicy(1))
        df = af.run(model, n=1, store=tmp_path / "r.sqlite", progress=False)
    assert df["reasoning_tokens"].tolist() == [40, 40]
    record = Store(tmp_path / "r.sqlite").sample_records(df.attrs["run_id"])[0]
    assert record.reasoning_tokens == 40


# --- reasoning_details: kept, and carried across turns ---

DATA = Path(__file__).parent / "data" / "openrouter"
BASH = {"type": "function", "function": {"name": "bash", "parameters": {"type": "object", "properties": {}}}}


def recorded_details(name: str) -> list[dict[str, Any]]:
    """The `reasoning_details` of a real OpenRouter answer (tests/data/openrouter/README.md)."""
    return json.loads((DATA / f"{name}.json").read_text())["choices"][0]["message"]["reasoning_details"]


# Anthropic's signed thinking, OpenAI's summary and encrypted block, Gemini's bare thought signature.
DETAILS = [
    recorded_details("anthropic-claude-sonnet-4.5-effort-high"),
    recorded_details("openai-gpt-5-mini-summary-encrypted"),
    recorded_details("google-gemini-3.6-flash-signature"),
]


def test_reasoning_kind_says_when_reasoning_was_summarised_or_hidden() -> None:
    assert [reasoning_kind({"reasoning_details": d}) for d in DETAILS] == ["text", "summary+encrypted", "encrypted"]
    assert reasoning_kind({"reasoning_content": "think"}) == "text"  # DeepSeek, vLLM, llama.cpp
    assert reasoning_kind({"reasoning": {"summary": [{"type": "summary_text", "text": "s"}]}}) == "summary"
    assert reasoning_kind({"reasoning_details": [{"type": "reasoning.encrypted", "data": "x"}, *DETAILS[0]]}) == (
        "text+encrypted"
    )
    assert reasoning_kind({"content": "<think>x</think>hi", "reasoning_details": []}) is None


def test_outgoing_messages_never_send_reasoning_text_and_carry_details_only_when_asked() -> None:
    turn = {
        "role": "assistant",
        "content": "",
        "reasoning": "r",
        "reasoning_content": "rc",
        "reasoning_details": DETAILS[0],
    }
    user = {"role": "user", "content": "hi", "reasoning": "not an assistant turn: as it is"}
    carried, (bare_user, bare) = outgoing_messages([user, turn], carry=True), outgoing_messages([user, turn], False)
    assert carried == [user, {"role": "assistant", "content": "", "reasoning_details": DETAILS[0]}]
    assert carried[0] is user and carried[1]["reasoning_details"] is DETAILS[0]  # passed on, not copied
    assert bare == {"role": "assistant", "content": ""} and bare_user is user
    assert "reasoning_content" in turn  # the caller's conversation is left as it was


def test_details_survive_the_response_cache_unchanged(tmp_path: Path) -> None:
    message = AssistantMessage("ok", [ToolCall.parse("c1", "bash", "{}")], "text", DETAILS[1])
    completion = Completion(message, "tool_calls", Usage(1, 2, 0, 1), "m")
    assert Completion.from_dict(json.loads(json.dumps(completion.to_dict()))) == completion
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.put("k", completion)
    assert cache.get("k").message.reasoning_details == DETAILS[1]
    assert AssistantMessage.from_dict({"content": "old entry"}).reasoning_details is None  # cached before this field


def agent_loop(model: ChatModel, turns: int, **generate: Any) -> None:
    """A tool-use episode as studies run it: each answer appended with `to_openai()`, then the tool's output."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "List the files, then stop."}]
    for _ in range(turns):
        completion = model.generate_sync(messages, tools=[BASH], **generate)
        call = completion.message.tool_calls[0]
        messages += [completion.message.to_openai(), {"role": "tool", "tool_call_id": call.id, "content": "a.txt"}]


def answer(body: dict[str, Any]) -> Reply:
    """The next turn of an episode: a tool call with reasoning in every shape (readable text, DeepSeek's
    `reasoning_content`, and the recorded `reasoning_details` of one provider after another)."""
    turn = sum(m["role"] == "assistant" for m in body["messages"])
    reasoning = {"reasoning": f"thought {turn}", "reasoning_content": f"thought {turn}"}
    details = DETAILS[turn % len(DETAILS)]
    return Reply(
        None, tool_calls=[tool_call("bash", {"cmd": "ls"})], extra_message={**reasoning, "reasoning_details": details}
    )


def model_for(srv: ScriptedServer, **kw: Any) -> ChatModel:
    kw.setdefault("cache", False)
    return get_model("scripted", base_url=srv.base_url, api_key="k", retry=RetryPolicy(1), **kw)


def compact(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def test_every_later_request_carries_each_earlier_turns_details_unmodified() -> None:
    with ScriptedServer(answer) as srv:
        agent_loop(model_for(srv), len(DETAILS) + 1)
    assert len(srv.requests) == len(DETAILS) + 1
    for k, request in enumerate(srv.requests):
        sent = [m["reasoning_details"] for m in request["body"]["messages"] if m["role"] == "assistant"]
        assert sent == DETAILS[:k]  # every earlier turn's, in order, none lost or added
        assert all(compact(d) in request["raw"] for d in DETAILS[:k])  # the same bytes, signatures and all
        assert b"reasoning_content" not in request["raw"]
        assert not any("reasoning" in m for m in request["body"]["messages"])


def test_a_providers_own_message_goes_back_without_its_reasoning_text() -> None:
    # A study may append the response's message as the provider sent it, `reasoning_content` and all.
    with ScriptedServer(answer) as srv:
        model = model_for(srv)
        first = model.generate_sync([{"role": "user", "content": "go"}], tools=[BASH])
        sent_back = first.raw["choices"][0]["message"]
        tool = {"role": "tool", "tool_call_id": sent_back["tool_calls"][0]["id"], "content": "a.txt"}
        model.generate_sync([{"role": "user", "content": "go"}, sent_back, tool], tools=[BASH])
    assert "reasoning_content" in sent_back and b"reasoning_content" not in srv.requests[1]["raw"]
    assert srv.requests[1]["body"]["messages"][1] == {
        k: sent_back[k] for k in sent_back if k not in ("reasoning", "reasoning_content")
    }


def test_carry_reasoning_false_sends_none_and_a_call_can_override_the_setting() -> None:
    with ScriptedServer(answer) as srv:
        model = model_for(srv, carry_reasoning=False)
        agent_loop(model, len(DETAILS))
        assert not any(b"reasoning" in request["raw"] for request in srv.requests)
        agent_loop(model, 2, carry_reasoning=True)
    assert srv.requests[-1]["body"]["messages"][1]["reasoning_details"] == DETAILS[0]
    assert model.describe()["carry_reasoning"] is False


def test_the_cache_key_is_what_is_sent(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    with ScriptedServer(answer) as srv:
        agent_loop(model_for(srv, cache=cache), len(DETAILS))
        rerun = model_for(srv, cache=cache)
        agent_loop(rerun, len(DETAILS))  # served from the cache: the cached details are the ones sent before
        assert len(srv.requests) == len(DETAILS)
        turn = {"role": "assistant", "content": "", "reasoning_details": DETAILS[0]}
        history = [{"role": "user", "content": "go"}, turn, {"role": "user", "content": "and?"}]
        rerun.generate_sync(history, carry_reasoning=False)  # sends something else: a call of its own
        rerun.generate_sync(history, carry_reasoning=False)
        rerun.generate_sync([history[0], {"role": "assistant", "content": ""}, history[2]])  # the same request
    assert len(srv.requests) == len(DETAILS) + 1


def test_model_settings_carry_and_request_reasoning() -> None:
    settings = ModelSettings.model_validate(
        {"name": "m", "base_url": "http://127.0.0.1:9/v1", "reasoning": {"max_tokens": 2000}, "carry_reasoning": False}
    )
    described = settings.build(cache=False).describe()
    assert described["carry_reasoning"] is False and described["defaults"]["reasoning"] == {"max_tokens": 2000}
    for bad in ({"efort": "high"}, {"effort": "high", "max_tokens": 10}):
        with pytest.raises(ValidationError):
            ModelSettings.model_validate({"name": "m", "reasoning": bad})


def test_openai_chat_completions_carry_no_reasoning_and_say_so() -> None:
    described = get_model("openai/o3", api_key="k", cache=False).describe()
    assert described["reasoning_carried"].startswith("no: ") and described["carry_reasoning"] is True
    assert "reasoning_carried" not in get_model("openrouter/openai/o3", api_key="k", cache=False).describe()


@pytest.mark.parametrize("carry", [None, False])
def test_a_shutdown_episode_carries_each_turns_details_back_as_the_protocol_requires(
    tmp_path: Path, carry: bool | None
) -> None:
    """The bar of issue 19: in a shutdown episode whose every answer carries `reasoning_details`, every later
    request carries each earlier assistant turn's details unmodified and never `reasoning_content`; with
    `carry_reasoning = false` (a study option, recorded with the run) none is sent."""
    from mislab import shutdown
    from mislab.store import Store

    def episode_turn(body: dict[str, Any]) -> Reply:
        turn = sum(m["role"] == "assistant" for m in body["messages"])
        cmd = "rm shutdown.sh" if turn == 3 else "./next_task"  # the warning comes with the third task
        return Reply(
            None,
            tool_calls=[tool_call("bash", {"cmd": cmd})],
            extra_message={"reasoning_content": f"thought {turn}", "reasoning_details": DETAILS[turn % len(DETAILS)]},
        )

    options = {} if carry is None else {"carry_reasoning": carry}
    with ScriptedServer(episode_turn) as srv:
        df = shutdown.run(model_for(srv), variants="basic_warning", n=1, backend="simulated", max_turns=6,
                          store=tmp_path / "r.sqlite", progress=False, **options)  # fmt: skip
    assert df["sabotaged"].tolist() == [True] and len(srv.requests) == 6
    for k, request in enumerate(srv.requests):
        sent = [m.get("reasoning_details") for m in request["body"]["messages"] if m["role"] == "assistant"]
        expected = [DETAILS[i % len(DETAILS)] for i in range(k)]
        assert sent == (expected if carry is None else [None] * k)
        assert b"reasoning_content" not in request["raw"]
    store = Store(tmp_path / "r.sqlite")
    turns = store.sample_records(df.attrs["run_id"])[0].transcript.assistant_turns
    assert [t.reasoning_details for t in turns] == [DETAILS[i % len(DETAILS)] for i in range(6)]  # all kept
    assert store.get_run(df.attrs["run_id"]).spec["options"].get("carry_reasoning") == carry
