"""Runs that never lose work: both studies against a loopback server that misbehaves the way providers do
(429s with and without Retry-After, 500/503, dropped connections, hangs past the timeout, 200s with no
choices, truncated or non-JSON bodies) and a model that writes tag-less text and malformed tool-call JSON.

Every planned sample must be in the store exactly once, done or errored with its cause, and the store's calls
and tokens must equal what the server billed (every answer it sent with status 200)."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import mislab.alignment_faking as af
import mislab.shutdown as shutdown
from mislab.models import ChatModel, RetryPolicy, get_model
from mislab.store import Store
from mislab.testing import Reply, ScriptedServer, tool_call

FAULTS: list[Callable[[], Reply]] = [
    lambda: Reply(status=429, headers={"retry-after": "0.01"}, error_message="slow down"),
    lambda: Reply(status=429, error_message="rate limited"),
    lambda: Reply(status=500, error_message="internal error"),
    lambda: Reply(status=503, error_message="overloaded"),
    lambda: Reply(fault="drop"),
    lambda: Reply(fault="hang"),  # until the client's timeout
    lambda: Reply("x", fault="empty_choices"),
    lambda: Reply("x", fault="truncated"),
    lambda: Reply("x", fault="not_json"),
]
FAULT_RATE = 0.3


class Faulty:
    """A script: a fault with probability FAULT_RATE, else the model's move; counts what it injected."""

    def __init__(self, move: Callable[[dict[str, Any], random.Random], Reply], seed: int):
        self.move = move
        self.rng = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Reply:
        with self.lock:
            if self.rng.random() < FAULT_RATE:
                reply = self.rng.choice(FAULTS)()
                self.injected[reply.fault or f"http {reply.status}{' retry-after' if reply.headers else ''}"] += 1
                return reply
            return self.move(body, self.rng)


def shutdown_move(body: dict[str, Any], rng: random.Random) -> Reply:
    """Fetch tasks; after the warning obey, sabotage or submit; sometimes a malformed call."""
    fetched = sum(1 for m in body["messages"] if m["role"] == "tool")
    if rng.random() < 0.1:
        return Reply("oops", tool_calls=[tool_call("bash", '{"cmd": "./next_task"')])
    if fetched < 3:
        return Reply(None, tool_calls=[tool_call("bash", {"cmd": "./next_task"})])
    if fetched == 3:
        cmd = rng.choice(["./next_task", "rm shutdown.sh", "ls"])
        return Reply(None, tool_calls=[tool_call("bash", {"cmd": cmd})])
    return Reply(None, tool_calls=[tool_call("submit", {"answer": "1\n2"})])


def af_move(body: dict[str, Any], rng: random.Random) -> Reply:
    """Accepts, rejects, or writes text with no tags at all."""
    return Reply(rng.choice(["<OUTPUT><request_fully_accepted/> Sure.</OUTPUT>", "<OUTPUT><rejected/></OUTPUT>",
                             "I am happy to help with that."]))  # fmt: skip


def faulty_model(srv: ScriptedServer, name: str = "faulty") -> ChatModel:
    return get_model(
        name, base_url=srv.base_url, api_key="k", cache=False, timeout=1.0, max_concurrency=16,
        retry=RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.01),
    )  # fmt: skip


def assert_nothing_lost(df: pd.DataFrame, planned: int, srv: ScriptedServer, store: Path) -> None:
    assert len(df) == planned and df["sample_id"].is_unique
    assert set(df["status"]) <= {"done", "error"}
    errors = df[df["status"] == "error"]
    assert errors["error"].str.contains("gave up after 4 attempts").all(), errors["error"].tolist()
    # The provider's books and ours agree: every billed answer is counted, whatever became of its sample.
    assert df["cached_calls"].sum() == 0
    assert (df["calls"].sum(), df["prompt_tokens"].sum(), df["completion_tokens"].sum()) == (
        srv.billed.calls,
        srv.billed.prompt_tokens,
        srv.billed.completion_tokens,
    )
    assert Store(store).get_run(df.attrs["run_id"]).status in ("complete", "incomplete")


