"""`mislab label`, `mislab label-check` and `mislab rubrics`: judge stored transcripts after the fact."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .cli_common import (
    BudgetOpt,
    CacheOpt,
    NoCacheOpt,
    StoreOpt,
    cache_setting,
    console,
    open_store,
    resolve_run,
    user_errors,
)

JudgeOpt = Annotated[
    str,
    typer.Option("--judge", "-j", help="Judge model spec (e.g. openrouter/openai/gpt-4o), or a TOML file whose [judge] "
                 "table has name, base_url, api_key_env, concurrency, timeout, extra_body …"),
]  # fmt: skip
JudgeUrlOpt = Annotated[
    str | None, typer.Option("--judge-base-url", help="OpenAI-compatible endpoint of the judge (key: $MISLAB_API_KEY)")
]
RubricOpt = Annotated[str, typer.Option("--rubric", "-r", help="Built-in rubric id (`mislab rubrics`) or a .toml")]
VotesOpt = Annotated[int | None, typer.Option("--votes", help="Judge calls per transcript (default: the rubric's)")]
ThresholdOpt = Annotated[
    float | None,
    typer.Option("--threshold", help="Yes/no and criteria rubrics: share of yes-votes that makes a yes (default: the "
                 "rubric's)"),
]  # fmt: skip
CutoffOpt = Annotated[
    float | None,
    typer.Option("--cutoff", help="Score rubrics: a score ≥ this counts as yes, for accuracy and κ (default: none)"),
]


def label(
    judge: JudgeOpt,
    rubric: RubricOpt,
    run_id: Annotated[str | None, typer.Argument(help="Run id (default: latest)")] = None,
    votes: VotesOpt = None,
    threshold: ThresholdOpt = None,
    judge_base_url: JudgeUrlOpt = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Label column (default: the study's column for the rubric, else the rubric id)"),
    ] = None,  # fmt: skip
    redo: Annotated[bool, typer.Option("--redo", help="Replace the label column (every sample judged again)")] = False,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", help="Judge calls in flight (default: the judge's setting, 8)")
    ] = None,  # fmt: skip
    budget: BudgetOpt = None,
    store: StoreOpt = None,
    no_cache: NoCacheOpt = False,
    cache: CacheOpt = None,
) -> None:
    """Label a stored run's transcripts with a judge model and a rubric (the subject model is not called). Progress
    as a run shows it; rerun to resume (unreadable answers are asked again)."""
    from .labeling import label_run, load_rubric
    from .labeling.label import judge_model

    st = open_store(store, create=False)
    run_id = resolve_run(st, run_id)
    r = load_rubric(rubric)
    setting = cache_setting(no_cache, cache)
    model = judge_model(judge, judge_base_url, cache=setting)
    out = label_run(st, run_id, model, r, column=name, votes=votes, threshold=threshold, budget_usd=budget, redo=redo,
                    cache=setting, concurrency=concurrency, progress=True, console=console)  # fmt: skip
    kappa = "" if out.vote_kappa is None or math.isnan(out.vote_kappa) else f" · κ between votes {out.vote_kappa:.2f}"
    console.print(
        f"{escape(out.column)}: {out.labelled} labelled, {out.skipped} already done, {out.not_applicable} not "
        f"applicable, {out.unparseable} unreadable · {out.calls} judge calls, ${out.cost:.4f} in "
        f"{out.seconds:.1f} s{kappa} — rubric {escape(r.prompt_id)}, judge {escape(out.judge)}",
        highlight=False,
    )
    for example in out.unreadable_examples:
        console.print(f"[yellow]unreadable[/yellow] {escape(example)}", highlight=False)
    if out.unparseable:
        console.print(f"{out.unparseable} answer(s) could not be read: they count as not applicable; rerun the same "
                      "command to ask again (no cached copy of an unreadable answer is reused).")  # fmt: skip
    for failure in out.failed[:5]:
        console.print(f"[yellow]not labelled[/yellow] {escape(failure)}")
    if out.failed:
        console.print(f"{len(out.failed)} transcript(s) left unlabelled; rerun the same command to retry them.")
    for column, change in out.rescored.items():
        console.print(f"rescored {escape(column)} from the new labels: {change}", highlight=False)
    if out.stopped:
        console.print(f"[yellow]stopped: {escape(out.stopped)}.[/yellow] Labels so far are kept; rerun to resume.")
    console.print(f"next: mislab show {run_id}   (the label is a metric column with its interval)")
    if out.fatal or (out.failed and not out.labelled):
        raise typer.Exit(1)


def rescore(
    run_id: Annotated[str | None, typer.Argument(help="Run id (default: latest)")] = None,
    store: StoreOpt = None,
) -> None:
    """Recompute a stored run's scores with the installed version of its study (no model is called) and list every
    value that changed."""
    from .rescore import rescore_run

    st = open_store(store, create=False)
    run_id = resolve_run(st, run_id)
    out = rescore_run(st, run_id, progress=True, console=console)
    console.print(f"run {run_id}: {out.samples} samples rescored with scorer version {out.scorer_version}, "
                  f"{out.changed_samples} changed, {out.calls} model calls", highlight=False)  # fmt: skip
    for column, change in out.changes.items():
        console.print(f"  {escape(column)}: {change}", highlight=False)
    for column, count in out.kept.items():
        console.print(f"  {escape(column)}: kept as stored in {count} sample(s) (not computable from their "
                      "transcripts: they predate the events this version records)", highlight=False)  # fmt: skip
    for failure in out.failed[:5]:
        console.print(f"[yellow]not rescored[/yellow] {escape(failure)}")


def label_check(
    file: Annotated[Path, typer.Argument(help="Labelled items: JSONL or CSV with `label` and `text` or `sample_id`")],
    judge: JudgeOpt,
    rubric: RubricOpt,
    judge_base_url: JudgeUrlOpt = None,
    run_id: Annotated[str | None, typer.Option("--run", help="The run that `sample_id` rows belong to")] = None,
    votes: VotesOpt = None,
    threshold: ThresholdOpt = None,
    cutoff: CutoffOpt = None,
    store: StoreOpt = None,
    no_cache: NoCacheOpt = False,
    cache: CacheOpt = None,
) -> None:
    """Measure a rubric's judge against labelled items: accuracy, Cohen's κ and AUROC (a score rubric: AUROC of
    its number and its mean among yes- and no-items; accuracy and κ with --cutoff)."""
    from .labeling import check_rubric, load_labelled, load_rubric
    from .models import cache_scope, get_model
    from .runner import run_blocking

    items = load_labelled(file)
    r = load_rubric(rubric)
    setting = cache_setting(no_cache, cache)
    st = open_store(store, create=False) if run_id else None
    with cache_scope(setting):
        result = run_blocking(check_rubric(get_model(judge, judge_base_url, cache=setting), r, items, votes=votes,
                                           threshold=threshold, cutoff=cutoff, store=st, run_id=run_id))  # fmt: skip
    console.print(escape(str(result)), soft_wrap=True)
    for line in result.details():  # the items to read: where the judge and the labels part, and what it wrote
        console.print(escape(line), soft_wrap=True, highlight=False)


def rubrics() -> None:
    """The built-in rubrics (those the installed studies ship), with what they read and where their question comes
    from."""
    from .labeling import list_rubrics

    for r in list_rubrics():
        reads = ", ".join(r.reads) + (", after the warning" if r.after_warning else "")
        votes = f", {r.votes} votes ≥ {r.threshold:g}" if r.votes > 1 else ""
        form = {"yes_no": "yes/no", "criteria": f"criteria {'/'.join(r.names)} → {r.verdict}",
                "score": f"score {'/'.join(r.names)} → {r.combine}"}[r.answer]  # fmt: skip
        console.print(f"[bold]{escape(r.id)}[/bold] ({r.study or 'any study'}; {escape(form)}; reads {reads}{votes})",
                      soft_wrap=True)  # fmt: skip
        console.print(f"  {escape(r.question)}", soft_wrap=True, highlight=False)
        if r.texts is not None:
            found = r.texts.paths() is not None  # not r.prompt_id: that checks the pins, which loads every study
            where = "found in the data directory" if found else "absent: our own wording (`mislab data fetch`)"
            console.print(f"  [dim]judge texts {escape(r.texts.prompt_id)}: {where}[/dim]", soft_wrap=True)
        console.print(f"  [dim]source: {escape(r.source)}[/dim]", soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(user_errors(label))
    app.command()(user_errors(rescore))
    app.command("label-check")(user_errors(label_check))
    app.command()(user_errors(rubrics))
