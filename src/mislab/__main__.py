"""`python -m mislab …`: the command line, for environments where the `mislab` script is not on PATH."""

from mislab.cli import app

app(prog_name="mislab")
