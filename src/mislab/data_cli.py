"""`mislab data`: the third-party data the studies read (each study declares its pinned data sets: for the
alignment-faking study the paper prompts and judges from ARENA and AdvBench from llm-attacks), fetched from
their public sources into a data directory and checked against pinned sha256 digests. Nothing third-party is
copied into this repository.

Offline machines: fetch on a connected one with `--dir DIR`, copy DIR over, and set MISLAB_SHARED_DATA=DIR
(or verify it there with `mislab data verify --dir DIR`)."""

from __future__ import annotations

import urllib.error
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from .cli_common import PLAIN_HELP
from .data.files import (
    SHARED_DATA_ENV,
    ChecksumError,
    data_dirs,
    data_sets,
    fetch_all,
    pinned_files,
    user_data_dir,
    verify_data_dir,
)

app = typer.Typer(
    **PLAIN_HELP, help="Fetch and verify the third-party data the studies read (paper prompts, AdvBench), pinned."
)
console = Console(highlight=False, soft_wrap=True)  # paths stay whole, to copy and paste

DirOpt = Annotated[Path | None, typer.Option("--dir", help="Data directory (default: the user data directory)")]


def _report(directory: Path | None) -> bool:
    """Each pinned file's state in `directory` (or, without one, where the studies read it, which is shown)."""
    states = verify_data_dir(directory)
    for relative, (path, state) in states.items():
        line = f"  {'ok ' if state == 'ok' else 'BAD'} {relative}" + ("" if state == "ok" else f": {state}")
        if directory is None and path is not None:
            line += f"  ({path.parents[len(Path(relative).parts) - 1]})"
        console.print(escape(line))
    return all(state == "ok" for _, state in states.values())


def _sources(given: list[str]) -> dict[str, str]:
    sources: dict[str, str] = {}
    for item in given:
        name, sep, where = item.partition("=")
        if not sep or not name or not where:
            console.print(f"[red]error:[/red] --source takes SET=URL_OR_PATH, got {escape(item)!r}")
            raise typer.Exit(2)
        sources[name] = where
    return sources


@app.command()
def fetch(
    directory: DirOpt = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            metavar="SET=URL_OR_PATH",
            help="Fetch data set SET from a mirror, file:// URL or local path instead of its public source, e.g. "
            "advbench=./harmful_behaviors.csv (`mislab data where` lists the sets); repeatable",
        ),
    ] = None,
) -> None:
    """Download every third-party file and check its sha256 (files already verified are kept)."""
    target = directory or user_data_dir()
    try:
        fetch_all(target, _sources(source or []))
    except KeyError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc.args[0]))}")
        raise typer.Exit(2) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        console.print(
            f"[red]error:[/red] could not fetch the data ({escape(str(reason))}). Offline? Run `mislab data fetch "
            f"--dir DIR` on a connected machine, copy DIR here and set {SHARED_DATA_ENV}=DIR"
        )
        raise typer.Exit(1) from exc
    except ChecksumError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    _report(target)
    hint = "" if target == user_data_dir() else f" — to use them from here on: export {SHARED_DATA_ENV}={target}"
    console.print(escape(f"{len(pinned_files())} files fetched and verified in {target}{hint}"))


@app.command()
def verify(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Data directory (default: each file where the studies read it)")
    ] = None,
) -> None:
    """Check every third-party file against its pinned sha256 (exit 1 if any is wrong): the files the studies
    read (each from the first data directory that has it, shown), or those in --dir."""
    console.print(escape(f"{directory}:" if directory else "the files the studies read (from the first data "
                         "directory that has each; `mislab data where` lists them):"))  # fmt: skip
    if not _report(directory):
        console.print("[red]not all files are present and pinned:[/red] run `mislab data fetch` (or with --dir)")
        raise typer.Exit(1)
    console.print(f"all {len(pinned_files())} files match their pinned sha256")


@app.command()
def where() -> None:
    """The data directories mislab reads, in order (the first that has a file wins), and the data sets the
    installed studies declare."""
    for d in data_dirs():
        console.print(escape(f"  {'found  ' if d.is_dir() else 'absent '} {d}"))
    console.print("data sets (`--source SET=…` replaces a source):")
    for name, ds in data_sets().items():
        count = f"{len(ds.files)} pinned file" + ("s" if len(ds.files) != 1 else "")
        console.print(escape(f"  {name}: {ds.title}, {count}, from {ds.source}"))
