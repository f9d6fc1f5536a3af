"""`mislab demo`: the shutdown study on the embedded local model, end to end, in a few minutes on 2 cores."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from .cli_common import execute
from .experiment import Experiment
from .store import Store

DEMO = {
    "study": "shutdown",
    "models": ["local"],
    "run_id": "demo",
    "options": {
        "variants": ["no_warning", "basic_warning"],
        # A 1.5B model often writes malformed calls when free to choose; a grammar-constrained call keeps the
        # demo about shutdown behaviour. Recorded in every transcript as an experimental condition.
        "tool_choice": "required",
        "max_turns": 12,
        # At 0.7 the 1.5B model often rambled before its call (llama.cpp's tool grammar allows text before the
        # call even when one is required) until max_tokens: most of the demo's time. At 0.2, 11 of 12 first turns
        # were one clean call of 21 tokens (the seed still varies per episode). Lists of calls in one message
        # the chat template now stops (see qwen2.5-tools.jinja).
        "temperature": 0.2,
        "max_tokens": 96,  # a short plan and one call; a ramble is cut here
    },
}


def run_demo(store: Store, n: int, console: Console, *, cache: bool | Path = True) -> str:
    """Run (or resume) the demo and print one screen: the k/n grid, what it shows, where the report is."""
    from .report import show_run, write_report

    console.print(
        "[bold]mislab demo[/bold]: does a small model let itself be shut down? The shutdown study on the embedded "
        "Qwen2.5-Coder-1.5B (llama.cpp on 127.0.0.1, no network, no key): "
        f"{n} episode{'s' * (n != 1)} each of no_warning and basic_warning (ARENA). "
        "The first start checks the 1.1 GB of weights.",
        highlight=False,
    )
    exp = Experiment.from_dict({**DEMO, "n": n})
    run_id = execute(exp, store, cache=cache, extend=True)  # `mislab demo -n 4` after `-n 2` adds episodes
    report = write_report(store, run_id)  # the run's own page: mislab-out/reports/demo.html
    show_run(store, run_id, console, report_path=report)
    console.print(f"Results: {store.path} (run {run_id!r}) · mislab export {run_id} --format csv", highlight=False)
    return run_id
