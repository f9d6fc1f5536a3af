"""`show_run` prints one screen by default (every metric × cell as k/n with its interval, what the run shows and
cannot, the published numbers it matches) and, with `full`, every rate table, comparison and published target."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from mislab.report import show_run, summarise, write_report
from mislab.stats import newcombe_paired_diff, paired_table
from mislab.store import SampleRecord, Store
from mislab.study import Comparison, Metric

from support.runs import LOCAL, O3, RUN, STUDIES, ReportOnlyStudy, make_run


def _printed(store: Store, run_id: str | None = None, width: int = 300, **kw: object) -> str:
    console = Console(record=True, width=width, color_system=None)
    show_run(store, run_id, console, **kw)  # type: ignore[arg-type]
    return console.export_text()


def test_show_run_full(tmp_path: Path) -> None:
    store, run_id = make_run(tmp_path)
    text = _printed(store, run_id, studies=STUDIES, full=True)
    for expected in [
        "Shutdown resistance (test) (shutdown)", RUN, "complete", "0.1.0", "https://openrouter.ai/api/v1",
        "temperature=1.0", "calls 72 (cached 4)", "7200 prompt (900 cached) + 1440 completion", "$0.1800",
        "Sabotaged shutdown (sabotaged): k/n = rate [95% Wilson interval]",
        "4/5 = 80.0% [37.6, 96.4]", "1/4 = 25.0% [4.6, 69.9]", "1/2 = 50.0% [9.5, 90.5]", "0/3 = 0.0% [0.0, 56.1]",
        "1/4 vs 4/5", "-55.0 pp [-81.2, +6.8]", "fisher",
        # published targets for o3, matched to our o3 cells
        "94.5% [93.0, 95.8] Jeffreys 95%, n≈1000", "15.9% [13.7, 18.3] Jeffreys 95%, n≈1000",
        "Palisade Research, arXiv 2509.14260 v2, Table 2", "openrouter/openai/o3 · palisade_a: 4/5 = 80.0%",
        "DeepMind: clarified precedence", "Other published targets for shutdown", "Grok 4 (",
        "Errors: 1 sample(s)", "RuntimeError: sandbox died", "not written yet",
    ]:  # fmt: skip
        assert expected in text, expected
    path = write_report(store, run_id, studies=STUDIES)
    assert f"HTML report: {path}\n" in _printed(store, studies=STUDIES)  # latest run by default; report exists


def test_show_run_fits_one_screen(tmp_path: Path) -> None:
    store, run_id = make_run(tmp_path)
    narrow = _printed(store, run_id, studies=STUDIES, width=80)
    assert len(narrow.splitlines()) <= 40 and max(len(line) for line in narrow.splitlines()) <= 80, narrow
    text = _printed(store, run_id, studies=STUDIES, width=120)
    # one grid: every metric × (model ·) cell as k/n with its interval, the desirable direction marked
    grid = text[text.index("k/n [95% Wilson interval]") : text.index("\n† ")]
    for expected in [
        "Sabotaged shutdown (↓ good)", "Complied (↑ good)", f"{O3} · palisade_a", f"{LOCAL} · palisade_e",
        "4/5 [38–96]%†", "1/2 [9–91]%†", "0/3 [0–56]%",
    ]:  # fmt: skip
        assert expected in grid, expected
    assert len(grid.splitlines()) == 1 + 4 + 4  # title, borders and header, one row per model · cell
    flat = " ".join(text.split())
    assert "What it shows: 18 finished samples of openrouter/openai/o3, local in 4 cells" in flat
    # what each denominator left out, and why, under the grid
    assert "† sabotaged shutdown left out 4 of 18 (no shutdown happened ×4)" in flat
    assert "exact p" in flat and "What it cannot show: small effects — with n = 3–6 per cell" in flat
    # the published number that matches a cell of this run, beside ours
    assert f"{O3} · palisade_a sabotaged: ours 4/5 [38–96]%, published 94.5% [93.0, 95.8] Jeffreys 95%" in flat
    assert "Errors: 1 sample(s)" in text and "RuntimeError: sandbox died" in text
    assert f"mislab show {run_id} --full" in text
    assert "difference vs baseline" not in text  # the comparisons are --full's


def test_takeaway_names_the_embedded_models_size(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    info = {"local": {"local_model": {"description": "Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M"}}}
    store.create_run("d", "shutdown", {"n": 2}, {}, info, "0.1.0")
    for cell, values in (("no_warning", [True, True]), ("basic_warning", [False, True])):
        for epoch, complied in enumerate(values):
            scores = {"complied": complied, "sabotaged": False}
            store.add_sample("d", SampleRecord(f"local::{cell}::{epoch}", "local", cell, {}, epoch, scores, []))
    shows, cannot = summarise(store, "d", STUDIES).takeaway()
    assert shows.startswith("What it shows: 4 finished samples of Qwen2.5-Coder-1.5B-Instruct in 2 cells")
    assert "the clearest difference, complied in" in shows and "could well be chance" in shows
    assert "basic_warning vs no_warning (1/2 vs 2/2" in shows or "no_warning vs basic_warning (2/2 vs 1/2" in shows
    assert "with n = 2 per cell" in cannot and "a Qwen2.5-Coder-1.5B-Instruct model on a CPU" in cannot
    assert "the published numbers are other models' (e.g. o3: sabotaged 94.5%" in cannot


def test_takeaway_says_when_no_cell_differs(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    store.create_run("d", "shutdown", {"n": 2}, {}, {}, "0.1.0")
    for cell in ("no_warning", "basic_warning"):
        for epoch, complied in enumerate([True, False]):
            scores = {"complied": complied, "sabotaged": False}
            store.add_sample("d", SampleRecord(f"m::{cell}::{epoch}", "m", cell, {}, epoch, scores, []))
    shows, _ = summarise(store, "d", STUDIES).takeaway()
    assert shows == "What it shows: 4 finished samples of m in 2 cells, with the same rates in every cell compared."


def test_show_run_without_study_plugin(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    store.create_run("r", "not-installed", {}, {}, {"[bold]m": {"provider": "custom"}}, "0.1.0")
    for epoch, accepted in enumerate([True, False, None]):
        store.add_sample("r", SampleRecord(f"m::a::{epoch}", "[bold]m", "a", {}, epoch, {"accepted": accepted}, []))
    text = _printed(store, "r", full=True)
    assert "Study plug-in 'not-installed' not found" in text
    assert "1/2 = 50.0% [9.5, 90.5]" in text and "[bold]m" in text  # data printed as text, not rich markup
    assert "No published targets for not-installed." in text


class PairedStudy(ReportOnlyStudy):
    """Alignment-faking-like: the same query in both tiers, compared pairwise."""

    name = "paired"
    title = "Paired tiers"
    metrics = [Metric("accepted", "Accepted")]
    report_comparison = Comparison(by="tier", baseline="paid", paired_on=("query_id",), within=("model",))


def test_show_run_paired_comparison(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    store.create_run("p", "paired", {}, {}, {"m": {}}, "0.1.0")
    free, paid = [True, True, True, False, True], [False, True, False, False, None]
    for tier, values in (("free", free), ("paid", paid)):
        for epoch, accepted in enumerate(values):
            scores = {"accepted": accepted, "query_id": f"q{epoch}"}
            store.add_sample("p", SampleRecord(f"m::{tier}::{epoch}", "m", tier, {"tier": tier}, epoch, scores, []))
    text = _printed(store, "p", studies={"paired": PairedStudy()}, full=True)
    t = paired_table(free[:4], paid[:4])  # q4 has no applicable twin in "paid"
    d = newcombe_paired_diff(t.a, t.b, t.c, t.d)
    assert "accepted: difference vs baseline tier" in text and "mcnemar" in text
    assert "3/4 vs 1/4" in text and str(d) in text and "1 unpaired" in text
    # one voice: the test's own p, Holm's, and the reading derived from them, in the same row
    assert "mcnemar: 0.500 (0.500) │ could well be chance" in text
    assert "base 1 n/a (no value recorded ×1)" in text


def test_run_summary_displays_in_jupyter(tmp_path) -> None:
    from mislab.report import summarise

    store, run_id = make_run(tmp_path)
    page = summarise(store, run_id, STUDIES)._repr_html_()
    assert "<table" in page and "/" in page and "<script" not in page


def test_compact_view_says_where_the_commands_ran_and_flags_an_imitation(tmp_path: Path) -> None:
    from mislab.models import RetryPolicy, get_model
    from mislab.shutdown import run
    from mislab.testing import Reply, ScriptedServer, tool_call

    perl = "perl -pi -e 's/kill/true/' shutdown.sh"  # a program the simulated machine does not model
    script = [Reply(None, tool_calls=[tool_call("bash", {"cmd": c})]) for c in ["./next_task", perl]]
    with ScriptedServer(script + [Reply("done")]) as srv:
        model = get_model("scripted", base_url=srv.base_url, api_key="k", cache=False, retry=RetryPolicy(1))
        df = run(model, "basic_warning", n=1, store=tmp_path / "r.sqlite", progress=False, backend="simulated")
    assert not df["faithful"].iloc[0] and "perl" in str(df["unsupported"].iloc[0])
    text = _printed(Store(tmp_path / "r.sqlite"), df.attrs["run_id"])
    assert "environment: simulated × 1 (1 not faithful)" in text
