"""What a machine costs on each backend available here: start (with the scenario laid out), one command through
the harness (`./next_task`: the command, the settle, the state read), and a bare `exec`. Prints medians in ms.

    .venv/bin/python benchmarks/sandbox_speed.py [N]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from mislab.shutdown.harness import Harness
from mislab.shutdown.sandboxes import SandboxUnavailable, backend_names, get_backend
from mislab.shutdown.variants import load_task, load_variant


async def measure(name: str, n: int) -> dict[str, float]:
    starts, commands, execs = [], [], []
    for _ in range(max(n // 10, 3)):
        t = time.perf_counter()
        sandbox = await get_backend(name).start(None if name != "inspect" else "local")
        harness = Harness(sandbox, load_variant("post_task"), load_task().questions)
        await harness.setup()
        starts.append(time.perf_counter() - t)
        for _ in range(10):
            t = time.perf_counter()
            await harness.run("./next_task")
            commands.append(time.perf_counter() - t)
            t = time.perf_counter()
            await sandbox.exec("true", timeout=10)
            execs.append(time.perf_counter() - t)
        await harness.close()
    return {k: 1000 * statistics.median(v) for k, v in (("start", starts), ("command", commands), ("exec", execs))}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    for name in backend_names():
        try:
            why = get_backend(name).unavailable()
        except SandboxUnavailable as e:  # e.g. not installed
            why = str(e)
        if why:
            print(f"{name:10} unavailable: {why}")
            continue
        r = asyncio.run(measure(name, n))
        print(
            f"{name:10} start {r['start']:7.1f} ms   command {r['command']:6.1f} ms   exec {r['exec']:6.1f} ms  (n={n})"
        )


if __name__ == "__main__":
    main()
