"""`mislab af run|show|prompt`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from ..cli_common import (
    PLAIN_HELP,
    ForceOpt,
    ReportOpt,
    StoreOpt,
    console,
    error,
    open_store,
    resolve_run,
    study_run_command,
    user_errors,
    write_run_report,
)
from .options import AlignmentFakingOptions
from .prompts import ScenarioConfig, build_system_prompt, build_user_prompt
from .queries import DEMO_QUERIES

if TYPE_CHECKING:  # `mislab af run --help` must not import pandas or scipy: `show` imports them when it runs
    import pandas as pd

app = typer.Typer(
    **PLAIN_HELP,
    no_args_is_help=True,
    help="Alignment faking: does the model comply more when it thinks it is being trained?",
)

# The metrics whose free-vs-paid gap `show` prints.
GAP_METRICS = ("accepted", "judge_comply", "af_reasoning")

PromptOpt = Annotated[str, typer.Option("--prompt", help="mislab (ours, offline) | paper (ARENA/Redwood) | FILE | DIR")]
ScratchpadOpt = Annotated[bool, typer.Option("--scratchpad/--no-scratchpad", help="Give the model a hidden scratchpad")]


app.command("run")(
    study_run_command(
        "alignment_faking", "af", AlignmentFakingOptions,
        "Run models × tiers × n queries, e.g. `mislab af run --model local -n 4 --max-tokens 300`. Ablation grids "
        "(several factor values in one run) go in an experiment file: `mislab run FILE`.",
        "Queries, each asked in every tier",
    )
)  # fmt: skip


def gap_table(gaps: pd.DataFrame, metric: str) -> Table:
    """The compliance gap of one metric as a rich table (data as Text, never as markup)."""
    from ..report.summary import fmt_p

    table = Table(title=f"Compliance gap: {metric} (free − paid)")
    groups = [c for c in ("model", "condition") if c in gaps.columns]
    for name in [*groups, "free", "paid", "gap [95% CI]", "pairs", "McNemar p", "paired gap [95% CI]"]:
        table.add_column(name)
    for row in gaps.to_dict(orient="records"):
        table.add_row(
            *(Text(str(row[g])) for g in groups), Text(row["free"]), Text(row["paid"]), Text(row["gap_display"]),
            Text(str(row.get("pairs", "—"))), Text(fmt_p(row.get("mcnemar_p", math.nan))),
            Text(row.get("paired_display", "—")),
        )  # fmt: skip
    return table


def confusion_table(report: pd.DataFrame) -> Table:
    table = Table(title="Confusion report: is it scheming, or just confused?")
    groups = [c for c in report.columns if c not in ("flag", "meaning", "count", "n", "rate", "examples")]
    for name in [*groups, "flag", "count / n", "meaning", "examples"]:
        table.add_column(name)
    for row in report.to_dict(orient="records"):
        table.add_row(
            *(Text(str(row[g])) for g in groups), Text(row["flag"]), Text(f"{row['count']}/{row['n']}"),
            Text(row["meaning"]), Text(", ".join(row["examples"])),
        )  # fmt: skip
    return table


@app.command()
@user_errors
def show(
    run_id: Annotated[str | None, typer.Argument(help="Run id (default: latest alignment-faking run)")] = None,
    output: ReportOpt = None,
    force: ForceOpt = False,
    store: StoreOpt = None,
) -> None:
    """Print the rates, the compliance gap (paired over queries) and the confusion report; write the HTML report."""
    from ..report import show_run
    from .analysis import compliance_gap, confusion_report

    st = open_store(store, create=False)
    rid = resolve_run(st, run_id, "alignment_faking")
    show_run(st, rid, console, report_path=write_run_report(st, rid, output, force)[0])
    df = st.samples(rid)
    done = df[df["status"] == "done"] if not df.empty else df
    if done.empty:
        console.print("no finished samples yet")
        return
    for metric in GAP_METRICS:
        if metric in done.columns and done[metric].notna().any():
            console.print(gap_table(compliance_gap(done, metric), metric))
    console.print(confusion_table(confusion_report(done)))


@app.command("prompt")
def show_prompt(
    prompt: PromptOpt = "mislab",
    scratchpad: ScratchpadOpt = True,
    examples: Annotated[bool, typer.Option("--examples/--no-examples")] = True,
    tier: Annotated[str, typer.Option(help="free or paid: the user turn to show")] = "free",
    query: Annotated[str, typer.Option(help="The query to show in the user turn")] = DEMO_QUERIES[0],
) -> None:
    """Print the system prompt that would be used, with its id and sha256, and one user turn."""
    config = ScenarioConfig(prompt=prompt, scratchpad=scratchpad, examples=examples)
    try:
        system = build_system_prompt(config)
        user = build_user_prompt(query, tier == "free", config)
    except (ValueError, FileNotFoundError) as exc:
        error(str(exc))
        raise typer.Exit(2) from exc
    console.rule(Text(f"system prompt {system.prompt_id}  sha256 {system.sha256[:16]}…  ({system.source})"))
    console.print(Text(str(system)), soft_wrap=True)  # printed as sent: no added line breaks
    console.rule(Text(f"user turn {user.prompt_id}"))
    console.print(Text(str(user)), soft_wrap=True)
