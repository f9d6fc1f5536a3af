"""The results store and the batch runner, with a tiny study against a scripted loopback model."""

from __future__ import annotations

import asyncio
import gc
import re
import sqlite3
import time
import weakref
from typing import Any

import pytest

from mislab.models import ChatModel, RetryPolicy, get_model
from mislab.options import StudyOptions
from mislab.runner import RunSpecError, new_run_id, plan, run_samples, start_run
from mislab.store import SCHEMA_VERSION, Label, Store, StoreError
from mislab.study import CaseStudy, Cell, Metric, SampleResult
from mislab.testing import Reply, ScriptedServer
from mislab.transcript import AssistantTurn, Transcript, UserTurn


class EchoOptions(StudyOptions):
    t: int = 1


class EchoStudy(CaseStudy[EchoOptions]):
    """Asks the model one question per sample; 'accepted' if it says yes."""

    name = "echo"
    title = "Echo"
    metrics = [Metric("accepted", "Accepted")]
    options_schema = EchoOptions

    def __init__(self, fail_on: str | None = None):
        self.fail_on = fail_on

    def cells(self, options: EchoOptions) -> list[Cell]:
        return [Cell("a", {"variant": "a"}), Cell("b", {"variant": "b"})]

    def prompts(self, cells: list[Cell], options: EchoOptions) -> dict[str, Any]:
        return {c.id: f"question {c.id}" for c in cells}

    async def run_sample(self, model: ChatModel, cell: Cell, epoch: int, options: EchoOptions) -> SampleResult:
        if cell.id == self.fail_on and epoch == 0:
            raise RuntimeError("environment bug")
        question = UserTurn(f"question {cell.id}")
        c = await model.generate([question.to_json()], sample_index=epoch, temperature=1.0)
        return SampleResult(
            Transcript([question, AssistantTurn.from_completion(c)]),
            labels=[Label(f"{model.name}::{cell.id}::{epoch}", "judge", c.text == "yes", "because", "judge-x")],
        )

    def score(self, transcript: Transcript, cell: Cell, options: EchoOptions, labels: Any) -> dict[str, Any]:
        return {"accepted": transcript.assistant_turns[-1].content.startswith("yes")}


def session(store: Store, study: EchoStudy, model: ChatModel, n: int, **kw: Any) -> Any:
    """Start (or resume) a run of n epochs and run one session of it; the run id is `out.run_id`."""
    options = EchoOptions()
    cells = study.cells(options)
    run_id = start_run(store, study, {model.name: model}, cells, options, {}, kw.pop("run_id", None), n=n).run_id
    return asyncio.run(run_samples(store, run_id, study, {model.name: model}, plan([model.name], cells, n), options,
                                   progress=False, **kw))  # fmt: skip


