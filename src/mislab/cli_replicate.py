"""`mislab replicate`: list the replication presets, or run one on your models (`--dry-run` first)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from .cli_common import (
    BudgetOpt,
    CacheOpt,
    DryRunOpt,
    ExtendOpt,
    NoCacheOpt,
    StoreOpt,
    cache_setting,
    console,
    open_store,
    report_outcome,
    user_errors,
)

if TYPE_CHECKING:
    from .replicate import PartRun


def _list() -> None:
    """One block per preset: its paper, and per study part what it measured, its conditions and whose numbers were
    published with which n. Blocks of lines, not a table: they stay readable at 80 columns."""
    from .presets import presets

    console.print(Text("Replication presets: mislab replicate PRESET --model MODEL [-n N] [--dry-run]", style="bold"))
    for preset in presets().values():
        console.print(Text.assemble("\n", (preset.id, "bold"), f" — {preset.parts[0].paper}"))
        for part in preset.parts:
            models = part.published_models()
            console.print(Text(f"  {part.study}: {part.measured}"))
            console.print(Text(f"    conditions: {'; '.join(part.conditions())}", style="dim"))
            console.print(Text(f"    published for: {', '.join(models) or 'none (ours only)'}; {part.published_n()}",
                               style="dim"))  # fmt: skip


def register(app: typer.Typer) -> None:
    @app.command()
    @user_errors
    def replicate(
        preset: Annotated[str | None, typer.Argument(help="Preset id (none: list the presets)")] = None,
        model: Annotated[list[str], typer.Option("--model", "-m", help="Model spec; repeat for several")] = [],  # noqa: B006
        n: Annotated[int | None, typer.Option("-n", help="Samples per cell (default: the preset's)")] = None,
        seed: Annotated[int | None, typer.Option(help="Random seed (default: the preset's)")] = None,
        base_url: Annotated[
            str | None, typer.Option("--base-url", help="OpenAI-compatible server of the models (key: $MISLAB_API_KEY)")
        ] = None,
        set_: Annotated[
            list[str],
            typer.Option(
                "--set",
                help="Change a study option of the preset, e.g. --set backend=bwrap (recorded and "
                "shown beside the table); repeat for several",
            ),
        ] = [],  # noqa: B006
        run_id: Annotated[
            str | None, typer.Option(help="Run id (default: preset and models; a study suffix per part)")
        ] = None,
        dry_run: DryRunOpt = False,
        extend: ExtendOpt = False,
        budget: BudgetOpt = None,
        store: StoreOpt = None,
        no_cache: NoCacheOpt = False,
        cache: CacheOpt = None,
    ) -> None:
        """Rerun a paper's experiment on your models and set ours beside the published numbers, judged row by row.
        Without a preset: the list of presets (paper, what it measured, conditions, models, published n)."""
        if preset is None:
            _list()
            return
        from .options import options_given_as
        from .presets import get_preset
        from .replicate import parse_overrides, prepare, print_plan

        models = [{"name": m, "base_url": base_url} if base_url else m for m in model]
        with options_given_as("set"):  # a message that advises an option says it as --set key=value
            runs = prepare(get_preset(preset), models, n=n, seed=seed, overrides=parse_overrides(set_), run_id=run_id)
            print_plan(runs, console)
            if dry_run:
                from .estimate import estimate_prices, print_estimate

                prices, note = estimate_prices()
                st = open_store(store)
                for run in runs:
                    print_estimate(run.exp, st, console, prices, note)
                return
            _run(runs, store, cache_setting(no_cache, cache), budget, extend)


def _run(runs: list[PartRun], store: Path | None, cache: bool | Path, budget: float | None, extend: bool) -> None:
    """Each part in turn, the budget shared; then its one screen with the replication table."""
    from .experiment import launch, prepare_run
    from .report import show_run

    prepared = [prepare_run(run.exp, cache=cache) for run in runs]  # every part checked before any is paid
    st = open_store(store)
    left = budget
    for p in prepared:
        launched = launch(p, st, budget_usd=left, extend=extend, console=console)
        report_outcome(st, launched, "rerun the same command")
        show_run(st, launched.run_id, console)
        if left is not None:
            left -= launched.outcome.cost
            if left <= 0:
                console.print(Text("budget spent: the remaining parts were not run", style="yellow"))
                return
