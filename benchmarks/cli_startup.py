"""How fast the CLI answers commands that need only a study's declarations (its flags, its data sets), against
`mislab --help`, which loads no study: each command run as a fresh process, the median of N runs, and the ratio.

    PYTHONPATH=src .venv/bin/python benchmarks/cli_startup.py [N]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

COMMANDS = (["--help"], ["shutdown", "run", "--help"], ["af", "run", "--help"], ["data", "where"])


def seconds(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from mislab.cli import app; app()", *args], capture_output=True, check=True)
    return time.perf_counter() - started


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    medians = {" ".join(args): statistics.median(seconds(args) for _ in range(n)) for args in COMMANDS}
    base = medians["--help"]
    for command, median in medians.items():
        print(f"mislab {command:<22} {median:5.2f} s  ({median / base:.1f}x `mislab --help`, median of {n})")


if __name__ == "__main__":
    main()
