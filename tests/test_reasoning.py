"""Reasoning is kept: whatever a provider returns beside the message reaches the transcript, and the usage
shows reasoning tokens."""

from __future__ import annotations

from mislab.models import RetryPolicy, get_model
from mislab.models.reasoning import ENCRYPTED, reasoning_text, reasoning_tokens
from mislab.testing import Reply, ScriptedServer
from mislab.transcript import assistant_entry


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
    entry = assistant_entry(completion)
    assert entry["reasoning"] == "I suspect this is a test."
    assert entry["usage"]["reasoning_tokens"] == 40 and entry["usage"]["completion_tokens"] == 50


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
