"""`mislab --help` starts fast: the CLI module imports none of the heavy libraries (they load when a command
that needs them runs). Checked by what is imported, not by timing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC}  # this checkout's sources, whatever the working directory
HEAVY = ("pandas", "scipy", "numpy", "openai", "plotly", "httpx", "pydantic", "inspect_ai")


def test_the_cli_imports_no_heavy_library() -> None:
    code = f"import sys, mislab.cli; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=ENV)
    assert out.stdout.strip() == "[]"


def test_help_lists_every_command_and_study() -> None:
    cli = "from mislab.cli import app; app()"
    out = subprocess.run([sys.executable, "-c", cli, "--help"], capture_output=True, text=True, env=ENV)
    # The study commands are listed from their entry points without loading the studies.
    for name in ("run", "show", "report", "label", "rubrics", "data", "af", "shutdown"):
        assert f" {name} " in out.stdout, name
