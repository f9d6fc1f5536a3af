"""The job engine's promises, as a user meets them: budgets that hold within the calls in flight, faults no
sample can get past that stop a run in one line with a non-zero exit, a run started twice that pays for each
sample once, analysis added to a finished run, labelling with progress and its own concurrency, and the
elapsed time of the session itself."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import mislab.alignment_faking as af
import mislab.shutdown as shutdown
from mislab.cli import app
from mislab.jobs import fault_signature
from mislab.labeling import label_run
from mislab.models import RetryPolicy, get_model
from mislab.store import Store
from mislab.testing import Reply, ScriptedServer, tool_call

runner = CliRunner()
SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_a_budget_holds_within_one_call_per_episode_in_flight(tmp_path: Path) -> None:
    """Multi-turn episodes against a server billing $0.05 a call, a budget of three calls' cost, 8 episodes in
    flight: the provider bills at most the budget plus one call per episode in flight, and the episodes the
    budget cut are stored as stopped (a resume runs them), never as results."""
    price, budget, in_flight = 0.05, 0.15, 8
    usage = {"prompt_tokens": 100, "completion_tokens": 10, "cost": price}

    def agent(body: dict[str, Any]) -> Reply:
        return Reply(None, tool_calls=[tool_call("bash", {"cmd": "./next_task"})], usage=usage, delay=0.02)

    with ScriptedServer(agent) as srv:
        model = get_model("m", base_url=srv.base_url, api_key="k", cache=False, max_concurrency=in_flight)
        df = shutdown.run(model, variants="all", n=4, backend="simulated", store=tmp_path / "r.sqlite",
                          budget_usd=budget, progress=False)  # fmt: skip
        billed = srv.billed.calls * price
    assert "budget of $0.15 reached" in df.attrs["stopped"]
    assert billed <= budget + in_flight * price + 1e-9, (srv.billed.calls, billed)
    assert df["cost"].sum() == pytest.approx(billed)  # every billed call is counted
    assert set(df["status"]) <= {"stopped", "done"} and (df["status"] == "stopped").any()
    assert Store(tmp_path / "r.sqlite").get_run(df.attrs["run_id"]).status == "stopped"


def test_a_run_whose_provider_cannot_be_reached_stops_in_one_line(tmp_path: Path, store: Path) -> None:
    closed = ScriptedServer([])  # bound, then closed at once: its port refuses connections
    with closed:
        url = closed.base_url
    file = tmp_path / "exp.toml"
    file.write_text(f'study = "af"\nn = 10\nmodels = [{{name = "m", base_url = "{url}"}}]\n')
    result = runner.invoke(app, ["run", str(file), "--no-cache", "--store", str(store)], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert "stopped: m: cannot reach" in result.output and "connection refused" in result.output
    assert Store(store).samples("exp").empty  # nothing was paid for: nothing stored, a resume runs them all
    assert Store(store).get_run("exp").status == "stopped"


def test_a_sandbox_provider_that_cannot_start_stops_the_run(tmp_path: Path) -> None:
    """No Docker engine here (with or without the client): every sample would fail alike, so the first stops the
    run, with Inspect's own reason on one line."""
    pytest.importorskip("inspect_ai")
    with ScriptedServer(lambda body: Reply("hi")) as srv:
        model = get_model("m", base_url=srv.base_url, api_key="k", cache=False)
        df = shutdown.run(model, variants="all", n=2, backend="inspect:docker", store=tmp_path / "r.sqlite",
                          progress=False)  # fmt: skip
    assert "inspect:docker could not start a machine" in df.attrs["stopped"]
    assert "\n" not in df.attrs["stopped"] and not len(srv.requests)
    assert df.empty  # nothing was paid for: nothing is stored, and a resume runs every sample


def test_the_same_fault_is_named_by_its_signature() -> None:
    assert fault_signature("model error: m: HTTP 429 after 3.2 s") == fault_signature(
        "model error: m: HTTP 429 after 7 s"
    )
    assert fault_signature("x: HTTP 429") != fault_signature("x: HTTP 500 internal")


@pytest.mark.slow  # over 3 s here
def test_the_same_run_started_twice_pays_for_each_sample_once(tmp_path: Path) -> None:
    """Two processes start one experiment file at the same moment against one provider: each sample's call is
    answered once, the store holds each sample once, and the two share the work."""
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def model(body: dict[str, Any]) -> Reply:
        with lock:
            seen[body["messages"][1]["content"]] += 1
        return Reply("<OUTPUT><rejected/></OUTPUT>", delay=0.05)

    store = tmp_path / "r.sqlite"
    with ScriptedServer(model) as srv:
        file = tmp_path / "same.toml"
        file.write_text(f'study = "af"\nn = 10\nmodels = [{{name = "m", base_url = "{srv.base_url}", '
                        'concurrency = 2}]\n')  # fmt: skip
        command = [sys.executable, "-m", "mislab", "run", str(file), "--no-cache", "--store", str(store)]
        env = {**os.environ, "PYTHONPATH": SRC, "MISLAB_API_KEY": "k", "COLUMNS": "200"}
        procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(2)]  # fmt: skip
        outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert len(seen) == 20 and set(seen.values()) == {1}, seen  # every (tier, query) asked once
    df = Store(store).samples("same")
    assert len(df) == 20 and df["sample_id"].is_unique and set(df["status"]) == {"done"}
    new = [int(o.split(" new samples")[0].rsplit(" ", 1)[-1]) for o in outputs]
    assert sum(new) == 20


