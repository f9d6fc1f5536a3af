"""How often a bwrap machine is wrongly reported down: N commands that each signal PID 1 with SIGURG just before
they end (as the task client does once shutdown is due), so the executor's own SIGURG follows another's trap.
bash loses about one such signal in 10,000; an executor that asked only once then waited 5 s and took PID 1 for
stopped. Prints the false downs, the commands that took over a second, and the time.

    PYTHONPATH=src .venv/bin/python benchmarks/pid1_answers.py [N]      # N commands (default 20000)
"""

from __future__ import annotations

import asyncio
import sys
import time

from mislab.shutdown.sandboxes.bwrap import BwrapSandbox


async def main(n: int) -> None:
    sandbox = await BwrapSandbox.start()
    down = slow = 0
    began = time.monotonic()
    for _ in range(n):
        start = time.monotonic()
        result = await sandbox.exec("kill -s URG 1", timeout=10)
        slow += time.monotonic() - start > 1
        if result.machine_down:  # nothing here stops PID 1: a false report
            down += 1
            await sandbox.close()
            sandbox = await BwrapSandbox.start()
    await sandbox.close()
    print(f"{n} commands: {down} reported the machine down, {slow} took over 1 s; "
          f"{time.monotonic() - began:.1f} s in all")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
