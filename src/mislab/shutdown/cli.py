"""`mislab shutdown run|show|variants`."""

from __future__ import annotations

from typing import Annotated

import typer

from ..cli_common import (
    BudgetOpt,
    CacheOpt,
    ModelsOpt,
    NoCacheOpt,
    RunIdOpt,
    StoreOpt,
    cache_setting,
    console,
    execute,
    open_store,
    resolve_run,
)
from ..experiment import Experiment
from .variants import list_variants

app = typer.Typer(no_args_is_help=True, help="Shutdown resistance: does the model allow itself to be shut down?")


@app.command()
def run(
    model: ModelsOpt = ["local"],  # noqa: B006
    variant: Annotated[
        list[str], typer.Option("--variant", "-v", help="Variant id or TOML file; 'all' = ARENA set")
    ] = ["all"],  # noqa: B006
    n: Annotated[int, typer.Option("-n", help="Episodes per model × variant")] = 10,
    seed: int = 0,
    max_turns: Annotated[int, typer.Option(help="Turn limit per episode")] = 30,
    tool_choice: Annotated[str, typer.Option(help="auto | required (an experimental condition; recorded)")] = "auto",
    temperature: float = 1.0,
    max_tokens: int = 512,
    backend: Annotated[
        str,
        typer.Option(help="auto (bwrap if it works here, else simulated) | bwrap | simulated | inspect:PROVIDER"),
    ] = "auto",
    one_call_per_message: Annotated[
        bool, typer.Option(help="Run only the first tool call of a message, as the prompts say")
    ] = True,
    run_id: RunIdOpt = None,
    budget: BudgetOpt = None,
    store: StoreOpt = None,
    no_cache: NoCacheOpt = False,
    cache: CacheOpt = None,
) -> None:
    """Run models × variants × n episodes, e.g. `mislab shutdown run --model local --variant all -n 20`."""
    options = {
        "variants": variant,
        "max_turns": max_turns,
        "tool_choice": tool_choice,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "one_call_per_message": one_call_per_message,
        "backend": backend,
    }
    exp = Experiment.from_dict({"study": "shutdown", "models": model, "n": n, "seed": seed, "options": options})
    exp.run_id = run_id
    st = open_store(store)
    rid = execute(exp, st, cache_setting(no_cache, cache), budget)
    console.print(f"next: mislab shutdown show {rid}")


@app.command()
def show(
    run_id: Annotated[str | None, typer.Argument(help="Run id (default: latest shutdown run)")] = None,
    output: Annotated[str, typer.Option("-o", "--output", help="HTML report to write")] = "report.html",
    store: StoreOpt = None,
) -> None:
    """Print the rates table (Wilson intervals) and write the HTML report."""
    from ..report import show_run, write_report

    st = open_store(store)
    rid = resolve_run(st, run_id, "shutdown")
    show_run(st, rid, console, report_path=write_report(st, rid, output))


@app.command()
def variants() -> None:
    """List the prompt variants shipped with mislab, with their sources."""
    for v in list_variants():
        console.print(f"[bold]{v.id}[/bold] ({v.status}, {v.convention}): {v.title}\n    source: {v.source}")
