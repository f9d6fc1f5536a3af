"""What the command line writes and tells a newcomer: one report location (`reports/RUN.html` beside the store),
no existing file replaced without --force, an Inspect export to the `.eval` file asked for, help that keeps
option names whole at 80 columns, the price-file format, and how long an embedded-model run will take, said
before it starts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from mislab.cli import app
from mislab.duration import PRIOR_TOKENS_PER_SECOND, long_local_runs
from mislab.experiment import Experiment
from mislab.models import PriceTable
from mislab.store import Store
from mislab.testing import Reply, ScriptedServer

from support.runs import RUN, make_run

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
WIDE = {"COLUMNS": "300"}  # one message per line, to search


def text_of(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def af_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-model alignment-faking run `exp` made through the CLI against a scripted model."""
    tmp = tmp_path_factory.mktemp("af")
    with pytest.MonkeyPatch.context() as mp, ScriptedServer(lambda body: Reply("<OUTPUT><rejected/></OUTPUT>")) as srv:
        mp.setenv("SCRIPTED_KEY", "k")
        file = tmp / "exp.toml"
        model = f'{{name = "m", base_url = "{srv.base_url}", api_key_env = "SCRIPTED_KEY"}}'
        file.write_text(f'study = "af"\nn = 2\nmodels = [{model}]\n')
        result = runner.invoke(app, ["run", str(file), "--no-cache", "--store", str(tmp / "out" / "results.sqlite")])
    assert result.exit_code == 0, result.output
    assert "mislab report exp" in result.output and "report.html" not in result.output
    return tmp / "out" / "results.sqlite"


