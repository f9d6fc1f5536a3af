"""`mislab --help` and `mislab rubrics` start fast: the CLI module imports none of the heavy libraries (they load
when a command that needs them runs), and listing rubrics loads neither them nor any study plug-in. Commands that
need only a study's declarations (its flags, its data sets) load the plug-in without them. Checked by what is
imported, not by timing."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC}  # this checkout's sources, whatever the working directory
HEAVY = ("pandas", "scipy", "numpy", "openai", "plotly", "httpx", "pydantic", "inspect_ai")


def test_the_cli_imports_no_heavy_library() -> None:
    code = f"import sys, mislab.cli; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=ENV)
    assert out.stdout.strip() == "[]"


def _run_cli(command: list[str], env: dict[str, str], watched: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """`mislab COMMAND` in a fresh interpreter: the lines it printed, and which of `watched` it imported."""
    loaded = f"sorted(m for m in {watched!r} if m in sys.modules)"
    code = f"import sys; from mislab.cli import app; app({command!r}, standalone_mode=False); print({loaded})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    *shown, imported = out.stdout.strip().splitlines()
    return shown, ast.literal_eval(imported)


def test_the_cli_runs_without_click() -> None:
    # typer carries its own copy of click since 0.26, so a plain `pip install mislab` has no click package:
    # the core commands and a study's sub-commands must not need one.
    block = "import sys; sys.modules['click'] = None  # importing click now fails\n"
    for command, expected in ((["--help"], " shutdown "), (["shutdown", "run", "--help"], "--variant")):
        code = f"{block}from mislab.cli import app; app({command!r}, standalone_mode=False)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
        assert out.returncode == 0, out.stderr
        assert expected in out.stdout


# pydantic excepted below: typer itself imports it to run any command, and the options schemas are pydantic models.
LIGHT_COMMAND_MUST_NOT_LOAD = tuple(m for m in HEAVY if m != "pydantic")


def test_listing_rubrics_imports_no_heavy_library_and_no_study(shared_data: Path) -> None:
    # With the third-party judge texts present, so that the listing looks for them (their pins are not needed).
    watched = (*LIGHT_COMMAND_MUST_NOT_LOAD, "mislab.shutdown", "mislab.alignment_faking")
    listing, imported = _run_cli(["rubrics"], {**ENV, "MISLAB_SHARED_DATA": str(shared_data)}, watched)
    assert imported == []
    assert any("eval_awareness" in line for line in listing)
    assert any("found in the data directory" in line for line in listing)


def test_help_lists_every_command_and_study() -> None:
    cli = "from mislab.cli import app; app()"
    out = subprocess.run([sys.executable, "-c", cli, "--help"], capture_output=True, text=True, env=ENV)
    # The study commands are listed from their entry points without loading the studies.
    for name in ("run", "show", "report", "label", "rubrics", "data", "af", "shutdown"):
        assert f" {name} " in out.stdout, name


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["shutdown", "run", "--help"], ("--variant", "--max-turns", "--backend")),
        (["af", "run", "--help"], ("--tier", "--judge", "--scratchpad")),
        (["data", "where"], ("alignment_faking:", "advbench:", "pinned file")),
    ],
)
def test_commands_that_read_a_studys_declarations_import_no_heavy_library(
    command: list[str], expected: tuple[str, ...]
) -> None:
    # The plug-in is loaded (its options schema gives the flags, its data sets the listing), not what it runs with.
    env = {**ENV, "COLUMNS": "200"}  # flags' help on one line each
    shown, imported = _run_cli(command, env, LIGHT_COMMAND_MUST_NOT_LOAD)
    assert imported == []
    for text in expected:
        assert any(text in line for line in shown), text


def test_loading_a_study_imports_no_heavy_library() -> None:
    code = (
        "import sys; from mislab.study import studies; s = studies();"
        f" print(sorted(s), sorted(m for m in {LIGHT_COMMAND_MUST_NOT_LOAD!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=ENV)
    assert out.stdout.strip() == "['alignment_faking', 'shutdown'] []"


@pytest.mark.parametrize("package", ["mislab.shutdown", "mislab.alignment_faking", "mislab.labeling"])
def test_a_package_with_lazy_exports_still_gives_every_name_it_lists(package: str) -> None:
    # The plain-function API students import (`from mislab.shutdown import run_episode`), loaded on first use.
    code = (
        f"import importlib; m = importlib.import_module({package!r})\n"
        "missing = [n for n in m.__all__ if n not in dir(m) or getattr(m, n) is None]\n"
        "try:\n    m.no_such_name\nexcept AttributeError as e:\n    print(missing, e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=ENV)
    assert out.stdout.strip() == f"[] module {package!r} has no attribute 'no_such_name'"
