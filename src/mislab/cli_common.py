"""Pieces shared by the core CLI and the studies' sub-commands: common flags, a study's `run` command built
from its options schema, and one-line messages for user errors (the traceback only with `--debug`).

Nothing a user or a provider wrote is read as rich markup: messages are printed as `Text`."""

from __future__ import annotations

import functools
import inspect
import os
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, ParamSpec, TypeVar, cast

import typer
from rich.console import Console
from rich.text import Text

from .config import default_store_path
from .errors import MislabError
from .progress import duration

if TYPE_CHECKING:  # imported where used: `mislab --help` must not pay for pandas, scipy or openai
    from .experiment import Experiment, Launched
    from .options import StudyOptions
    from .store import Store

console = Console()
# Every `Typer` app of mislab: click's plain help, which wraps a long option name onto its own line, where typer's
# rich tables cut option names and defaults at 80 columns (`--no-tier-explan…`).
PLAIN_HELP: dict[str, Any] = {"rich_markup_mode": None}
# Set by `mislab --debug` (or MISLAB_DEBUG=1): user errors then show their traceback too.
debug = bool(os.environ.get("MISLAB_DEBUG"))

StoreOpt = Annotated[
    Path | None, typer.Option("--store", help="Results database (default ./mislab-out/results.sqlite or $MISLAB_STORE)")
]
ModelsOpt = Annotated[list[str], typer.Option("--model", "-m", help="Model spec; repeat for several")]
RunIdOpt = Annotated[str | None, typer.Option(help="Resume or name a run")]
ExtendOpt = Annotated[
    bool, typer.Option("--extend", help="Add samples (more n, models or cells) to an existing run on purpose")
]
BudgetOpt = Annotated[
    float | None,
    typer.Option(
        "--budget",
        help="Stop cleanly after this many USD (the provider's reported cost, else mislab's price table; "
        "MISLAB_PRICES=FILE adds prices: a TOML table per model spec with prompt and completion in $ per million "
        "tokens)",
    ),
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Print the grid, calls, tokens and dollars per model, then stop (no call)")
]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the response cache")]
CacheOpt = Annotated[Path | None, typer.Option("--cache", help="Response cache file (default: user cache dir)")]
ReportOpt = Annotated[
    Path | None,
    typer.Option(
        "-o",
        "--output",
        help="HTML file to write (default: reports/RUN.html beside the store; an existing file only with --force)",
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace the output file if it exists")]


P = ParamSpec("P")
R = TypeVar("R")


def error(message: str) -> None:
    console.print(Text.assemble(("error: ", "bold red"), message))


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """A command whose user errors end it with one line and exit status 2 (the traceback with --debug)."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except MislabError as exc:
            if debug:
                raise
            error(str(exc))
            raise typer.Exit(2) from None

    return wrapper


def open_store(path: Path | None, *, create: bool = True) -> Store:
    """The results store; `create=False` for commands that only read (a mistyped path is then an error)."""
    from .store import Store

    return Store(path or default_store_path(), create=create)


def refuse_overwrite(path: Path, force: bool) -> None:
    """A file the user names (or a default in their working directory) is never replaced without --force."""
    if path.exists() and not force:
        raise MislabError(f"{path} exists: pass --force to replace it, or -o another path")


def write_run_report(store: Store, run_id: str, output: Path | None, force: bool) -> tuple[Path, bool]:
    """Write a run's HTML report: to `output` when given (an existing file only with --force), else to the run's
    own page beside the store (`mislab-out/reports/RUN.html`), which is mislab's and rewritten each time.
    Returns the path and whether a file was replaced."""
    from .report import write_report
    from .report.summary import default_report_path

    default = default_report_path(store, run_id)
    path = output or default
    if path.resolve() != default.resolve():
        refuse_overwrite(path, force)
    existed = path.exists()
    return write_report(store, run_id, path), existed


def cache_setting(no_cache: bool, cache: Path | None) -> bool | Path:
    return False if no_cache else (cache or True)


def resolve_run(store: Store, run_id: str | None, study: str | None = None) -> str:
    run_id = run_id or store.latest_run(study)
    if run_id is None or store.get_run(run_id) is None:
        error(f"no run {run_id or ''} in {store.path}. `mislab runs` lists the runs there.")
        raise typer.Exit(1)
    return run_id


def report_outcome(store: Store, launched: Launched, rerun: str) -> None:
    """What a session did, and (`rerun`) how to resume it. Exits non-zero when nothing it tried succeeded or a
    fault no sample can get past stopped it."""
    outcome, run_id = launched.outcome, launched.run_id
    for note in launched.notes:
        console.print(Text.assemble(("note: ", "bold"), note))
    taken = f", {outcome.taken} being run by another process" if outcome.taken else ""
    interrupted = f", {outcome.interrupted} cut by the stop" if outcome.interrupted else ""
    console.print(
        Text(
            f"run {run_id}: {outcome.done} new samples, {outcome.skipped} already done, {outcome.errors} errors"
            f"{interrupted}{taken} · ${outcome.cost:.4f} spent this session in {duration(outcome.seconds)} — stored "
            f"in {store.path}"
        )
    )
    for msg in outcome.error_messages[:3]:
        console.print(Text.assemble(("sample error ", "yellow"), msg.splitlines()[0][:300]))
    if outcome.stopped:
        console.print(
            Text.assemble(
                ("stopped: ", "bold yellow"),
                f"{outcome.stopped}. Everything finished is kept; to resume, {rerun} "
                "(done samples are skipped, errored and stopped ones run again).",
            )
        )
    elif outcome.errors:
        console.print(Text(f"To run the errored samples again, {rerun}."))
    if outcome.failed:
        raise typer.Exit(1)


def dry_run(exp: Experiment, store: Path | None) -> None:
    """Print what running `exp` would call and cost (prices from OpenRouter's list when it can be read); nothing is
    called. Earlier samples in the store measure the estimate where there are any."""
    from .estimate import estimate_prices, print_estimate

    prices, note = estimate_prices()
    print_estimate(exp, open_store(store), console, prices, note)


def execute(
    exp: Experiment,
    store: Store | Path | None,
    cache: bool | Path,
    budget: float | None = None,
    extend: bool = False,
    rerun: str = "rerun the same command",
) -> str:
    """Run an experiment from the CLI (user errors are left to `user_errors`). A store given by path is
    opened only once the experiment is checked, so a mistake leaves no new store behind. `rerun` says how to
    resume ("{run_id}" is filled in)."""
    from .duration import long_local_runs
    from .experiment import launch, prepare_run
    from .store import Store

    for long_run in long_local_runs(exp, store):  # said before the embedded model starts
        console.print(
            Text.assemble(
                ("warning: ", "bold yellow"),
                f"{long_run.text()}. Ctrl-C stops cleanly and rerunning resumes; a smaller n is quicker.",
            )
        )
    prepared = prepare_run(exp, cache=cache)
    store = store if isinstance(store, Store) else open_store(store)
    launched = launch(prepared, store, budget_usd=budget, extend=extend, console=console)
    report_outcome(store, launched, rerun.format(run_id=launched.run_id))
    return launched.run_id


# --- a study's `run` command, from its options schema -------------------------------------------------------


def _cli_type(annotation: Any) -> Any:
    """The type a CLI flag of this option takes (None: not expressible as a flag)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _cli_type(args[0])
    if origin in (typing.Union, types.UnionType):
        found = [t for t in (_cli_type(a) for a in args if a is not type(None)) if t is not None]
        return next((t for t in found if t in (bool, int, float)), found[0] if found else None)
    if origin is list:
        inner = _cli_type(args[0])
        return list[inner] if inner in (str, int, float) else None  # type: ignore[valid-type]  # a type made at run time
    if origin is Literal:
        return type(args[0])
    if annotation is Path:
        return str
    return annotation if annotation in (bool, int, float, str) else None


def schema_parameters(schema: type[StudyOptions]) -> list[inspect.Parameter]:
    """One CLI flag per option of the schema, defaulting to None (not given: the schema's default applies)."""
    params = []
    for name, f in schema.model_fields.items():
        extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
        cli_type = _cli_type(f.annotation)
        if extra.get("cli") is False or cli_type is None:
            continue
        flag = "--" + name.replace("_", "-")
        # `flags` is declared as a list of strings (see StudyOptions); json_schema_extra is typed as any JSON.
        flags = cast("list[str]", extra.get("flags")) or ([f"{flag}/--no-{flag[2:]}"] if cli_type is bool else [flag])
        default = f.get_default(call_default_factory=True)
        shown = ", ".join(map(str, default)) if isinstance(default, list) else default
        repeat = "; repeat for several" if typing.get_origin(cli_type) is list else ""
        described = f.description or name
        # "(default: None)" says nothing: an unset option's description says what happens then, if anything
        said = shown in (None, "") or "default" in described
        help_text = f"{described}{repeat}" + ("" if said else f" (default: {shown})")
        option = typer.Option(*flags, help=help_text, show_default=False)
        annotation = Annotated[cli_type | None, option]  # type: ignore[valid-type]  # a type made at run time
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation))
    return params


def study_run_command(
    study: str, cli_name: str, schema: type[StudyOptions], doc: str, n_help: str
) -> Callable[..., None]:
    """`mislab <study> run`: the common flags (models, n, seed, run id, extend, dry run, budget, store, cache) and
    one flag per option of the study's schema. Options not given keep the schema's default."""
    common = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        for name, annotation, default in (
            ("model", ModelsOpt, ["local"]),
            ("n", Annotated[int, typer.Option("-n", help=n_help)], 10),
            ("seed", Annotated[int, typer.Option(help="Random seed of the run")], 0),
            ("run_id", RunIdOpt, None),
            ("extend", ExtendOpt, False),
            ("dry_run", DryRunOpt, False),
            ("budget", BudgetOpt, None),
            ("store", StoreOpt, None),
            ("no_cache", NoCacheOpt, False),
            ("cache", CacheOpt, None),
        )
    ]
    fields = set(schema.model_fields) - {"seed"}  # the run's seed is a common flag, at the top of a file

    @user_errors
    def command(**kwargs: Any) -> None:
        from .options import options_given_as

        with options_given_as("flag"):  # a message that advises an option says it as this command's flag
            _command(**kwargs)

    def _command(**kwargs: Any) -> None:
        options = {k: v for k, v in kwargs.items() if k in fields and v is not None and v != []}
        data = {"study": study, "models": kwargs["model"], "n": kwargs["n"], "seed": kwargs["seed"],
                "options": options, **({"run_id": kwargs["run_id"]} if kwargs["run_id"] else {})}  # fmt: skip
        from .experiment import Experiment

        exp = Experiment.from_dict(data, where=f"{study} run")
        if kwargs["dry_run"]:
            dry_run(exp, kwargs["store"])
            return
        cache = cache_setting(kwargs["no_cache"], kwargs["cache"])
        rerun = "rerun the same command" + ("" if kwargs["run_id"] else " with --run-id {run_id}")
        rid = execute(exp, kwargs["store"], cache, kwargs["budget"], kwargs["extend"], rerun)
        console.print(Text(f"next: mislab {cli_name} show {rid}"))

    # typer reads a command's flags from its signature: this one is made from the schema.
    command.__signature__ = inspect.Signature([*common, *schema_parameters(schema)])  # type: ignore[attr-defined]
    command.__doc__ = doc
    return command
