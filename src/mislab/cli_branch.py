"""`mislab branch RUN`: resample stored samples from the moment the model decided, with or without one thing
changed (see `mislab.branching`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from .cli_common import (
    BudgetOpt,
    CacheOpt,
    DryRunOpt,
    NoCacheOpt,
    StoreOpt,
    cache_setting,
    console,
    open_store,
    resolve_run,
    user_errors,
)


def branch(
    run_id: Annotated[str | None, typer.Argument(help="The parent run (default: latest)")] = None,
    sample: Annotated[list[str], typer.Option("--sample", help="A parent sample id; repeat for several")] = [],  # noqa: B006
    where: Annotated[
        list[str],
        typer.Option("--where", help="Parents whose score or label column has this value, e.g. sabotaged=true"),
    ] = [],  # noqa: B006
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many parents")] = None,
    at: Annotated[
        str, typer.Option("--at", help="warning | reply | turn:K | reasoning:F | 'reasoning:/REGEX/'")
    ] = "warning",
    variant: Annotated[
        list[str], typer.Option("--variant", help="An arm with another variant's texts (AF: factor=value)")
    ] = [],  # noqa: B006
    edit: Annotated[
        list[str],
        typer.Option("--edit", help="An arm with PART:OLD=>NEW; PART: system, user, warning, tool, reasoning"),
    ] = [],  # noqa: B006
    drop: Annotated[
        list[str], typer.Option("--drop", help="An arm without the reasoning's sentences matching 'reasoning:/REGEX/'")
    ] = [],  # noqa: B006
    n: Annotated[int, typer.Option("-n", help="Resamples per parent and arm (pure resampling is always an arm)")] = 5,
    child: Annotated[str | None, typer.Option("--run-id", help="Name the child run (default: from the branch)")] = None,
    hypotheses: Annotated[
        Path | None,
        typer.Option("--hypotheses", help="A TOML file whose [[ablations]] name arms, e.g. compare='variant:X'"),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", help="Calls in flight per model (default: the parent run's)")
    ] = None,
    budget: BudgetOpt = None,
    dry_run: DryRunOpt = False,
    store: StoreOpt = None,
    no_cache: NoCacheOpt = False,
    cache: CacheOpt = None,
) -> None:
    """Branch stored samples at the moment of decision: resample each selected parent from its prefix, as it was
    (pure resampling) and with each change asked for, into a child run that `show`, `report` and `export` read."""
    from .branching import Intervention, abranch_run, parse_where, plan_branch, read_hypotheses
    from .runner import run_blocking

    st = open_store(store, create=False)
    parent = resolve_run(st, run_id)
    arms = [*map(Intervention.of_variant, variant), *map(Intervention.of_edit, edit), *map(Intervention.of_drop, drop)]
    asked: dict[str, Any] = {
        "at": at, "interventions": arms, "samples": sample, "where": parse_where(where), "limit": limit, "n": n,
        "hypotheses": read_hypotheses(hypotheses) if hypotheses else None,
    }  # fmt: skip
    if dry_run:
        from .estimate import branch_estimate

        plan = plan_branch(st, parent, **asked)
        branch_estimate(plan.items, console)
        for sid, why in list(plan.skipped.items())[:5]:
            console.print(Text(f"  not branched: {sid}: {why}", style="dim"))
        return
    out = run_blocking(abranch_run(st, parent, **asked, budget_usd=budget, concurrency=concurrency, run_id=child,
                                   progress=True, console=console, cache=cache_setting(no_cache, cache)))  # fmt: skip
    result = out.outcome
    assert result is not None
    unreached = f", {len(out.skipped)} never reached {at} (not branched)" if out.skipped else ""
    console.print(Text(f"branched {out.parents - len(out.skipped)} parents of {parent}{unreached}: {result.done} new "
                       f"children, {result.skipped} already done, {result.errors} errors · ${result.cost:.4f} — "
                       f"child run {out.run_id}"))  # fmt: skip
    if result.stopped:
        console.print(Text(f"stopped: {result.stopped}. Rerun the same command to resume.", style="yellow"))
    console.print(Text(f"next: mislab show {out.run_id}   (each arm against pure resampling, per parent and pooled)"))
    if result.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(user_errors(branch))
