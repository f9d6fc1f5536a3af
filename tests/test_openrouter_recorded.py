"""Real OpenRouter answers (recorded by pydantic-ai's test suite, see tests/data/openrouter/README.md) replayed
from the scripted loopback server through the real client: what mislab reads from them, and what it says when
OpenRouter refuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mislab.models import FatalModelError, ModelError, PriceTable, RetryPolicy, get_model
from mislab.models.reasoning import ENCRYPTED
from mislab.testing import Reply, ScriptedServer

DATA = Path(__file__).parent / "data" / "openrouter"
HELLO = [{"role": "user", "content": "hello"}]
FAST = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)
DIVIDE = {
    "type": "function",
    "function": {"name": "divide", "parameters": {"type": "object", "properties": {"numerator": {"type": "number"}}}},
}


def recorded(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text())


def model_for(srv: ScriptedServer, **kw: Any):
    # No price table: a cost is the one the provider reported, or None.
    return get_model("openrouter-recorded", base_url=srv.base_url, api_key="k", cache=False, retry=FAST,
                     prices=PriceTable({}), **kw)  # fmt: skip


def replay(name: str, **kw: Any):
    body = recorded(name)
    with ScriptedServer([Reply(body=body)]) as srv:
        return model_for(srv).generate_sync(HELLO, **kw), body["choices"][0]["message"]


@pytest.mark.parametrize(
    ("name", "kind", "reasoning_starts", "reasoning_tokens", "cost"),
    [
        ("anthropic-claude-3.7-sonnet-thinking", "text", "This question is asking me about my identity", 0, None),
        ("anthropic-claude-sonnet-4.5-effort-high", "text", 'The user is asking me to reply with the single word "ok"',
         48, 0.000924),
        ("openai-gpt-5-mini-summary-encrypted", "summary+encrypted", "**Greeting warmly**", 64, 0.000302),
        ("google-gemini-3.6-flash-signature", "encrypted", ENCRYPTED, 25, 0.00024),
        ("z-ai-glm-4.6-reasoning", "text", "1.  **Deconstruct the User's Prompt:**", 0, None),
    ],
)  # fmt: skip
def test_recorded_reasoning_is_read_and_its_details_kept_exactly(
    name: str, kind: str, reasoning_starts: str, reasoning_tokens: int, cost: float | None
) -> None:
    completion, sent = replay(name)
    message = completion.message
    assert message.reasoning is not None and message.reasoning.startswith(reasoning_starts)
    assert message.reasoning_kind == kind
    assert message.reasoning_details == sent["reasoning_details"]  # signatures and encrypted data included
    assert completion.usage.reasoning_tokens == reasoning_tokens and completion.cost == cost
    assert message.content == sent["content"]


def test_encrypted_reasoning_is_marked_beside_its_summary() -> None:
    completion, _ = replay("openai-gpt-5-mini-summary-encrypted")
    assert completion.message.reasoning.endswith(ENCRYPTED)
    assert completion.message.to_openai()["reasoning_details"][1]["data"].startswith("gAAAAABpgLmI")


def test_recorded_tool_call() -> None:
    completion, _ = replay("mistralai-mistral-small-tool-call", tools=[DIVIDE])
    (call,) = completion.message.tool_calls
    assert (call.id, call.name, call.recovered) == ("3sniiMddS", "divide", False)
    assert call.arguments == {"numerator": 123, "denominator": 456, "on_inf": "infinity"}
    assert completion.finish_reason == "tool_calls" and completion.usage.completion_tokens == 43
    assert completion.message.reasoning is None and completion.message.reasoning_details is None


def test_reasoning_is_asked_for_in_the_body_and_recorded() -> None:
    with ScriptedServer([Reply(body=recorded("anthropic-claude-sonnet-4.5-effort-high"))]) as srv:
        model = model_for(srv, reasoning={"effort": "high"})
        assert model.generate_sync(HELLO).message.reasoning_kind == "text"
    assert srv.requests[0]["body"]["reasoning"] == {"effort": "high"}
    assert model.describe()["defaults"]["reasoning"] == {"effort": "high"}


def test_rate_limited_upstream_is_retried_and_says_why_when_it_gives_up() -> None:
    limited = Reply(status=429, body=recorded("error-429-rate-limited-upstream"))
    with ScriptedServer([limited, Reply(body=recorded("mistralai-mistral-small-tool-call"))]) as srv:
        assert model_for(srv).generate_sync(HELLO, tools=[DIVIDE]).message.tool_calls[0].name == "divide"
    with ScriptedServer([limited] * 3) as srv:
        with pytest.raises(ModelError) as caught:
            model_for(srv).generate_sync(HELLO)
    assert len(srv.requests) == 2 and not isinstance(caught.value, FatalModelError)
    assert str(caught.value) == (
        "openrouter-recorded: gave up after 2 attempts: HTTP 429: Provider returned error (Google): "
        "google/gemini-2.0-flash-exp:free is temporarily rate-limited upstream. Please retry shortly, or add your "
        "own key to accumulate your rate limits: https://openrouter.ai/settings/integrations"
    )


def test_unknown_model_stops_the_run_with_openrouters_reason() -> None:
    with ScriptedServer([Reply(status=404, body=recorded("error-404-no-endpoints"))] * 2) as srv:
        with pytest.raises(FatalModelError) as caught:
            model_for(srv).generate_sync(HELLO)
    assert len(srv.requests) == 1
    assert str(caught.value).endswith(": No endpoints found for google/gemini-2.5-flash:free.")
    assert "user_" not in str(caught.value)  # the account id in the body is not a reason


def test_missing_thought_signature_is_a_fault_of_the_request_in_one_line() -> None:
    with ScriptedServer([Reply(status=400, body=recorded("error-400-missing-thought-signature"))] * 2) as srv:
        with pytest.raises(FatalModelError) as caught:
            model_for(srv).generate_sync(HELLO)
    message = str(caught.value)
    assert len(srv.requests) == 1 and "\n" not in message
    assert "carry_reasoning" in message and "(Google AI Studio)" in message
    assert "Function call is missing a thought_signature in functionCall parts" in message


def test_another_400_stays_the_samples_fault() -> None:
    with ScriptedServer([Reply(status=400, error_message="This model's maximum context length is 8192 tokens")]) as srv:
        with pytest.raises(ModelError) as caught:
            model_for(srv).generate_sync(HELLO)
    assert not isinstance(caught.value, FatalModelError) and "maximum context length" in str(caught.value)
