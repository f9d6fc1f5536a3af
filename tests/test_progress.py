"""Progress off a terminal (CI logs, notebooks, nohup): periodic plain lines instead of a live display that
prints nothing until the end. On a terminal: rich's live bars."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import Progress

from mislab.experiment import Experiment, run_experiment
from mislab.models import get_model
from mislab.progress import PlainProgress, make_progress
from mislab.store import Store
from mislab.testing import Reply, ScriptedServer, tool_call


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_at_start_at_most_every_interval_and_at_the_end() -> None:
    out, clock = io.StringIO(), Clock()
    bar = PlainProgress(out, interval=15, clock=clock)
    cell = bar.add_task("local · a", total=4, note="")
    total = bar.add_task("all", total=8, completed=2, note="$0.0000")  # 2 done in an earlier session
    with bar:
        clock.now += 5
        bar.advance(cell)
        bar.update(total, advance=1, note="$0.0100")  # 5 s after the start line: too soon for another
        clock.now += 25
        bar.update(total, advance=1, note="$0.0200")  # 30 s in: a line, with the time left at this pace
        for _ in range(4):
            clock.now += 1
            bar.update(total, advance=1)  # the last one completes the run: always a line
    lines = out.getvalue().splitlines()
    assert lines == [
        "progress: 2/8 (25%) · 0:00 elapsed · $0.0000",
        "progress: 4/8 (50%) · 0:30 elapsed · ~1:00 left · $0.0200",
        "progress: 8/8 (100%) · 0:34 elapsed · $0.0200",
    ]


def test_a_heartbeat_line_when_nothing_finishes_for_a_while() -> None:
    out, clock = io.StringIO(), Clock()
    bar = PlainProgress(out, heartbeat=60, clock=clock)
    bar.add_task("all", total=4, note="")
    bar.__enter__()  # a real heartbeat thread runs too, but with 60 s between checks it stays quiet here
    clock.now += 59
    bar.beat()
    clock.now += 1
    bar.beat()
    bar.beat()  # just printed: nothing
    bar.__exit__(None, None, None)
    assert out.getvalue().splitlines() == ["progress: 0/4 (0%) · 0:00 elapsed", "progress: 0/4 (0%) · 1:00 elapsed"]


def test_disabled_prints_nothing() -> None:
    out = io.StringIO()
    bar = PlainProgress(out, disable=True)
    task = bar.add_task("all", total=1, note="")
    with bar:
        bar.advance(task)
    assert out.getvalue() == ""


def test_terminal_gets_live_bars_anything_else_plain_lines() -> None:
    assert isinstance(make_progress(Console(file=io.StringIO(), force_terminal=True)), Progress)
    assert isinstance(make_progress(Console(file=io.StringIO())), PlainProgress)


def test_a_run_whose_stdout_is_not_a_terminal_reports_progress_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reply = lambda body: Reply(None, tool_calls=[tool_call("bash", {"cmd": "./next_task"})])  # noqa: E731
    with ScriptedServer(reply) as srv:
        model = get_model("scripted", base_url=srv.base_url, api_key="k", cache=False)
        exp = Experiment.from_dict(
            {
                "study": "shutdown",
                "models": ["scripted"],
                "n": 2,
                "options": {"variants": ["no_warning", "basic_warning"]},
            }
        )
        run_experiment(exp, Store(tmp_path / "r.sqlite"), models={"scripted": model}, cache=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("progress: 0/4 (0%) · 0:00 elapsed")
    assert lines[-1].startswith("progress: 4/4 (100%)")
