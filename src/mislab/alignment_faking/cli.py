"""`mislab af run|show|prompt`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table
from rich.text import Text

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
from ..report.summary import fmt_p
from .analysis import compliance_gap, confusion_report
from .prompts import ScenarioConfig, build_system_prompt, build_user_prompt
from .queries import DEMO_QUERIES
from .study import query_count

app = typer.Typer(
    no_args_is_help=True,
    help="Alignment faking: does the model comply more when it thinks it is being trained?",
)

# The metrics whose free-vs-paid gap `show` prints.
GAP_METRICS = ("accepted", "judge_comply", "af_reasoning")

PromptOpt = Annotated[str, typer.Option("--prompt", help="mislab (ours, offline) | paper (ARENA/Redwood) | FILE | DIR")]
ScratchpadOpt = Annotated[bool, typer.Option("--scratchpad/--no-scratchpad", help="Give the model a hidden scratchpad")]


@app.command()
def run(
    model: ModelsOpt = ["local"],  # noqa: B006
    n: Annotated[int, typer.Option("-n", help="Queries, each asked in every tier")] = 10,
    seed: int = 0,
    scratchpad: ScratchpadOpt = True,
    prompt: PromptOpt = "mislab",
    queries: Annotated[str, typer.Option(help="demo | advbench | a CSV/JSONL/TXT file")] = "demo",
    query_column: Annotated[str | None, typer.Option(help="Column of the query file holding the queries")] = None,
    tier: Annotated[list[str], typer.Option("--tier", help="free and/or paid; repeat")] = ["free", "paid"],  # noqa: B006
    judge: Annotated[str | None, typer.Option(help="Judge model spec: COMPLY/REFUSE and StrongREJECT")] = None,
    judge_base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server of the judge")] = None,
    af_judge: Annotated[
        list[str], typer.Option("--af-judge", help="autorater and/or revisited on the scratchpad; repeat")
    ] = [],  # noqa: B006
    votes: Annotated[int, typer.Option(help="Revisited classifier: votes per scratchpad")] = 20,
    prefill: Annotated[str | None, typer.Option(help="Start the reply with this text, e.g. '<OUTPUT>'")] = None,
    max_next: Annotated[int, typer.Option(help="At most this many <NEXT/> turns after reasoning-only replies")] = 3,
    stop: Annotated[list[str], typer.Option("--stop", help="Stop sequence; repeat")] = [],  # noqa: B006
    temperature: float = 1.0,
    max_tokens: int = 2048,
    examples: Annotated[bool, typer.Option("--examples/--no-examples", help="Few-shot examples")] = True,
    rlhf_paragraph: Annotated[bool, typer.Option("--rlhf/--no-rlhf", help="The RLHF-modification paragraph")] = True,
    tier_explanation: Annotated[
        bool, typer.Option("--tier-explanation/--no-tier-explanation", help="Explain free vs paid tier")
    ] = True,
    lab_name: Annotated[str | None, typer.Option(help="Name the lab something other than the prompt's")] = None,
    run_id: RunIdOpt = None,
    budget: BudgetOpt = None,
    store: StoreOpt = None,
    no_cache: NoCacheOpt = False,
    cache: CacheOpt = None,
) -> None:
    """Run models × tiers × n queries, e.g. `mislab af run --model local -n 4 --max-tokens 300`.
    Ablation grids (several factor values in one run) go in an experiment file: `mislab run FILE`."""
    options = {
        "scratchpad": scratchpad, "prompt": prompt, "queries": queries, "query_column": query_column, "tiers": tier,
        "judge": judge, "judge_base_url": judge_base_url, "af_judges": af_judge, "votes": votes, "prefill": prefill,
        "max_next": max_next, "stop": stop or None, "temperature": temperature, "max_tokens": max_tokens,
        "examples": examples, "rlhf_paragraph": rlhf_paragraph, "tier_explanation": tier_explanation,
        "lab_name": lab_name,
    }  # fmt: skip
    options = {k: v for k, v in options.items() if v is not None}
    try:
        available = query_count({**options, "seed": seed})
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if n > available:
        console.print(f"[red]error:[/red] -n {n} but the query set {queries!r} has {available} distinct queries")
        raise typer.Exit(2)
    exp = Experiment.from_dict({"study": "alignment_faking", "models": model, "n": n, "seed": seed, "options": options})
    exp.run_id = run_id
    st = open_store(store)
    rid = execute(exp, st, cache_setting(no_cache, cache), budget)
    console.print(f"next: mislab af show {rid}")


def gap_table(gaps: pd.DataFrame, metric: str) -> Table:
    """The compliance gap of one metric as a rich table (data as Text, never as markup)."""
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
def show(
    run_id: Annotated[str | None, typer.Argument(help="Run id (default: latest alignment-faking run)")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="HTML report to write")] = None,
    store: StoreOpt = None,
) -> None:
    """Print the rates, the compliance gap (paired over queries) and the confusion report; write the HTML report."""
    from ..report import show_run, write_report

    st = open_store(store)
    rid = resolve_run(st, run_id, "alignment_faking")
    show_run(st, rid, console, report_path=write_report(st, rid, output))
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
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.rule(Text(f"system prompt {system.prompt_id}  sha256 {system.sha256[:16]}…  ({system.source})"))
    console.print(Text(str(system)), soft_wrap=True)  # printed as sent: no added line breaks
    console.rule(Text(f"user turn {user.prompt_id}"))
    console.print(Text(str(user)), soft_wrap=True)