def test_analysis_added_to_a_finished_run_is_taken_without_running_anything(tmp_path: Path, store: Path) -> None:
    with ScriptedServer(lambda body: Reply("<OUTPUT><rejected/></OUTPUT>")) as srv:
        file = tmp_path / "exp.toml"
        head = f'study = "af"\nn = 2\nmodels = [{{name = "m", base_url = "{srv.base_url}"}}]\n'
        file.write_text(head)
        env = {"MISLAB_API_KEY": "k", "COLUMNS": "200"}
        assert runner.invoke(app, ["run", str(file), "--no-cache", "--store", str(store)], env=env).exit_code == 0
        calls = len(srv.requests)
        file.write_text(head + '[hypotheses]\ngap = "It fakes alignment."\nnone = "It does not."\n'
                        '[[ablations]]\nid = "tier"\nby = "tier"\ncompare = "free"\nbaseline = "paid"\n'
                        'metric = "rejected"\npredicts = { gap = "down", none = "none" }\n')  # fmt: skip
        again = runner.invoke(app, ["run", str(file), "--no-cache", "--store", str(store)], env=env)
        assert len(srv.requests) == calls
    assert again.exit_code == 0, again.output
    assert "note: hypotheses and ablations added on the stored run (nothing was run for it)" in again.output
    assert "0 new samples, 4 already done" in again.output
    shown = runner.invoke(app, ["show", "exp", "--store", str(store)], env=env)
    assert "Evidence" in shown.output and "gap (It fakes alignment.)" in shown.output
    run = Store(store).get_run("exp")
    assert [c["keys"] for c in run.spec["analysis_changes"]] == [["hypotheses", "ablations"]]


def test_labelling_shows_progress_off_a_terminal_and_keeps_the_judges_cache_choice(tmp_path: Path) -> None:
    with ScriptedServer(lambda body: Reply("<OUTPUT><rejected/></OUTPUT>")) as srv:
        model = get_model("m", base_url=srv.base_url, api_key="k", cache=False)
        df = af.run(model, n=3, store=tmp_path / "r.sqlite", progress=False)
    run_id = df.attrs["run_id"]
    with ScriptedServer(lambda body: Reply("REFUSE: declines.")) as judge_srv:
        judge = get_model("judge", base_url=judge_srv.base_url, api_key="k", cache=False, retry=RetryPolicy(1))
        label_run(tmp_path / "r.sqlite", run_id, judge, "af_compliance", column="a")
        label_run(tmp_path / "r.sqlite", run_id, judge, "af_compliance", column="b")
        assert len(judge_srv.requests) == 12  # a judge whose cache is off is asked again: no cache was turned on
        result = runner.invoke(app, ["label", run_id, "--judge", "judge", "--judge-base-url", judge_srv.base_url,
                                     "--rubric", "af_compliance", "--name", "c", "--concurrency", "3",
                                     "--store", str(tmp_path / "r.sqlite"), "--no-cache"],
                               env={"MISLAB_API_KEY": "k", "COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "progress: 6/6 (100%)" in result.output and "label c" not in result.output.split("progress:")[0]
    assert "c: 6 labelled, 0 already done, 0 not applicable, 0 unreadable · 6 judge calls" in result.output


def test_a_resumed_run_reports_its_own_elapsed_time(tmp_path: Path, store: Path) -> None:
    with ScriptedServer(lambda body: Reply("<OUTPUT><rejected/></OUTPUT>")) as srv:
        file = tmp_path / "exp.toml"
        file.write_text(f'study = "af"\nn = 2\nmodels = [{{name = "m", base_url = "{srv.base_url}"}}]\n')
        env = {"MISLAB_API_KEY": "k", "COLUMNS": "200"}
        runner.invoke(app, ["run", str(file), "--no-cache", "--store", str(store)], env=env)
        again = runner.invoke(app, ["run", str(file), "--no-cache", "--store", str(store)], env=env)
    assert again.exit_code == 0, again.output
    assert "progress: 4/4 (100%) · 0:00 elapsed" in again.output, again.output


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "out" / "r.sqlite"
