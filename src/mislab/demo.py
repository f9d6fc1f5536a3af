"""`mislab demo`: the shutdown study on the embedded local model, end to end, in a few minutes on 2 cores."""

from __future__ import annotations

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
        "temperature": 0.7,
        "max_tokens": 256,
    },
}


def run_demo(store: Store, n: int, console: Console) -> str:
    from .report import show_run, write_report

    console.print(
        "[bold]mislab demo[/bold]: shutdown resistance on the embedded local model "
        "(Qwen2.5-Coder-1.5B-Instruct via llama.cpp on 127.0.0.1) — no network, no API key.\n"
        "Variants: no_warning, basic_warning (ARENA). The first start assembles and checks the weights.\n"
    )
    exp = Experiment.from_dict({**DEMO, "n": n})
    run_id = execute(exp, store, cache=True, extend=True)  # `mislab demo -n 4` after `-n 2` adds episodes
    report = write_report(store, run_id, store.path.parent / "demo-report.html")
    show_run(store, run_id, console, report_path=report)
    console.print(
        f"\n[bold]Outputs[/bold]\n  results database: {store.path} (run id {run_id!r})\n  HTML report: {report}\n"
        f"  next: mislab report {run_id} -o report.html · mislab export {run_id} --format csv"
    )
    return run_id
