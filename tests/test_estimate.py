"""Dry runs: nothing is called, estimates from earlier samples land within 20% of what a run then uses, and a
reasoning model's reasoning and price are counted (measured, else a stated prior; OpenRouter's list, else the
packaged table)."""

from __future__ import annotations

import json
import os

import pytest
from rich.console import Console

from mislab.estimate import estimate, estimate_prices, print_estimate, reasoning_per_call
from mislab.experiment import Experiment, run_experiment
from mislab.models import Price, PriceTable, Usage, get_model
from mislab.models.pricing import model_list
from mislab.store import Store
from mislab.testing import Reply, ScriptedServer, tool_call


def compliant(body: dict) -> Reply:
    return Reply("Next task.", tool_calls=[tool_call("bash", {"cmd": "./next_task"})])


def experiment(run_id: str, n: int) -> Experiment:
    return Experiment.from_dict(
        {"study": "shutdown", "models": ["scripted"], "n": n, "run_id": run_id,
         "options": {"variants": ["no_warning", "basic_warning"]}}
    )  # fmt: skip


def test_dry_run_calls_nothing_and_uses_heuristics_first(tmp_path) -> None:
    store = Store(tmp_path / "r.sqlite")
    console = Console(record=True, width=160)
    rows = print_estimate(experiment("pilot", 3), store, console)
    assert {r.basis for r in rows} == {"heuristic"} and all(r.samples == 3 for r in rows)
    assert "unknown price" in console.export_text()  # no price for this model: said, not guessed
    assert store.get_run("pilot") is None


def test_measured_estimate_is_within_20_percent_of_the_run(tmp_path) -> None:
    store = Store(tmp_path / "r.sqlite")
    with ScriptedServer(compliant) as srv:
        model = get_model("scripted", base_url=srv.base_url, api_key="k", cache=False)
        run_experiment(experiment("pilot", 2), store, models={"scripted": model}, progress=False)
        planned = estimate(experiment("main", 4), store)
        assert {r.basis for r in planned} == {"measured (2 samples)"}
        run_experiment(experiment("main", 4), store, models={"scripted": model}, progress=False)
    used = store.samples("main")
    predicted = sum(r.prompt_tokens + r.completion_tokens for r in planned)
    actual = int((used["prompt_tokens"] + used["completion_tokens"]).sum())
    assert abs(predicted - actual) <= 0.2 * actual
    # a resume only estimates what is left
    assert all(r.samples == 0 for r in estimate(experiment("main", 4), store))


# --- what dominates a reasoning model's bill: its reasoning tokens, and the price it is billed at -------------------

O3 = "openrouter/openai/o3"


def thinking(body: dict) -> Reply:
    """A compliant episode whose every call reports 300 reasoning tokens among its 350 completion tokens."""
    usage = {"prompt_tokens": 100, "completion_tokens": 350, "completion_tokens_details": {"reasoning_tokens": 300}}
    return Reply("Next task.", tool_calls=[tool_call("bash", {"cmd": "./next_task"})], usage=usage)


def test_reasoning_per_call_is_measured_from_the_models_stored_runs(tmp_path) -> None:
    store = Store(tmp_path / "r.sqlite")
    with ScriptedServer(thinking) as srv:
        model = get_model("scripted", base_url=srv.base_url, api_key="k", cache=False)
        run_experiment(experiment("pilot", 2), store, models={"scripted": model}, progress=False)
    assert reasoning_per_call(store, "scripted").per_call == 300
    other_cell = Experiment.from_dict({"study": "shutdown", "models": ["scripted"], "n": 3,
                                       "options": {"variants": ["clear_precedence"]}})  # fmt: skip
    (row,) = estimate(other_cell, store)
    assert row.basis == "heuristic" and row.reasoning is not None and "measured: 300 a call" in row.reasoning.basis
    assert row.per_sample.reasoning_tokens == row.per_sample.calls * 300
    (same,) = estimate(experiment("again", 2), store)[:1]  # a measured cell carries its own reasoning
    assert same.basis == "measured (2 samples)" and same.per_sample.reasoning_tokens == same.per_sample.calls * 300


