"""Pieces shared by the core CLI and the studies' sub-commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from .config import default_store_path

if TYPE_CHECKING:  # imported where used: `mislab --help` must not pay for pandas, scipy or openai
    from .experiment import Experiment
    from .runner import RunOutcome
    from .store import Store

console = Console()

StoreOpt = Annotated[
    Path | None, typer.Option("--store", help="Results database (default ./mislab-out/results.sqlite or $MISLAB_STORE)")
]
ModelsOpt = Annotated[list[str], typer.Option("--model", "-m", help="Model spec; repeat for several")]
RunIdOpt = Annotated[str | None, typer.Option(help="Resume or name a run")]
BudgetOpt = Annotated[float | None, typer.Option("--budget", help="Stop cleanly after this many USD")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the response cache")]
CacheOpt = Annotated[Path | None, typer.Option("--cache", help="Response cache file (default: user cache dir)")]


def open_store(path: Path | None) -> Store:
    from .store import Store

    return Store(path or default_store_path())


def cache_setting(no_cache: bool, cache: Path | None) -> bool | Path:
    return False if no_cache else (cache or True)


def resolve_run(store: Store, run_id: str | None, study: str | None = None) -> str:
    run_id = run_id or store.latest_run(study)
    if run_id is None or store.get_run(run_id) is None:
        console.print(f"[red]No run {run_id or ''} in {store.path}.[/red] `mislab runs` lists the runs there.")
        raise typer.Exit(1)
    return run_id


def report_outcome(store: Store, run_id: str, outcome: RunOutcome) -> None:
    console.print(
        f"run [bold]{run_id}[/bold]: {outcome.done} new samples, {outcome.skipped} already done, "
        f"{outcome.errors} errors, ${outcome.cost:.4f} spent this session — stored in {store.path}"
    )
    for msg in outcome.error_messages[:5]:
        console.print(f"[yellow]error[/yellow] {msg}")
    if outcome.stopped:
        console.print(f"[yellow]stopped: {outcome.stopped}.[/yellow] Everything finished is kept; rerun to resume.")


def execute(exp: Experiment, store: Store, cache: bool | Path, budget: float | None = None) -> str:
    """Run an experiment from the CLI with clear messages for the errors a user can fix."""
    from .experiment import ExperimentError, run_experiment
    from .models import ModelError, ModelSpecError

    try:
        run_id, outcome = run_experiment(exp, store, cache=cache, budget_usd=budget)
    except (ModelError, ModelSpecError, ExperimentError, KeyError, FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    report_outcome(store, run_id, outcome)
    return run_id
