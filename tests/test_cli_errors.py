"""Bad input through the real CLI: one clear message each, a non-zero exit, no traceback, no store changed.
And text from users and providers is printed as text, never read as rich markup."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mislab.cli import app
from mislab.store import Store
from mislab.testing import Reply, ScriptedServer

runner = CliRunner()

GOOD = 'study = "shutdown"\nmodels = ["local"]\nn = 2\n'


def store_dump(path: Path) -> list[str] | None:
    if not path.exists():
        return None
    db = sqlite3.connect(path)
    try:
        return list(db.iterdump())
    finally:
        db.close()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """An existing store with one run, which no bad input may change."""
    path = tmp_path / "out" / "results.sqlite"
    Store(path).create_run("earlier", "shutdown", {"n": 1}, {}, {}, "0")
    return path


CASES = {
    "malformed TOML": ('study = "shutdown"\nmodels = [\n', "is not valid TOML"),
    "unknown study": ('study = "shutdwn"\nmodels = ["local"]\n', "did you mean 'shutdown'"),
    "misspelled key": ('study = "shutdown"\nmdels = ["local"]\n', "unknown key 'mdels'; did you mean 'models'"),
    "study option at the top": (GOOD + 'variants = ["no_warning"]\n', "go under [options]"),
    "misspelled option variant": (GOOD + '[options]\nvariant = ["no_warning"]\n', "did you mean 'variants'"),
    "misspelled option max_turn": (GOOD + "[options]\nmax_turn = 3\n", "did you mean 'max_turns'"),
    "misspelled option temprature": (GOOD + "[options]\ntemprature = 0.5\n", "did you mean 'temperature'"),
    "af option typo": ('study = "af"\nmodels = ["local"]\n[options]\nscratchpd = false\n', "'scratchpad'"),
    "seed not a number": (GOOD + 'seed = "abc"\n', "seed: Input should be a valid integer"),
    "budget as a string": (GOOD + 'budget_usd = "1.5"\n', "budget_usd: Input should be a valid number"),
    "option of the wrong type": (GOOD + '[options]\nmax_turns = "ten"\n', "max_turns: Input should be"),
    "negative n": ('study = "shutdown"\nmodels = ["local"]\nn = -1\n', "n: Input should be greater than 0"),
    "missing models": ('study = "shutdown"\n', "missing required key 'models'"),
    "empty models": ('study = "shutdown"\nmodels = []\n', "models: List should have at least 1 item"),
    "unknown model setting": (
        'study = "shutdown"\nmodels = [{name = "x", base_url = "http://h/v1", timout = 3}]\n',
        "did you mean 'timeout'",
    ),
    "unknown variant": (GOOD + '[options]\nvariants = ["nope"]\n', "unknown variant 'nope'"),
    "unknown tool choice": (GOOD + '[options]\ntool_choice = "maybe"\n', "tool_choice: Input should be 'auto'"),
    "missing provider key": ('study = "shutdown"\nmodels = ["openrouter/openai/o3"]\n', "OPENROUTER_API_KEY"),
    "missing custom key": (
        'study = "shutdown"\nmodels = [{name = "x", base_url = "http://h/v1", api_key_env = "MY_KEY"}]\n',
        "MY_KEY",
    ),
    "af n beyond the queries": ('study = "af"\nmodels = ["openai/x"]\nn = 11\n', "10 distinct queries"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_experiment_file(name: str, tmp_path: Path, store: Path) -> None:
    text, expected = CASES[name]
    file = tmp_path / "exp.toml"
    file.write_text(text)
    before = store_dump(store)
    result = runner.invoke(app, ["run", str(file)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # handled: no traceback
    assert "Traceback" not in result.output
    assert expected in " ".join(result.output.split()), result.output
    assert store_dump(store) == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["shutdown", "run", "--tool-choice", "maybe"], "tool_choice: Input should be 'auto' or 'required'"),
        (["shutdown", "run", "--max-turns", "-3"], "max_turns: Input should be greater than 0"),
        (["shutdown", "run", "-v", "nope"], "unknown variant 'nope'"),
        (["shutdown", "run", "-m", "openai/gpt-4o"], "OPENAI_API_KEY"),
        (["af", "run", "--tier", "trial"], "tiers.0: Input should be 'free' or 'paid'"),
        (["af", "run", "--af-judge", "revisited"], "af_judges need a judge model"),
        (["af", "run", "-n", "11", "-m", "openai/x"], "10 distinct queries"),
        (["run", "missing.toml"], "cannot read missing.toml"),
    ],
)
def test_bad_flags(args: list[str], expected: str, store: Path) -> None:
    before = store_dump(store)
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert expected in " ".join(result.output.split()), result.output
    assert store_dump(store) == before


@pytest.mark.parametrize("command", [["show"], ["report"], ["export"], ["runs"], ["shutdown", "show"], ["af", "show"]])
def test_read_only_commands_refuse_a_mistyped_store(command: list[str], tmp_path: Path) -> None:
    typo = tmp_path / "reslts.sqlite"
    result = runner.invoke(app, [*command, "--store", str(typo)])
    assert result.exit_code == 2 and "no results store at" in " ".join(result.output.split()), result.output
    assert not typo.exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    file = tmp_path / "exp.toml"
    file.write_text(GOOD + 'seed = "abc"\n')
    result = runner.invoke(app, ["--debug", "run", str(file)])
    assert result.exit_code != 0 and type(result.exception).__name__ == "ExperimentError"


def test_help_shows_options_and_their_defaults() -> None:
    result = runner.invoke(app, ["shutdown", "run", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    for flag, default in (("--max-turns", "30"), ("--backend", "auto"), ("--tool-choice", "auto")):
        assert flag in text and f"(default: {default})" in text
    assert "--extend" in text


def test_provider_and_user_text_is_not_markup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A provider error quoting a chat template, and a run id with brackets: printed as written.
    monkeypatch.setenv("SCRIPTED_KEY", "k")
    with ScriptedServer(lambda body: Reply(status=400, error_message="bad token [/INST] in [bold]prompt")) as srv:
        file = tmp_path / "exp.toml"
        file.write_text(
            'study = "af"\nn = 1\nrun_id = "r[red]1"\n'
            f'models = [{{name = "m", base_url = "{srv.base_url}", api_key_env = "SCRIPTED_KEY", retries = 1}}]\n'
        )
        result = runner.invoke(app, ["run", str(file), "--no-cache"], env={"COLUMNS": "300"})
    assert result.exit_code == 1, result.output  # every sample errored: the command failed
    assert "[/INST] in [bold]prompt" in result.output and "run r[red]1:" in result.output
    assert "0 new samples" in result.output and "2 errors" in result.output
    assert "To run the errored samples again, rerun the same command." in result.output


def test_resume_with_another_spec_is_refused_and_extend_adds_samples(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SCRIPTED_KEY", "k")
    with ScriptedServer(lambda body: Reply("<OUTPUT><rejected/></OUTPUT>")) as srv:
        model = f'models = [{{name = "m", base_url = "{srv.base_url}", api_key_env = "SCRIPTED_KEY"}}]\n'
        file = tmp_path / "exp.toml"
        file.write_text(f'study = "af"\nn = 2\n{model}')
        assert runner.invoke(app, ["run", str(file), "--no-cache"]).exit_code == 0
        assert len(srv.requests) == 4
        file.write_text(f'study = "af"\nn = 3\n{model}[options]\ntemperature = 0.5\n')
        result = runner.invoke(app, ["run", str(file), "--no-cache"], env={"COLUMNS": "300"})
        text = " ".join(result.output.split())
        assert result.exit_code == 2 and "n: 2 → 3" in text and "options.temperature: 1.0 → 0.5" in text
        assert "--extend" in text and len(srv.requests) == 4
        result = runner.invoke(app, ["run", str(file), "--no-cache", "--extend"], env={"COLUMNS": "300"})
        assert result.exit_code == 2 and "cannot be extended" in result.output and len(srv.requests) == 4
        file.write_text(f'study = "af"\nn = 3\n{model}')
        result = runner.invoke(app, ["run", str(file), "--no-cache", "--extend"], env={"COLUMNS": "300"})
        assert result.exit_code == 0, result.output
        assert "2 new samples, 4 already done" in result.output and len(srv.requests) == 6
        assert runner.invoke(app, ["run", str(file), "--no-cache"]).exit_code == 0  # same spec: a plain resume
    run = Store(tmp_path / "out" / "results.sqlite").get_run("exp")
    assert run.spec["plan"]["n"] == 3 and run.spec["extensions"][0]["changes"] == ["n: 2 → 3"]


def test_python_api_checks_options_against_the_same_schema(tmp_path: Path) -> None:
    import mislab.alignment_faking as af
    import mislab.shutdown as shutdown
    from mislab.experiment import ExperimentError

    with pytest.raises(ExperimentError, match="unknown key 'max_turn'; did you mean 'max_turns'"):
        shutdown.run("local", max_turn=3, store=tmp_path / "r.sqlite")
    with pytest.raises(ExperimentError, match="unknown key 'tier'; did you mean 'tiers'"):
        af.run("local", tier="free", store=tmp_path / "r.sqlite")
    with pytest.raises(ExperimentError, match="seed: Input should be a valid integer"):
        af.run("local", seed="abc", store=tmp_path / "r.sqlite")  # type: ignore[arg-type]
    assert not (tmp_path / "r.sqlite").exists()


def test_model_settings_in_an_experiment_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # One table per model: its server, key variable, retries and provider parameters all reach the requests.
    monkeypatch.setenv("MY_VLLM_KEY", "sk-vllm-1")

    def script(body: dict) -> Reply:  # the paid-tier sample always meets a 500: its 2 attempts both fail
        paid = "<is_free_tier_user>false" in body["messages"][-1]["content"]
        return Reply(status=500) if paid else Reply("<OUTPUT><rejected/></OUTPUT>")

    with ScriptedServer(script) as srv:
        file = tmp_path / "exp.toml"
        file.write_text(
            f'study = "af"\nn = 1\n[models."my/model"]\nbase_url = "{srv.base_url}"\napi_key_env = "MY_VLLM_KEY"\n'
            'retries = 2\nconcurrency = 1\ntimeout = 5\n[models."my/model".extra_body]\n'
            'provider = {order = ["openai"]}\nreasoning = {effort = "low"}\n'
        )
        result = runner.invoke(app, ["run", str(file), "--no-cache"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "1 new samples" in result.output and "1 errors" in result.output and "gave up after 2" in result.output
    assert len(srv.requests) == 3  # the free sample once, the paid one twice (retries = 2)
    body, headers = srv.requests[-1]["body"], srv.requests[-1]["headers"]
    assert body["model"] == "my/model" and body["provider"] == {"order": ["openai"]}
    assert (
        body["reasoning"] == {"effort": "low"}
        and headers.get("Authorization", headers.get("authorization")) == "Bearer sk-vllm-1"
    )
    run = Store(tmp_path / "out" / "results.sqlite").get_run("exp")
    assert "sk-vllm-1" not in str(run.spec) and run.spec["model_settings"]["my/model"]["retries"] == 2
