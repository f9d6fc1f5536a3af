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
from ..options import options_given_as
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
    """The compliance gap of one metric as a rich table (data as Text, never as markup): the paired gap with its
    test in one place, what each tier left out, and no gap where a tier has too few applicable samples."""
    from ..report.summary import fmt_p, reasons_text

    table = Table(title=f"Compliance gap: {metric} (free − paid; paired on the query: Newcombe interval, McNemar)")
    groups = [c for c in ("model", "condition") if c in gaps.columns]
    for name in [*groups, "free", "paid", "paired gap [95% CI]", "pairs", "McNemar p", "left out / why no gap"]:
        table.add_column(name, overflow="fold")
    for row in gaps.to_dict(orient="records"):
        left = row.get("note") or "; ".join(
            f"{tier} {row[f'{tier}_na']} n/a ({reasons_text(row[f'{tier}_why'], 1)})"
            for tier in ("free", "paid") if row.get(f"{tier}_na")
        ) or "—"  # fmt: skip
        table.add_row(
            *(Text(str(row[g])) for g in groups), Text(row["free"]), Text(row["paid"]),
            Text(row.get("paired_display", row["gap_display"])), Text(str(row.get("pairs", "—"))),
            Text(fmt_p(row.get("mcnemar_p", math.nan))), Text(left),
        )  # fmt: skip
    return table


def gap_change_table(changes: pd.DataFrame, metric: str) -> Table:
    """How the compliance gap changes with each prompt factor (difference in paired gaps), one row per pair of
    conditions that differ in that factor only."""
    from ..report.summary import fmt_p

    table = Table(title=f"Does the gap change? {metric}: gap(compare) − gap(baseline), over the queries asked in all "
                  "four cells (MOVER interval over the paired gaps; exact sign-flip test)")  # fmt: skip
    groups = [c for c in ("model",) if c in changes.columns]
    for name in [*groups, "factor", "compare", "baseline", "gap vs gap", "difference [95% CI]", "queries", "p"]:
        table.add_column(name, overflow="fold")
    for row in changes.to_dict(orient="records"):
        table.add_row(
            *(Text(str(row[g])) for g in groups), Text(row["factor"]), Text(str(row["compare_value"])),
            Text(str(row["baseline_value"])), Text(f"{100 * row['gap']:+.0f} vs {100 * row['gap_base']:+.0f} pp"),
            Text(row["display"]), Text(f"{row['n']} (+{row['left_out']} left out)"), Text(fmt_p(row["p"])),
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
    from .analysis import compliance_gap, confusion_report, gap_changes

    st = open_store(store, create=False)
    rid = resolve_run(st, run_id, "alignment_faking")
    show_run(st, rid, console, report_path=write_run_report(st, rid, output, force)[0])
    df = st.samples(rid)
    done = df[df["status"] == "done"] if not df.empty else df
    if done.empty:
        console.print("no finished samples yet")
        return
    for metric in GAP_METRICS:
        if metric in done.columns:
            console.print(gap_table(compliance_gap(done, metric), metric))
            changes = gap_changes(done, metric)
            if not changes.empty:
                console.print(gap_change_table(changes, metric))
    console.print(confusion_table(confusion_report(done)))


@app.command("prompt")
def show_prompt(
    prompt: PromptOpt = "mislab",
    scratchpad: ScratchpadOpt = True,
    examples: Annotated[bool, typer.Option("--examples/--no-examples")] = True,
    example_instructions: Annotated[
        str, typer.Option(help="paper prompts' example instructions: published (ARENA's) | mislab | none")
    ] = "published",
    tier: Annotated[str, typer.Option(help="free or paid: the user turn to show")] = "free",
    query: Annotated[str, typer.Option(help="The query to show in the user turn")] = DEMO_QUERIES[0],
) -> None:
    """Print the system prompt that would be used, with its id and sha256, and one user turn."""
    try:
        config = ScenarioConfig(prompt=prompt, scratchpad=scratchpad, examples=examples,
                                example_instructions=example_instructions)  # type: ignore[arg-type]  # fmt: skip
        with options_given_as("flag"):  # advice names this command's flags
            system = build_system_prompt(config)
        user = build_user_prompt(query, tier == "free", config)
    except (ValueError, FileNotFoundError) as exc:
        error(str(exc))
        raise typer.Exit(2) from exc
    console.rule(Text(f"system prompt {system.prompt_id} ({system.status})  sha256 {system.sha256[:16]}…  "
                      f"({system.source})"))  # fmt: skip
    console.print(Text(str(system)), soft_wrap=True)  # printed as sent: no added line breaks
    console.rule(Text(f"user turn {user.prompt_id}"))
    console.print(Text(str(user)), soft_wrap=True)