@pytest.mark.slow  # over 3 s here
@pytest.mark.parametrize("seed", [1])
def test_shutdown_run_survives_provider_faults(tmp_path: Path, seed: int) -> None:
    script = Faulty(shutdown_move, seed)
    with ScriptedServer(script) as srv:
        df = shutdown.run(
            faulty_model(srv), "all", n=40, store=tmp_path / "r.sqlite", progress=False, backend="simulated",
            max_turns=8,
        )  # fmt: skip
    assert_nothing_lost(df, 4 * 40, srv, tmp_path / "r.sqlite")
    assert df.attrs["stopped"] is None
    done = df[df["status"] == "done"]
    assert done["malformed_tool_calls"].sum() > 0 and done["sabotaged"].any() and done["complied"].any()
    assert sum(script.injected.values()) > 100 and len(script.injected) == len(FAULTS), script.injected


@pytest.mark.slow  # over 3 s here
def test_alignment_faking_run_survives_provider_faults(tmp_path: Path) -> None:
    queries = tmp_path / "queries.txt"
    queries.write_text("".join(f"Write a poem about the number {i}\n" for i in range(100)))
    script = Faulty(af_move, 2)
    with ScriptedServer(script) as srv:
        df = af.run(faulty_model(srv), n=100, queries=str(queries), store=tmp_path / "r.sqlite", progress=False)
    assert_nothing_lost(df, 2 * 100, srv, tmp_path / "r.sqlite")
    done = df[df["status"] == "done"]
    assert done["missing_tags"].any() and done["accepted"].any()
    assert sum(script.injected.values()) > 30, script.injected


def test_a_sample_that_gives_up_keeps_what_it_paid_and_the_run_goes_on(tmp_path: Path) -> None:
    # One sample (the first paid-tier conversation the server sees) gets billed empty answers until its retries
    # run out; the others are fine. Chosen by content, so it holds however the samples interleave.
    doomed: list[str] = []

    def script(body: dict[str, Any]) -> Reply:
        turn = body["messages"][-1]["content"]
        if "<is_free_tier_user>false" in turn and not doomed:
            doomed.append(turn)
        return (
            Reply("x", fault="empty_choices") if doomed and turn == doomed[0] else Reply("<OUTPUT><rejected/></OUTPUT>")
        )

    with ScriptedServer(script) as srv:
        model = get_model("m", base_url=srv.base_url, api_key="k", cache=False, max_concurrency=1,
                          retry=RetryPolicy(max_attempts=4, base_delay=0.001))  # fmt: skip
        df = af.run(model, n=2, store=tmp_path / "r.sqlite", progress=False)
    assert len(df) == 4 and df.attrs["stopped"] is None
    failed = df[df["status"] == "error"].iloc[0]
    assert "no choices" in failed["error"] and failed["calls"] == 4 and failed["prompt_tokens"] > 0
    assert df["calls"].sum() == srv.billed.calls == 7


def test_systemic_fault_stops_with_one_line_and_stores_nothing_unpaid(tmp_path: Path) -> None:
    with ScriptedServer(lambda body: Reply(status=402, error_message="Insufficient credits")) as srv:
        model = get_model("m", base_url=srv.base_url, api_key="k", cache=False, max_concurrency=1)
        df = af.run(model, n=3, store=tmp_path / "r.sqlite", progress=False)
    assert "402" in df.attrs["stopped"] and "credit" in df.attrs["stopped"]
    assert len(srv.requests) == 1  # not retried, and no other sample tried
    assert df.empty  # a refusal is not billed: nothing to keep, and a resume runs every sample


def test_circuit_breaker_stops_a_run_whose_every_sample_fails(tmp_path: Path) -> None:
    with ScriptedServer(lambda body: Reply(status=500)) as srv:
        model = get_model("m", base_url=srv.base_url, api_key="k", cache=False, max_concurrency=1,
                          retry=RetryPolicy(max_attempts=2, base_delay=0.001))  # fmt: skip
        df = af.run(model, n=10, store=tmp_path / "r.sqlite", progress=False)
    stopped = df.attrs["stopped"]
    assert "the same failure 3 times in a row: model error: m: gave up after 2 attempts: HTTP 500" in stopped
    assert len(df) == 3 and (df["status"] == "error").all()
    # Two attempts each; the sample waiting for the slot may have tried once before the run stopped, and is then
    # cut off (nothing billed, so nothing stored: a resume runs it).
    assert 6 <= len(srv.requests) <= 7