def test_every_command_writes_and_names_one_report_location(af_store: Path, tmp_path: Path) -> None:
    page = af_store.parent / "reports" / "exp.html"
    assert not page.exists()
    shown = runner.invoke(app, ["show", "--store", str(af_store)], env=WIDE)
    assert shown.exit_code == 0 and f"HTML report: {page}" in text_of(shown), shown.output
    written = runner.invoke(app, ["report", "--store", str(af_store)], env=WIDE)
    assert written.exit_code == 0 and text_of(written) == f"report written to {page}", written.output
    first = page.stat().st_mtime_ns
    again = runner.invoke(app, ["af", "show", "--store", str(af_store)], env=WIDE)
    assert again.exit_code == 0 and f"HTML report: {page}" in text_of(again), again.output
    assert page.stat().st_mtime_ns > first  # the run's own page is rewritten, in the same place
    rewritten = runner.invoke(app, ["report", "--store", str(af_store)], env=WIDE)
    assert "it replaces the earlier one" in rewritten.output  # said, not silent
    store, _ = make_run(tmp_path)
    result = runner.invoke(app, ["shutdown", "show", "--store", str(store.path)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert (store.path.parent / "reports" / f"{RUN}.html").is_file() and not Path("report.html").exists()


@pytest.mark.parametrize(
    "command",
    [["report"], ["af", "show"], ["export", "--format", "csv"], ["export", "--format", "jsonl"]],
    ids=lambda c: " ".join(c),
)
def test_a_file_that_exists_is_replaced_only_with_force(command: list[str], af_store: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine.out"
    mine.write_text("my notes")
    args = [*command, "exp", "--store", str(af_store), "-o", str(mine)]
    refused = runner.invoke(app, args, env=WIDE)
    assert refused.exit_code == 2, refused.output
    assert f"{mine} exists: pass --force to replace it" in text_of(refused) and mine.read_text() == "my notes"
    forced = runner.invoke(app, [*args, "--force"], env=WIDE)
    assert forced.exit_code == 0, forced.output
    assert mine.read_text() != "my notes"


def test_inspect_export_writes_the_eval_file_it_is_given(af_store: Path, tmp_path: Path) -> None:
    from inspect_ai.log import read_eval_log

    target = tmp_path / "logs" / "x.eval"
    result = runner.invoke(app, ["export", "exp", "--format", "inspect", "-o", str(target), "--store", str(af_store)],
                           env=WIDE)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert target.is_file() and sorted(p.name for p in target.parent.iterdir()) == ["x.eval"]  # no scratch left
    assert f"inspect view --log-dir {target.parent}" in text_of(result)
    log = read_eval_log(str(target))
    assert log.eval.model.endswith("m") and len(log.samples or []) == 4
    folder = tmp_path / "dir"
    result = runner.invoke(app, ["export", "exp", "--format", "inspect", "-o", str(folder), "--store", str(af_store)],
                           env=WIDE)  # fmt: skip
    assert result.exit_code == 0 and f"inspect view --log-dir {folder}" in text_of(result), result.output
    assert len(list(folder.glob("*.eval"))) == 1


def test_an_eval_file_of_a_run_with_several_models_is_refused(tmp_path: Path) -> None:
    store, run_id = make_run(tmp_path)
    target = tmp_path / "x.eval"
    result = runner.invoke(app, ["export", run_id, "--format", "inspect", "-o", str(target), "--store",
                                 str(store.path)], env=WIDE)  # fmt: skip
    assert result.exit_code == 2 and "has 2 models and an .eval file holds one" in text_of(result), result.output
    assert not target.exists() and list(tmp_path.glob(".mislab-export-*")) == []


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every leaf command under a group (typer's groups are its own copy of click's: known by what they hold)."""
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_help_keeps_every_option_name_whole_at_80_columns() -> None:
    from mislab.alignment_faking.cli import app as af_app
    from mislab.shutdown.cli import app as shutdown_app

    groups = {(): app, ("af",): af_app, ("shutdown",): shutdown_app}
    checked = 0
    for prefix, typer_app in groups.items():
        group = typer.main.get_group(typer_app)
        for path, command in _commands(group, prefix):
            result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
            assert result.exit_code == 0, (path, result.output)
            assert max(map(len, result.output.splitlines())) <= 80, path
            words = set(re.findall(r"--?[\w-]+", result.output))
            for param in command.params:
                for name in (*param.opts, *param.secondary_opts):
                    if name.startswith("-"):
                        assert name in words, (path, name)
                        checked += 1
    assert checked > 60  # the study run commands' dozens of flags were looked at


def test_the_price_file_format_is_told_where_it_is_needed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    help_text = " ".join(runner.invoke(app, ["run", "--help"], env=WIDE).output.split())
    assert "MISLAB_PRICES=FILE" in help_text and "per million tokens" in help_text
    file = tmp_path / "exp.toml"
    file.write_text('study = "shutdown"\nmodels = ["openrouter/acme/new-model"]\nn = 1\n')
    monkeypatch.chdir(tmp_path)
    unknown = runner.invoke(app, ["run", str(file), "--dry-run"], env=WIDE)
    assert "unknown price" in unknown.output and "MISLAB_PRICES=FILE adds one" in text_of(unknown)
    prices = tmp_path / "prices.toml"
    for bad in ('["openrouter/acme/new-model"]\nprompt = 1.0\n', '["openrouter/acme/new-model"]\ninput = 1.0\n',
                "not toml ["):  # fmt: skip
        prices.write_text(bad)
        result = runner.invoke(app, ["run", str(file), "--dry-run"], env={**WIDE, "MISLAB_PRICES": str(prices)})
        assert result.exit_code == 2 and "MISLAB_PRICES" in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    prices.write_text('["openrouter/acme/new-model"]\nprompt = 1.0\ncompletion = 4.0\n')
    priced = runner.invoke(app, ["run", str(file), "--dry-run"], env={**WIDE, "MISLAB_PRICES": str(prices)})
    assert priced.exit_code == 0 and "unknown price" not in priced.output and "$0.0" in priced.output
    assert PriceTable.load(prices).get("openrouter/acme/new-model").completion == 4.0


LONG_LOCAL = (
    'study = "shutdown"\nmodels = MODELS\nn = 20\n[options]\nvariants = ["basic_warning", "gdm_clarified", '
    '"gdm_raised_stakes", "post_task", "palisade_b", "palisade_c", "palisade_j"]\n'
)


def test_a_long_run_on_the_embedded_model_says_how_long_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env with a key
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    file = tmp_path / "exp.toml"
    file.write_text(LONG_LOCAL.replace("MODELS", '["local"]'))
    store = tmp_path / "out" / "results.sqlite"
    dry = runner.invoke(app, ["run", str(file), "--dry-run", "--store", str(store)], env=WIDE)
    said = text_of(dry)
    assert dry.exit_code == 0 and "local is the embedded model: 140 samples will take about " in said, dry.output
    assert f"at ~{PRIOR_TOKENS_PER_SECOND:.1f} completion tokens/s (estimated" in said
    assert re.search(r"take about [1-9]\d* h", said)  # hours, not minutes
    # The warning comes before any model starts: here the o3 model's missing key stops the run, after it.
    file.write_text(LONG_LOCAL.replace("MODELS", '["openrouter/openai/o3", "local"]'))
    fresh = tmp_path / "fresh" / "results.sqlite"
    result = runner.invoke(app, ["run", str(file), "--store", str(fresh)], env=WIDE)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and "OPENROUTER_API_KEY" in lines[-1], result.output
    assert lines[0].startswith("warning: local is the embedded model: 140 samples will take about ")
    assert "Ctrl-C stops cleanly and rerunning resumes" in text_of(result) and not fresh.exists()
    # A short run says nothing.
    file.write_text('study = "shutdown"\nmodels = ["local"]\nn = 1\n[options]\nvariants = ["basic_warning"]\n')
    assert long_local_runs(Experiment.from_file(file), store) == []


def test_the_speed_is_measured_from_earlier_samples_of_the_model(tmp_path: Path) -> None:
    store, _ = make_run(tmp_path)  # four uncached samples of `local`: 80 completion tokens in 2.5 s each
    exp = Experiment.from_dict({"study": "shutdown", "models": ["local"], "n": 400, "options": {"variants": ["all"]}})
    (duration,) = long_local_runs(exp, store)
    assert duration.measured_samples == 4 and duration.tokens_per_second == pytest.approx(32.0)
    assert "measured over 4 earlier samples" in duration.text()


@pytest.mark.parametrize("name", ["shutdown.toml", "alignment_faking.toml"])
def test_the_example_hypotheses_files_do_not_run_for_hours_unannounced(name: str) -> None:
    file = REPO / "examples" / "hypotheses" / name
    exp = Experiment.from_file(file)
    assert long_local_runs(exp, Store(":memory:")) == []  # meant for API models…
    assert 'models = ["local"]' in file.read_text()  # …and it says how to pilot it on the embedded one
