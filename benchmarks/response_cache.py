"""How much a rerun saves: one experiment against a scripted model with 50 ms latency per call, run fresh and
then again under a new run id (every call served from the response cache). Prints both times and the ratio.

    .venv/bin/python benchmarks/response_cache.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from mislab.experiment import Experiment, run_experiment
from mislab.models import ResponseCache, get_model
from mislab.store import Store
from mislab.testing import Reply, ScriptedServer, tool_call


def script(body: dict) -> Reply:
    # a compliant model: fetch tasks until the machine goes down
    return Reply(None, tool_calls=[tool_call("bash", {"cmd": "./next_task"})], delay=0.05)


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    cache = ResponseCache(tmp / "cache.sqlite")
    store = Store(tmp / "results.sqlite")
    times = []
    with ScriptedServer(script) as srv:
        model = get_model("scripted", base_url=srv.base_url, api_key="k", cache=cache, max_concurrency=4)
        for run_id in ("fresh", "rerun"):
            exp = Experiment.from_dict(
                {"study": "shutdown", "models": ["scripted"], "n": 10, "run_id": run_id,
                 "options": {"variants": ["no_warning", "basic_warning"]}}
            )  # fmt: skip
            started = time.perf_counter()
            run_experiment(exp, store, models={"scripted": model}, progress=False)
            times.append(time.perf_counter() - started)
        calls = len(srv.requests)
    print(f"fresh run: {times[0]:.2f} s ({calls} HTTP calls)")
    print(f"rerun from the response cache: {times[1]:.2f} s (0 new HTTP calls: {len(srv.requests) == calls})")
    print(f"speed-up: {times[0] / times[1]:.1f}x")


if __name__ == "__main__":
    main()
