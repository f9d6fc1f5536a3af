"""`mislab data`: the third-party data the studies read (the alignment-faking paper prompts and judges from
ARENA, AdvBench from llm-attacks), fetched from their public sources into a data directory and checked
against pinned sha256 digests. Nothing third-party is copied into this repository.

Offline machines: fetch on a connected one with `--dir DIR`, copy DIR over, and set MISLAB_SHARED_DATA=DIR
(or verify it there with `mislab data verify --dir DIR`)."""

from __future__ import annotations

import urllib.error
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

# The data code lives with the alignment-faking study and is imported where used: importing it at start-up
# would load the whole study (pandas, scipy, the model layer) for `mislab --help`.

app = typer.Typer(help="Fetch and verify the third-party data (paper prompts, AdvBench), pinned by sha256.")
console = Console(highlight=False, soft_wrap=True)  # paths stay whole, to copy and paste

DirOpt = Annotated[Path | None, typer.Option("--dir", help="Data directory (default: the user data directory)")]


def fetch_all(directory: Path, arena: str | Path | None = None, advbench: str | Path | None = None) -> Path:
    """Every pinned file into `directory` (laid out like shared/data), each verified; those already verified
    are kept. `arena` and `advbench` override the public sources (a mirror, a file:// URL, a local path)."""
    from .alignment_faking.prompts import ARENA_RAW_BASE, download_paper_prompts
    from .alignment_faking.queries import download_advbench
    from .alignment_faking.sources import ADVBENCH_URL

    download_paper_prompts(directory / "alignment_faking", arena_base=arena or ARENA_RAW_BASE)
    download_advbench(directory / "advbench", source=advbench or ADVBENCH_URL)
    return directory


def _report(directory: Path) -> bool:
    from .alignment_faking.sources import verify_data_dir

    states = verify_data_dir(directory)
    for relative, state in states.items():
        line = f"  {'ok ' if state == 'ok' else 'BAD'} {relative}" + ("" if state == "ok" else f": {state}")
        console.print(escape(line))
    return all(state == "ok" for state in states.values())


@app.command()
def fetch(
    directory: DirOpt = None,
    arena: Annotated[str | None, typer.Option(help="ARENA exercise directory (URL or path) instead of GitHub")] = None,
    advbench: Annotated[str | None, typer.Option(help="AdvBench CSV (URL or path) instead of GitHub")] = None,
) -> None:
    """Download every third-party file and check its sha256 (files already verified are kept)."""
    from .alignment_faking.sources import PINNED_FILES, SHARED_DATA_ENV, ChecksumError, user_data_dir

    target = directory or user_data_dir()
    try:
        fetch_all(target, arena, advbench)
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
    console.print(escape(f"{len(PINNED_FILES)} files fetched and verified in {target}{hint}"))


@app.command()
def verify(directory: DirOpt = None) -> None:
    """Check every third-party file in a data directory against its pinned sha256 (exit 1 if any is wrong)."""
    from .alignment_faking.sources import PINNED_FILES, data_dirs, user_data_dir

    target = directory or next((d for d in data_dirs() if d.is_dir()), user_data_dir())
    console.print(escape(f"{target}:"))
    if not _report(target):
        console.print("[red]not all files are present and pinned:[/red] run `mislab data fetch` (or with --dir)")
        raise typer.Exit(1)
    console.print(f"all {len(PINNED_FILES)} files match their pinned sha256")


@app.command()
def where() -> None:
    """The data directories mislab reads, in order; the first that has a file wins."""
    from .alignment_faking.sources import data_dirs

    for d in data_dirs():
        console.print(escape(f"  {'found  ' if d.is_dir() else 'absent '} {d}"))