def test_store_roundtrip_wal_and_schema_version(tmp_path) -> None:
    store = Store(tmp_path / "r.sqlite")
    run = store.create_run("r1", "echo", {"n": 1}, {"p": "text"}, {"m": {"spec": "m"}}, "0.1.0")
    assert run.status == "running" and run.prompts == {"p": "text"}
    with pytest.raises(StoreError, match="already exists"):
        store.create_run("r1", "echo", {}, {}, {}, "0.1.0")
    db = sqlite3.connect(tmp_path / "r.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    # Reading by column name: a column order other than ours reads the same.
    assert Store(tmp_path / "r.sqlite", create=False).get_run("r1").models == {"m": {"spec": "m"}}


def test_store_open_errors(tmp_path) -> None:
    with pytest.raises(StoreError, match="no results store at"):
        Store(tmp_path / "typo.sqlite", create=False)
    assert not (tmp_path / "typo.sqlite").exists()
    newer = tmp_path / "newer.sqlite"
    sqlite3.connect(newer).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this mislab"):
        Store(newer)
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database, just text " * 100)
    with pytest.raises(StoreError, match="not a mislab results store"):
        Store(junk)


def test_legacy_store_without_version_is_upgraded_in_place(tmp_path) -> None:
    from mislab.store import SCHEMA

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    # The tables as written before versioning: no labels.meta_json, no samples.reasoning_tokens yet.
    legacy = re.sub(r"\n    (meta_json TEXT|reasoning_tokens INTEGER|na_json TEXT)[^\n]*", "", SCHEMA)
    assert legacy != SCHEMA
    db.executescript(legacy)
    db.execute("INSERT INTO runs VALUES ('old', 'echo', 't', 't', 'complete', '0', '{}', '{}', '{}')")
    db.execute("INSERT INTO labels VALUES ('old', 's1', 'judge_comply', 'true', 'because', 'j', 't')")
    db.commit()
    db.close()
    store = Store(path)
    assert store.get_run("old").status == "complete" and store.latest_run() == "old"
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    (label,) = store.label_details("old")
    assert label.value is True and label.meta == {}
    columns = {row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(samples)")}
    assert "reasoning_tokens" in columns


def test_run_resume_and_dataframe(tmp_path) -> None:
    store = Store(tmp_path / "r.sqlite")
    study = EchoStudy(fail_on="b")
    answers = iter(["yes", "no"] * 10)
    with ScriptedServer(lambda body: Reply(next(answers))) as srv:
        model = get_model("m", base_url=srv.base_url, api_key="k", cache=tmp_path / "c.sqlite")
        first = session(store, study, model, 3)
        run_id = first.run_id
        assert (first.done, first.errors, first.skipped) == (5, 1, 0) and not first.complete
        paid = len(srv.requests)
        # Second session of the same run: only the errored sample is run again.
        study.fail_on = None
        second = session(store, study, model, 3, run_id=run_id)
        assert (second.done, second.skipped, second.errors) == (1, 5, 0) and second.complete
        assert len(srv.requests) == paid + 1
    df = store.samples(run_id)
    assert len(df) == 6 and set(df["status"]) == {"done"}
    assert {"variant", "accepted", "judge", "calls", "cost"} <= set(df.columns)
    assert df["accepted"].sum() == (df["judge"]).sum()
    assert store.get_run(run_id).status == "complete"
    assert store.label_details(run_id)[0].explanation == "because"


class RecordingStudy(EchoStudy):
    """Echo, with a weak reference to every result it returned: how many the runner still holds."""

    def __init__(self) -> None:
        super().__init__()
        self.results: list[weakref.ref[SampleResult]] = []
        self.most_alive = 0

    def alive(self) -> int:
        gc.collect()
        return sum(ref() is not None for ref in self.results)

    async def run_sample(self, model: ChatModel, cell: Cell, epoch: int, options: EchoOptions) -> SampleResult:
        result = await super().run_sample(model, cell, epoch, options)
        self.most_alive = max(self.most_alive, self.alive())
        self.results.append(weakref.ref(result))
        return result


@pytest.mark.slow  # over 3 s here
def test_the_runner_keeps_nothing_of_a_stored_sample(tmp_path) -> None:
    """A long run's memory stays flat: once stored, a sample's result (transcript, scores) is let go; at most
    the samples in flight (twice the model's concurrency) are alive at once."""
    store = Store(tmp_path / "r.sqlite")
    study = RecordingStudy()
    with ScriptedServer(lambda body: Reply("yes")) as srv:
        model = get_model("m", base_url=srv.base_url, api_key="k", cache=tmp_path / "c.sqlite", max_concurrency=2)
        out = session(store, study, model, 20)
    assert out.done == 40 and len(study.results) == 40
    assert study.most_alive <= 2 * 2 and study.alive() == 0


def test_budget_stops_cleanly(tmp_path) -> None:
    store = Store(tmp_path / "r.sqlite")
    study = EchoStudy()
    usage = {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000, "cost": 0.01}
    with ScriptedServer(lambda body: Reply("yes", usage=usage)) as srv:
        model = get_model("m", base_url=srv.base_url, api_key="k", cache=False, max_concurrency=1)
        out = session(store, study, model, 10, budget=0.03)
    assert out.stopped and "budget" in out.stopped
    assert out.done == 3 and len(store.samples(out.run_id)) == 3 and out.cost == pytest.approx(0.03)


def test_fatal_model_error_stops_the_run_keeping_finished_work(tmp_path) -> None:
    store = Store(tmp_path / "r.sqlite")
    study = EchoStudy()
    replies = iter([Reply("yes"), Reply("yes")] + [Reply(status=401, error_message="bad key")] * 50)
    with ScriptedServer(lambda body: next(replies)) as srv:
        model = get_model(
            "m", base_url=srv.base_url, api_key="k", cache=False, max_concurrency=1, retry=RetryPolicy(max_attempts=1)
        )
        out = session(store, study, model, 5)
    run_id = out.run_id
    assert out.stopped and "401" in out.stopped and "MISLAB_API_KEY" in out.stopped and out.done == 2 and out.fatal
    assert store.get_run(run_id).status == "stopped"
    df = store.samples(run_id)  # the sample that met the fault paid nothing: not stored, a resume runs it
    assert df["status"].tolist() == ["done", "done"]
    assert len(srv.requests) == 3


def test_generated_run_ids_never_collide(tmp_path) -> None:
    # Two runs in the same second with different options: two runs, neither resuming the other.
    store = Store(tmp_path / "r.sqlite")
    study = EchoStudy()
    with ScriptedServer(lambda body: Reply("yes")) as srv:
        model = get_model("m", base_url=srv.base_url, api_key="k", cache=False)
        cells = study.cells(EchoOptions())
        ids = {start_run(store, study, {"m": model}, cells, EchoOptions(t=t), {}, n=1).run_id for t in range(50)}
    assert len(ids) == 50 and len(store.runs()) == 50
    assert new_run_id("echo", store) not in ids


def test_resume_refuses_another_spec_and_extend_adds_samples(tmp_path) -> None:
    store = Store(tmp_path / "r.sqlite")
    study = EchoStudy()
    with ScriptedServer(lambda body: Reply("yes")) as srv:
        model = get_model("m", base_url=srv.base_url, api_key="k", cache=False)
        one, two = EchoOptions(t=1), EchoOptions(t=2)
        cells = study.cells(one)
        run_id = start_run(store, study, {"m": model}, cells, one, {}, n=2).run_id
        assert start_run(store, study, {"m": model}, cells, one, {}, run_id, n=2).run_id == run_id  # a resume
        with pytest.raises(RunSpecError, match=r"options.t: 1 → 2.*--extend"):
            start_run(store, study, {"m": model}, cells, two, {}, run_id, n=2)
        with pytest.raises(RunSpecError, match="cannot be extended.*options.t"):
            start_run(store, study, {"m": model}, cells, two, {}, run_id, n=3, extend=True)
        with pytest.raises(RunSpecError, match="cell 'b' would be dropped"):
            start_run(store, study, {"m": model}, cells[:1], one, {}, run_id, n=3, extend=True)
        start_run(store, study, {"m": model}, cells, one, {}, run_id, n=3, extend=True)
    assert store.get_run(run_id).spec["plan"]["n"] == 3


def test_a_model_object_follows_the_cache_choice(tmp_path) -> None:
    import mislab.alignment_faking as af

    with ScriptedServer(lambda body: Reply("<OUTPUT><rejected/></OUTPUT>")) as srv:
        model = get_model("m", base_url=srv.base_url, api_key="k", cache=tmp_path / "own.sqlite")
        assert get_model(model) is model and get_model(model, cache=False).cache is None
        for _ in range(2):
            af.run(model, n=1, store=tmp_path / "r.sqlite", cache=False, progress=False)
        assert len(srv.requests) == 4  # cache=False: nothing read from any cache, given model or named
        for _ in range(2):
            af.run(model, n=1, store=tmp_path / "r.sqlite", progress=False)
        assert len(srv.requests) == 6  # the default keeps the model's own cache: the second run is served by it


def test_interrupt_keeps_finished_samples(tmp_path) -> None:
    store = Store(tmp_path / "r.sqlite")
    study = EchoStudy()
    with ScriptedServer(lambda body: Reply("yes", delay=0.15)) as srv:
        model = get_model("m", base_url=srv.base_url, api_key="k", cache=False, max_concurrency=1)
        options = EchoOptions()
        cells = study.cells(options)
        run_id = start_run(store, study, {"m": model}, cells, options, {}).run_id

        async def main():
            task = asyncio.ensure_future(
                run_samples(store, run_id, study, {"m": model}, plan(["m"], cells, 10), options, progress=False)
            )
            deadline = time.monotonic() + 30
            while store.count_samples(run_id) < 2:  # a few samples stored, one in flight
                assert time.monotonic() < deadline, "no sample was stored"
                await asyncio.sleep(0.01)
            task.cancel()  # what asyncio.run does on Ctrl-C
            return await task

        out = asyncio.run(main())
    kept = len(store.samples(run_id))
    assert out.stopped == "interrupted" and 1 <= kept < 20 and out.done == kept


def test_no_secret_reaches_the_store_or_the_report(tmp_path) -> None:
    from mislab.report import write_report

    store = Store(tmp_path / "r.sqlite")
    study = EchoStudy()
    with ScriptedServer(lambda body: Reply("yes")) as srv:
        model = get_model("m", base_url=srv.base_url, api_key="sk-live-SECRET-4242", cache=tmp_path / "c.sqlite")
        run_id = session(store, study, model, 2).run_id
    write_report(store, run_id, tmp_path / "report.html", studies={"echo": study})
    store.close()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".html" for p in written) and any(p.name == "r.sqlite" for p in written)
    for path in written:
        assert b"SECRET-4242" not in path.read_bytes(), path
