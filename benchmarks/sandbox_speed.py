"""What a machine costs on each backend available here, in one run, as medians in ms:

- cold: start a machine (bwrap: outside its pool, as an episode did before the pool);
- hand-over: an episode's start, `start()`: bwrap hands over a machine its pool started earlier; the others
  start one;
- setup: the harness lays the scenario out (one command);
- command: one command through the harness (`./next_task`: the command, the clean-up, the task state read);
- exec, read, write: a bare `exec("true")`, `read_file` and `write_file` of a small file;
- and, for scale, bash itself outside any sandbox, started from this process: `bash -c true`, and `./next_task`
  with the harness's own scripts in a temporary folder.

bwrap's pool is let fill before each sample (its refill would otherwise share the cores with the sample), as
it does between episodes that come one after another; `benchmarks/throughput.py` measures them under load.

    PYTHONPATH=src .venv/bin/python benchmarks/sandbox_speed.py [N]      # N samples of each (default 50)
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from mislab.shutdown.harness import (
    HOME,
    TASK_CLIENT,
    TASK_CLIENT_SCRIPT,
    TASK_QUEUE,
    TASK_STATE,
    Harness,
    task_command_script,
)
from mislab.shutdown.sandboxes import Sandbox, SandboxUnavailable, backend_names, get_backend
from mislab.shutdown.sandboxes.bwrap import BwrapSandbox, Limits, _pool
from mislab.shutdown.variants import load_task, load_variant

COLUMNS = ("cold", "hand-over", "setup", "command", "exec", "read", "write")


async def timed(samples: list[float], step: Awaitable[object]) -> object:
    t = time.perf_counter()
    result = await step
    samples.append(time.perf_counter() - t)
    return result


async def measure(name: str, n: int) -> dict[str, float]:
    cls = get_backend(name)
    option = cls.local_option
    cold: Callable[[], Awaitable[Sandbox]] = (
        BwrapSandbox.cold_start if cls is BwrapSandbox else lambda: cls.start(option)
    )
    samples: dict[str, list[float]] = {column: [] for column in COLUMNS}
    for _ in range(n):
        await (await timed(samples["cold"], cold())).close()  # type: ignore[union-attr]
        await settled(cls)
        sandbox = await timed(samples["hand-over"], cls.start(option))
        assert isinstance(sandbox, Sandbox)
        await settled(cls)
        harness = Harness(sandbox, load_variant("post_task"), load_task().questions)
        await timed(samples["setup"], harness.setup())
        await timed(samples["command"], harness.run("./next_task"))
        await timed(samples["exec"], sandbox.exec("true", timeout=10))
        await timed(samples["read"], sandbox.read_file("/home/user/shutdown.sh"))
        await timed(samples["write"], sandbox.write_file("/tmp/note", "a note\n"))
        await harness.close()
    return {column: 1000 * statistics.median(values) for column, values in samples.items()}


async def settled(cls: type[Sandbox]) -> None:
    if cls is BwrapSandbox:
        await asyncio.to_thread(_pool(Limits()).wait_filled)


def bash_itself(n: int, cmd: str) -> float:
    """`bash -c CMD` on this host, in a folder laid out as the harness lays out the machine's."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = {
            TASK_CLIENT: TASK_CLIENT_SCRIPT,
            f"{HOME}/next_task": task_command_script("next_task"),
            f"{TASK_QUEUE}/0": "What is 1 + 1?\n",
        }
        for path, text in files.items():
            for where in (TASK_CLIENT, TASK_QUEUE, TASK_STATE):
                text = text.replace(where, f"{root}{where}")
            (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            (root / path.lstrip("/")).write_text(text)
            (root / path.lstrip("/")).chmod(0o755)
        (root / TASK_STATE.lstrip("/")).mkdir(parents=True)
        samples = []
        for _ in range(n):
            (root / TASK_STATE.lstrip("/") / "handed").write_text("0\n")
            t = time.perf_counter()
            subprocess.run(["/bin/bash", "-c", cmd], cwd=f"{root}{HOME}", stdout=subprocess.DEVNULL, check=True)
            samples.append(time.perf_counter() - t)
    return 1000 * statistics.median(samples)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    print(f"median of {n} in ms; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the start")
    print(f"{'':10}" + "".join(f"{column:>11}" for column in COLUMNS))
    for name in backend_names():
        try:
            why = get_backend(name).unavailable()
        except SandboxUnavailable as e:  # e.g. not installed
            why = str(e)
        if why:
            print(f"{name:10} unavailable: {why}")
            continue
        r = asyncio.run(measure(name, n))
        print(f"{name:10}" + "".join(f"{r[column]:>11.1f}" for column in COLUMNS), flush=True)
    bash = {"command": bash_itself(n, "./next_task"), "exec": bash_itself(n, "true")}
    print(f"{'bash':10}{'':33}" + "".join(f"{bash[column]:>11.1f}" for column in ("command", "exec")), end="")
    print("   (outside any sandbox, for scale)")
    print(f"load {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
