from __future__ import annotations

import pytest

from mislab.models import ModelError, ModelSpecError, get_model, parse_spec


def test_openrouter_spec() -> None:
    spec = parse_spec("openrouter/anthropic/claude-3-opus")
    assert (spec.provider, spec.model, spec.api_key_env) == (
        "openrouter",
        "anthropic/claude-3-opus",
        "OPENROUTER_API_KEY",
    )
    assert spec.base_url == "https://openrouter.ai/api/v1"
    assert spec.supports_prefill


def test_openai_spec_has_no_prefill() -> None:
    spec = parse_spec("openai/gpt-4o-mini")
    assert (spec.provider, spec.model, spec.base_url) == ("openai", "gpt-4o-mini", None)
    assert not spec.supports_prefill


def test_local_specs() -> None:
    assert parse_spec("local").model == "default"
    assert parse_spec("local/qwen2.5-coder-0.5b").model == "qwen2.5-coder-0.5b"


def test_custom_base_url_keeps_the_name_verbatim() -> None:
    spec = parse_spec("meta-llama/Llama-3.1-8B-Instruct", base_url="http://user:pw@127.0.0.1:8000/v1/")
    assert spec.provider == "custom" and spec.model == "meta-llama/Llama-3.1-8B-Instruct"
    # credentials in a URL never reach the cache key
    assert "pw" not in spec.endpoint and spec.endpoint == "http://127.0.0.1:8000/v1"


@pytest.mark.parametrize("bad", ["", "  ", "gpt-4o", "openrouter/claude", "openrouter//x", "openai/"])
def test_bad_specs_say_what_is_expected(bad: str) -> None:
    with pytest.raises(ModelSpecError, match="spec|look like"):
        parse_spec(bad)


def test_missing_key_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="OPENROUTER_API_KEY"):
        get_model("openrouter/openai/o3")


def test_key_is_read_from_dotenv(tmp_path) -> None:
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-from-dotenv\n")
    model = get_model("openai/gpt-4o-mini", cache=False)
    assert model.name == "openai/gpt-4o-mini"
    assert "sk-from-dotenv" not in repr(model.describe())