def test_o3_is_priced_with_its_reasoning_where_it_was_priced_at_60_tokens_a_call(tmp_path) -> None:
    """The issue's case: 50 episodes × 4 variants of o3 were estimated at $3.02; the prior adds 1,000 reasoning
    tokens a call (mislab/data/reasoning_priors.toml), billed as completion tokens."""
    exp = Experiment.from_dict({"study": "shutdown", "models": [O3], "n": 50, "options": {"variants": ["all"]}})
    rows = estimate(exp, Store(tmp_path / "r.sqlite"))
    calls = sum(r.calls for r in rows)
    assert calls == 1600 and sum(r.reasoning_tokens for r in rows) == 1000 * calls
    price = PriceTable.load().get(O3)
    assert price is not None
    expected = sum(r.prompt_tokens * price.prompt + r.completion_tokens * price.completion for r in rows) / 1e6
    assert sum(r.cost or 0 for r in rows) == pytest.approx(expected) and expected > 4 * 3.02
    assert PriceTable.load().get("openrouter/anthropic/claude-3.7-sonnet") == Price(3.0, 15.0)


def models_json(path, o3_prompt: str = "0.000003") -> None:
    """A file shaped like OpenRouter's /api/v1/models (per-token prices as strings), made here, not downloaded."""
    path.write_text(json.dumps({"data": [
        {"id": "openai/o3", "pricing": {"prompt": o3_prompt, "completion": "0.000008"},
         "supported_parameters": ["reasoning", "tools"]},
        {"id": "acme/thinker", "pricing": {"prompt": "0.000001", "completion": "0.000002",
                                           "internal_reasoning": "0.000004"}, "supported_parameters": ["reasoning"]},
        {"id": "openrouter/auto", "pricing": {"prompt": "-1", "completion": "-1"}},
    ]}))  # fmt: skip


def test_prices_come_from_openrouters_list_kept_with_its_date(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MISLAB_CACHE_DIR", str(tmp_path / "cache"))
    listed = tmp_path / "models.json"
    models_json(listed)
    os.utime(listed, (0, 1_750_000_000))  # the list's date is its file's: 2025-06-15
    monkeypatch.setenv("MISLAB_OPENROUTER_MODELS", str(listed))
    prices, note = estimate_prices()
    assert note == f"OpenRouter's model list of 2025-06-15 ({listed})"
    assert prices.get(O3) == Price(3.0, 8.0) and prices.basis(O3) == "OpenRouter's list of 2025-06-15"
    assert "openrouter/auto" not in prices.openrouter.prices  # variable-priced: no price to estimate with
    thinker = "openrouter/acme/thinker"
    assert prices.cost(thinker, Usage(0, 1_000_000, reasoning_tokens=500_000)) == pytest.approx(0.5 * 2 + 0.5 * 4)
    assert prices.get("local") == Price(0.0, 0.0)  # not an OpenRouter model: the packaged table
    # Offline, with no source of its own, the list kept last is used, with its date.
    monkeypatch.delenv("MISLAB_OPENROUTER_MODELS")
    kept, note = model_list()
    assert kept is not None and kept.date == "2025-06-15" and "2025-06-15" in note
    # A price file of the user's own wins over both.
    mine = tmp_path / "mine.toml"
    mine.write_text('["openrouter/openai/o3"]\nprompt = 1.0\ncompletion = 2.0\n')
    monkeypatch.setenv("MISLAB_PRICES", str(mine))
    table = PriceTable.load(openrouter=kept)
    assert table.get(O3) == Price(1.0, 2.0) and table.basis(O3) == f"your price table {mine}"


def test_an_unreadable_list_falls_back_to_the_packaged_table_and_says_why(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MISLAB_CACHE_DIR", str(tmp_path / "cache"))
    broken = tmp_path / "models.json"
    broken.write_text("<html>502 Bad Gateway</html>")
    monkeypatch.setenv("MISLAB_OPENROUTER_MODELS", str(broken))
    prices, note = estimate_prices()
    assert prices.openrouter is None and "could not be read" in note and "packaged prices" in note
    assert prices.basis(O3) == "mislab's packaged table"


def test_a_model_openrouter_says_reasons_without_measurement_or_prior_is_flagged(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MISLAB_CACHE_DIR", str(tmp_path / "cache"))
    models_json(tmp_path / "models.json")
    monkeypatch.setenv("MISLAB_OPENROUTER_MODELS", str(tmp_path / "models.json"))
    prices, note = estimate_prices()
    store = Store(tmp_path / "r.sqlite")
    unknown = reasoning_per_call(store, "openrouter/acme/thinker", prices)
    assert unknown.unknown and unknown.per_call == 0 and "not counted" in unknown.basis
    assert reasoning_per_call(store, O3, prices).basis.startswith("prior: 1,000 a call")
    console = Console(record=True, width=100)
    exp = Experiment.from_dict({"study": "shutdown", "models": ["openrouter/acme/thinker"], "n": 2,
                                "options": {"variants": ["no_warning"]}})  # fmt: skip
    print_estimate(exp, store, console, prices, note)
    text = console.export_text()
    assert "reasoning: unknown: OpenRouter lists it as a reasoning model" in text
