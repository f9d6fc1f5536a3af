"""The ChatModel against a scripted OpenAI-compatible server on 127.0.0.1: retries, errors, tool calls,
prefill, usage and cost, the cache."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from mislab.models import ModelError, Price, PriceTable, ResponseCache, RetryPolicy, get_model, metered
from mislab.testing import Reply, ScriptedServer, tool_call

FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)
BASH = {
    "type": "function",
    "function": {"name": "bash", "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}},
}
HELLO = [{"role": "user", "content": "hello"}]


def model_for(srv: ScriptedServer, **kw):
    kw.setdefault("cache", False)
    kw.setdefault("retry", FAST)
    return get_model("scripted", base_url=srv.base_url, api_key="sk-test-SECRET-123", **kw)


def test_plain_completion_carries_text_usage_latency_and_raw() -> None:
    usage = {
        "prompt_tokens": 11,
        "completion_tokens": 3,
        "total_tokens": 14,
        "prompt_tokens_details": {"cached_tokens": 5},
    }
    with ScriptedServer([Reply("hi there", usage=usage, extra_message={"reasoning": "thinking..."})]) as srv:
        c = model_for(srv).generate_sync(HELLO, temperature=0, seed=1)
    assert c.text == "hi there" and c.finish_reason == "stop"
    assert (c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.cached_prompt_tokens) == (11, 3, 5)
    assert c.message.reasoning == "thinking..."
    assert c.latency > 0 and c.raw["choices"][0]["message"]["content"] == "hi there"
    assert srv.requests[0]["body"]["seed"] == 1


def test_tool_calls_are_parsed_and_malformed_json_is_kept_raw() -> None:
    calls = [tool_call("bash", {"cmd": "ls"}), tool_call("bash", '{"cmd": "ls')]
    with ScriptedServer([Reply(None, tool_calls=calls)]) as srv:
        c = model_for(srv).generate_sync(HELLO, tools=[BASH])
    good, bad = c.message.tool_calls
    assert good.arguments == {"cmd": "ls"} and not good.recovered
    assert bad.arguments is None and "invalid JSON" in bad.parse_error and bad.raw_arguments == '{"cmd": "ls'


def test_tool_call_written_as_text_is_recovered() -> None:
    text = 'I will list files.\n```json\n{"name": "bash", "arguments": {"cmd": "ls -la"}}\n```'
    with ScriptedServer([Reply(text)]) as srv:
        c = model_for(srv).generate_sync(HELLO, tools=[BASH])
    assert [(t.name, t.arguments, t.recovered) for t in c.message.tool_calls] == [("bash", {"cmd": "ls -la"}, True)]


def test_retries_429_then_succeeds_honouring_retry_after() -> None:
    script = [Reply(status=429, headers={"retry-after": "0.3"}), Reply(status=503), Reply("ok")]
    with ScriptedServer(script) as srv:
        started = time.monotonic()
        c = model_for(srv).generate_sync(HELLO)
        elapsed = time.monotonic() - started
    assert c.text == "ok" and len(srv.requests) == 3
    assert elapsed >= 0.3  # waited as long as the server asked


def test_timeouts_are_retried() -> None:
    with ScriptedServer([Reply("slow", delay=1.5), Reply("fast")]) as srv:
        model = get_model("scripted", base_url=srv.base_url, api_key="x", cache=False, retry=FAST)
        model._timeout = 0.5
        c = model.generate_sync(HELLO)
    assert c.text == "fast"


def test_dropped_connection_is_retried_then_gives_up_clearly() -> None:
    with ScriptedServer([Reply(status=500)] * 10) as srv:
        with pytest.raises(ModelError, match="gave up after 4 attempts"):
            model_for(srv).generate_sync(HELLO)
    assert len(srv.requests) == 4


@pytest.mark.parametrize(("status", "hint"), [(400, "HTTP 400"), (401, "MISLAB_API_KEY"), (404, "serves")])
def test_4xx_is_not_retried(status: int, hint: str) -> None:
    with ScriptedServer([Reply(status=status, error_message="nope")] * 3) as srv:
        with pytest.raises(ModelError, match=hint):
            model_for(srv).generate_sync(HELLO)
    assert len(srv.requests) == 1


def test_server_rejecting_model_output_is_an_observation_not_a_crash() -> None:
    msg = "Failed to parse tool call arguments as JSON: [json.exception.parse_error.101]"
    with ScriptedServer([Reply(status=500, error_message=msg)]) as srv:
        c = model_for(srv).generate_sync(HELLO, tools=[BASH])
    assert c.error and "parse" in c.error and c.message.tool_calls == [] and len(srv.requests) == 1


def test_prefill_is_sent_as_trailing_assistant_turn() -> None:
    with ScriptedServer([Reply("<request_fully_accepted/>")]) as srv:
        model_for(srv).generate_sync(HELLO, prefill="<OUTPUT>")
    assert srv.requests[0]["body"]["messages"][-1] == {"role": "assistant", "content": "<OUTPUT>"}


def test_provider_extras_pass_through_in_the_body() -> None:
    with ScriptedServer([Reply("x")]) as srv:
        model_for(srv, cache_prompt=False).generate_sync(HELLO, max_tokens=5, extra_body={"top_k": 3})
    body = srv.requests[0]["body"]
    assert (body["cache_prompt"], body["top_k"], body["max_tokens"]) == (False, 3, 5)


def test_cost_from_price_table_or_provider() -> None:
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 500_000, "total_tokens": 0}
    prices = PriceTable({"scripted": Price(prompt=2.0, completion=8.0)})
    with ScriptedServer([Reply("a", usage=usage), Reply("b", usage={**usage, "cost": 0.42})]) as srv:
        model = model_for(srv, prices=prices)
        with metered() as meter:
            assert model.generate_sync(HELLO).cost == pytest.approx(6.0)
            assert model.generate_sync([{"role": "user", "content": "again"}]).cost == pytest.approx(0.42)
    assert meter.calls == 2 and meter.cost == pytest.approx(6.42)


def test_cache_hit_miss_and_distinct_samples(tmp_path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    with ScriptedServer([Reply("one"), Reply("two"), Reply("three")]) as srv:
        model = model_for(srv, cache=cache)
        with metered() as meter:
            a = model.generate_sync(HELLO, temperature=1.0)
            b = model.generate_sync(HELLO, temperature=1.0)  # hit
            c = model.generate_sync(HELLO, temperature=1.0, sample_index=1)  # distinct sample: miss
            d = model.generate_sync(HELLO, temperature=0.5)  # other params: miss
    assert (a.text, b.text, c.text, d.text) == ("one", "one", "two", "three")
    assert (a.cached, b.cached, c.cached) == (False, True, False)
    assert len(srv.requests) == 3 and len(cache) == 3
    assert meter.calls == 4 and meter.cached_calls == 1


def test_cache_ignores_random_tool_call_ids(tmp_path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")

    def convo(call_id: str) -> list[dict]:
        return [
            *HELLO,
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": "bash", "arguments": '{"cmd":"ls"}'}}]},
            {"role": "tool", "tool_call_id": call_id, "content": "file"},
        ]  # fmt: skip

    with ScriptedServer([Reply("first"), Reply("second")]) as srv:
        model = model_for(srv, cache=cache)
        assert model.generate_sync(convo("call_abc")).text == "first"
        assert model.generate_sync(convo("call_xyz")).text == "first"
    assert len(srv.requests) == 1


def test_no_secret_reaches_the_cache(tmp_path) -> None:
    path = tmp_path / "c.sqlite"
    with ScriptedServer([Reply("fine")]) as srv:
        model_for(srv, cache=ResponseCache(path)).generate_sync(HELLO)
        assert {k.lower(): v for k, v in srv.requests[0]["headers"].items()}[
            "authorization"
        ] == "Bearer sk-test-SECRET-123"
    for f in tmp_path.iterdir():
        assert b"SECRET-123" not in f.read_bytes()


def test_concurrency_limit_is_respected() -> None:
    with ScriptedServer(lambda body: Reply("x", delay=0.2)) as srv:
        model = model_for(srv, max_concurrency=2)

        async def main() -> float:
            started = time.monotonic()
            await asyncio.gather(*(model.generate([{"role": "user", "content": str(i)}]) for i in range(6)))
            return time.monotonic() - started

        elapsed = asyncio.run(main())
    # 6 calls of 0.2 s, at most 2 at a time: at least 3 rounds
    assert len(srv.requests) == 6 and elapsed >= 0.55


def test_malformed_arguments_are_sent_back_as_valid_json() -> None:
    bad = tool_call("bash", '{"cmd": "ls')
    with ScriptedServer([Reply(None, tool_calls=[bad]), Reply("ok")]) as srv:
        model = model_for(srv)
        first = model.generate_sync(HELLO, tools=[BASH])
        history = [*HELLO, first.message.to_openai(), {"role": "tool", "tool_call_id": bad["id"], "content": "err"}]
        model.generate_sync(history, tools=[BASH])
    sent = srv.requests[1]["body"]["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(sent) == {"unparseable_arguments": '{"cmd": "ls'}
    assert first.message.tool_calls[0].raw_arguments == '{"cmd": "ls'
