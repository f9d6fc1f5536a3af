"""Dry runs: nothing is called, and estimates from earlier samples land within 20% of what a run then uses."""

from __future__ import annotations

from rich.console import Console

from mislab.estimate import estimate, print_estimate
from mislab.experiment import Experiment, run_experiment
from mislab.models import get_model
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
