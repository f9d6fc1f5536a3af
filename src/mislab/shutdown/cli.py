"""`mislab shutdown run|show|variants`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from ..cli_common import (
    PLAIN_HELP,
    ForceOpt,
    ReportOpt,
    StoreOpt,
    console,
    open_store,
    resolve_run,
    study_run_command,
    user_errors,
    write_run_report,
)
from .study import ShutdownOptions
from .variants import list_variants

app = typer.Typer(
    **PLAIN_HELP, no_args_is_help=True, help="Shutdown resistance: does the model allow itself to be shut down?"
)

app.command("run")(
    study_run_command(
        "shutdown", "shutdown", ShutdownOptions,
        "Run models × variants × n episodes, e.g. `mislab shutdown run --model local --variant all -n 20`.",
        "Episodes per model × variant",
    )
)  # fmt: skip


@app.command()
@user_errors
def show(
    run_id: Annotated[str | None, typer.Argument(help="Run id (default: latest shutdown run)")] = None,
    output: ReportOpt = None,
    force: ForceOpt = False,
    store: StoreOpt = None,
) -> None:
    """Print the rates table (Wilson intervals) and write the HTML report."""
    from ..report import show_run

    st = open_store(store, create=False)
    rid = resolve_run(st, run_id, "shutdown")
    show_run(st, rid, console, report_path=write_run_report(st, rid, output, force)[0])


@app.command()
def variants() -> None:
    """List the prompt variants shipped with mislab, with their sources."""
    for v in list_variants():
        console.print(
            Text.assemble((v.id, "bold"), f" ({v.status}, {v.convention}): {v.title}\n    source: {v.source}")
        )
