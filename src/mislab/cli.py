"""The `mislab` command line. Study-specific commands (`mislab shutdown …`, `mislab af …`) come from the
studies themselves; the commands here work on any run."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text
from typer.core import TyperCommand, TyperGroup

from . import cli_common
from .cli_branch import register as register_branch
from .cli_common import (
    PLAIN_HELP,
    BudgetOpt,
    CacheOpt,
    DryRunOpt,
    ExtendOpt,
    ForceOpt,
    NoCacheOpt,
    ReportOpt,
    StoreOpt,
    cache_setting,
    console,
    error,
    execute,
    open_store,
    refuse_overwrite,
    resolve_run,
    user_errors,
    write_run_report,
)
from .cli_label import register as register_label_commands
from .cli_replicate import register as register_replicate
from .data_cli import app as data_app
from .errors import MislabError
from .study import study_aliases, study_cli, study_names

if TYPE_CHECKING:  # the click that typer's classes speak: its own copy since typer 0.26, which needs no click
    from typer._click import Command, Context

    from .store import Store


class _StudyCommand(TyperCommand):
    """A study's sub-commands, loaded only when used: listing them must not import every study (and with
    them pandas, scipy and the model layer), so `mislab --help` stays fast."""

    def __init__(self, name: str, study: str):
        super().__init__(name, help=f"The {study} study's commands: mislab {name} --help")
        self.study = study

    def make_context(
        self, info_name: str | None, args: list[str], parent: Context | None = None, **extra: Any
    ) -> Context:
        try:
            sub = study_cli(self.study)
        except Exception as exc:  # a broken plug-in must not take the whole CLI down
            error(f"study plug-in {self.study!r} failed to load: {exc}")
            raise typer.Exit(1) from exc
        if sub is None:
            error(f"the {self.study} study has no commands of its own; use mislab run FILE")
            raise typer.Exit(2)
        real = typer.main.get_group(sub)
        return real.make_context(info_name, args, parent=parent, **extra)


class _Commands(TyperGroup):
    """The core commands, then one per installed study (under its shortest alias, e.g. `af`)."""

    def _studies(self) -> dict[str, str]:
        names = {}
        for study in study_names():
            aliases = [a for a, s in study_aliases().items() if s == study]
            names[min([study, *aliases], key=len)] = study
        return names

    def list_commands(self, ctx: Context) -> list[str]:
        return [*super().list_commands(ctx), *self._studies()]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        studies = self._studies()
        study = studies.get(cmd_name) or (cmd_name if cmd_name in studies.values() else None)
        return _StudyCommand(cmd_name, study) if study else None


app = typer.Typer(
    **PLAIN_HELP,
    cls=_Commands,
    help="mislab: is the model scheming or just confused? Run misalignment experiments, with intervals.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show an error's traceback, not just its message")] = False,
) -> None:
    cli_common.debug = debug or bool(os.environ.get("MISLAB_DEBUG"))


@app.command()
@user_errors
def run(
    file: Annotated[Path, typer.Argument(help="Experiment TOML file")],
    dry_run: DryRunOpt = False,
    extend: ExtendOpt = False,
    budget: BudgetOpt = None,
    store: StoreOpt = None,
    no_cache: NoCacheOpt = False,
    cache: CacheOpt = None,
) -> None:
    """Run (or resume) an experiment file. Rerunning it resumes its run; if the file changed, the run is
    refused unless --extend (more n, models or cells) or a new run_id says what you mean."""
    from .experiment import Experiment

    exp = Experiment.from_file(file)
    if dry_run:
        cli_common.dry_run(exp, store)
        return
    run_id = execute(exp, store, cache_setting(no_cache, cache), budget, extend)
    console.print(Text(f"next: mislab show {run_id}   ·   mislab report {run_id}"))


@app.command()
@user_errors
def runs(store: StoreOpt = None) -> None:
    """List the runs in the store."""
    df = open_store(store, create=False).runs()
    console.print(Text(df.to_string(index=False)) if len(df) else "no runs yet")


@app.command()
@user_errors
def show(
    run_id: Annotated[str | None, typer.Argument(help="Run id (default: latest)")] = None,
    store: StoreOpt = None,
    full: Annotated[bool, typer.Option("--full", help="Every rate table and comparison between cells")] = False,
    include_unfaithful: Annotated[
        bool, typer.Option("--include-unfaithful", help="A branch run: count continuations whose replay diverged")
    ] = False,
) -> None:
    """Print a run on one screen: every metric × cell as k/n with its interval, and what it shows."""
    from .report import show_run

    st = open_store(store, create=False)
    show_run(st, resolve_run(st, run_id), console, full=full, include_unfaithful=include_unfaithful)


@app.command()
@user_errors
def report(
    run_id: Annotated[str | None, typer.Argument(help="Run id (default: latest)")] = None,
    output: ReportOpt = None,
    force: ForceOpt = False,
    store: StoreOpt = None,
) -> None:
    """Write one self-contained HTML report (charts, effects, published numbers, transcript browser)."""
    st = open_store(store, create=False)
    path, existed = write_run_report(st, resolve_run(st, run_id), output, force)
    console.print(Text(f"report written to {path}" + (" (it replaces the earlier one)" if existed else "")))


@app.command()
@user_errors
def export(
    run_id: Annotated[str | None, typer.Argument(help="Run id (default: latest)")] = None,
    format: Annotated[str, typer.Option("--format", help="inspect | csv | parquet | jsonl")] = "csv",
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="File to write; for inspect an .eval file (one model) or a directory"),
    ] = None,
    force: ForceOpt = False,
    store: StoreOpt = None,
) -> None:
    """Export a run: an Inspect log (`inspect view` shows it), or the samples as CSV/Parquet/JSONL."""
    if format not in ("inspect", "csv", "parquet", "jsonl"):
        error(f"unknown format {format!r}; use inspect, csv, parquet or jsonl")
        raise typer.Exit(2)
    st = open_store(store, create=False)
    run_id = resolve_run(st, run_id)
    if format == "inspect":
        written = _export_inspect(st, run_id, output or Path(f"{run_id}-inspect"), force)
        _export_replication(st, run_id, written[0].parent, format)
        return
    out = output or Path(f"{run_id}.{format}")
    refuse_overwrite(out, force)
    df = st.samples(run_id, include_transcripts=format == "jsonl")
    if format == "csv":
        df.to_csv(out, index=False)
    elif format == "parquet":
        df.to_parquet(out, index=False)
    else:
        with out.open("w") as f:
            for row in df.to_dict(orient="records"):
                f.write(json.dumps(row, default=str) + "\n")
    console.print(Text(f"{len(df)} samples written to {out}"))
    _export_replication(st, run_id, out, format)


def _export_replication(store: Any, run_id: str, beside: Path, format: str) -> None:
    """A run made by `mislab replicate` also exports its table of ours beside the published numbers."""
    from .report.replication import export_replication

    path = export_replication(store, run_id, beside, format)
    if path is not None:
        console.print(Text(f"replication table written to {path}"))


def _export_inspect(st: Store, run_id: str, output: Path, force: bool) -> list[Path]:
    """Inspect logs hold one model each: `-o x.eval` writes that one file (a run of several models is refused:
    give a directory), any other path is a directory of one `.eval` per model."""
    from .report import export_inspect

    try:
        import inspect_ai  # noqa: F401
    except ImportError:
        raise MislabError("exporting Inspect logs needs inspect_ai: pip install 'mislab[inspect]'") from None
    models = {r.model for r in st.iter_records(run_id, transcripts=False, metadata=False)}
    if not models:
        raise MislabError(f"run {run_id} has no samples to export yet")
    if output.suffix != ".eval":
        written = export_inspect(st, run_id, output)
    else:
        if len(models) > 1:
            raise MislabError(
                f"run {run_id} has {len(models)} models and an .eval file holds one: give -o DIRECTORY "
                "for one .eval per model"
            )
        refuse_overwrite(output, force)
        output.parent.mkdir(parents=True, exist_ok=True)
        # Inspect names its files itself: write into a scratch directory beside the target, then move.
        with tempfile.TemporaryDirectory(dir=output.parent, prefix=".mislab-export-") as scratch:
            (only,) = export_inspect(st, run_id, scratch)
            os.replace(only, output)
        written = [output]
    for path in written:
        console.print(Text(f"Inspect log written: {path}"))
    console.print(Text(f"browse with: inspect view --log-dir {written[0].parent}"))
    return written


@app.command()
def demo(
    n: Annotated[int, typer.Option("-n", help="Episodes per variant")] = 2,
    store: StoreOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Run the shutdown study on the embedded local model: no network, no key, a few minutes on 2 idle cores."""
    from .demo import run_demo

    run_demo(open_store(store), n, console, cache=cache_setting(no_cache, None))


app.add_typer(data_app, name="data")


register_label_commands(app)
register_replicate(app)
register_branch(app)
