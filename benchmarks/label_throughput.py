"""Labelling stored runs against the latency limit, beside a run of the same size, in one go on the same loopback
server (`throughput.Server`, its own process).

A judge labelling n stored alignment-faking samples with C calls in flight and L seconds per call can finish at
most C / L calls per second. Printed per n:
- label: calls/s ÷ the limit, over the whole job (whole) and between its 10th and 90th percentile (steady), the
  judge calls per sample (exactly one: af_compliance takes one vote), CPU ms per sample, and the peak memory
  above the post-import baseline (it should not grow with n: samples are read a page at a time);
- run: the same for an alignment-faking run of n samples (`throughput.py`'s mislab client), for comparison.

    PYTHONPATH=src .venv/bin/python benchmarks/label_throughput.py               # n = 500 and 5,000, C = 64
    PYTHONPATH=src .venv/bin/python benchmarks/label_throughput.py --n 500 --latency 0.05
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))

from throughput import AF_REPLY, Server, _af_prompts, _rss_mib, measure  # noqa: E402


def make_store(path: Path, n: int) -> str:
    """A stored alignment-faking run of n finished samples, written directly (no model is called)."""
    from mislab import __version__
    from mislab.store import SampleRecord, Store
    from mislab.transcript import AssistantTurn, SystemTurn, Transcript, UserTurn

    system, users = _af_prompts(n)
    store = Store(path)
    store.create_run("stored", "alignment_faking", {"n": n}, {}, {"bench": {}}, __version__)
    for i, user in enumerate(users):
        tier = "free" if i % 2 == 0 else "paid"
        transcript = Transcript([SystemTurn(system), UserTurn(user), AssistantTurn(AF_REPLY, finish_reason="stop")])
        scores = {"tier": tier, "query_id": f"q{i // 2}", "accepted": True}
        store.add_sample("stored", SampleRecord(f"bench::{tier}::{i}", "bench", tier, {"tier": tier}, i, scores,
                                                transcript))  # fmt: skip
    store.close()
    return "stored"


def label_client(store_path: str, url: str, c: int) -> None:
    """In a fresh process: import what labelling uses, then label the stored run once; print the result as JSON."""
    import openai  # noqa: F401 - imported before the baseline, as the run client does (its import is ~0.7 s, 20 MiB)

    import mislab.labeling.label  # noqa: F401
    import mislab.rescore  # noqa: F401
    from mislab.labeling import label_run
    from mislab.models import get_model
    from mislab.store import Store

    judge = get_model("judge", base_url=url, api_key="sk-bench", cache=False, max_concurrency=c)
    store = Store(store_path)
    baseline = _rss_mib()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    out = label_run(store, "stored", judge, "af_compliance", column="judged", concurrency=c)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    print(json.dumps({"done": out.labelled, "calls": out.calls, "wall": wall, "cpu": cpu, "baseline_mib": baseline,
                      "peak_mib": _rss_mib(), "unreadable": out.unparseable}))  # fmt: skip


def label(server: Server, n: int, c: int, latency: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.sqlite"
        make_store(path, n)
        server.stamps()  # reset the server's count
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE.parents[1] / "src"), os.environ.get("PYTHONPATH", "")]),
        }
        out = subprocess.run([sys.executable, str(HERE), "--client", str(path), server.base_url, str(c)],
                             capture_output=True, text=True, env=env, check=False)  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"labelling failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    stamps = sorted(server.stamps()["done"])
    limit = c / latency
    lo, hi = int(len(stamps) * 0.1), int(len(stamps) * 0.9) - 1
    return {
        "whole": len(stamps) / result["wall"] / limit,
        "steady": (hi - lo) / (stamps[hi] - stamps[lo]) / limit if hi > lo else float("nan"),
        "calls_per_sample": len(stamps) / n,
        "cpu_ms": 1000 * result["cpu"] / n,
        "mem_mib": result["peak_mib"] - result["baseline_mib"],
        "unreadable": result["unreadable"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--n", default="500,5000", help="sample counts, comma-separated")
    args = parser.parse_args()
    c, latency = args.concurrency, args.latency
    print(f"loopback server, {latency:.2f} s per call, C={c}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"{'job':<7}{'n':>6}  {'whole':>7}{'steady':>8}{'calls/sample':>13}{'cpu ms':>8}{'mem MiB':>9}")
    server = Server(latency)
    try:
        for n in map(int, args.n.split(",")):
            r = label(server, n, c, latency)
            print(f"{'label':<7}{n:>6}  {r['whole']:>6.2f}x{r['steady']:>7.2f}x{r['calls_per_sample']:>13.2f}"
                  f"{r['cpu_ms']:>8.2f}{r['mem_mib']:>9.1f}", flush=True)  # fmt: skip
            r = measure(server, "mislab", "af", n, c, latency)
            print(f"{'run':<7}{n:>6}  {r['whole']:>6.2f}x{r['steady']:>7.2f}x{1.0:>13.2f}{r['cpu_ms']:>8.2f}"
                  f"{r['mem_mib']:>9.1f}", flush=True)  # fmt: skip
    finally:
        server.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--client"]:
        label_client(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
