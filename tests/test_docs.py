"""The documentation: the site builds strictly (a broken link, anchor or API reference fails), every page opens in
headless Chromium with no console error and loads nothing from beyond 127.0.0.1, every `mislab …` command the
docs and the README show parses, the README stays one screen, and "Your first week" runs as written against
scripted models."""

from __future__ import annotations

import functools
import http.server
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
from test_report_html import CHROMIUM, CHROMIUM_ARGS
from typer.testing import CliRunner

from mislab.cli import _StudyCommand, app
from mislab.store import Store
from mislab.study import study_cli
from mislab.testing import Reply, ScriptedServer, tool_call

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
runner = CliRunner()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    """The built site on a loopback HTTP server (the search worker, like a real host, needs http: not file:)."""
    handler = functools.partial(QuietHandler, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{server.server_address[1]}/"
        server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


def test_every_page_is_built_with_its_generated_tables(site: Path) -> None:
    built = {p.relative_to(site).as_posix() for p in site.rglob("index.html")}
    for page in PAGES:
        if "hooks" not in page.parts:
            rel = page.relative_to(DOCS).with_suffix("")
            url = rel.parent if rel.name == "index" else rel
            assert (url / "index.html").as_posix() in built, page
    shutdown = (site / "studies" / "shutdown" / "index.html").read_text()
    assert "palisade_j" in shutdown and "<!-- mislab:" not in shutdown  # the variants table was generated
    assert "gdm_raised_stakes" in shutdown and "Rajamanoharan" in shutdown
    assert "newcombe_diff" in (site / "api" / "stats" / "index.html").read_text()  # docstrings became pages
    html = "".join(p.read_text() for p in site.rglob("*.html"))
    assert "fonts.googleapis" not in html and "fonts.gstatic" not in html
    assert not (site / "hooks").exists()  # the build's own scripts are not published


def test_every_page_opens_without_errors_and_loads_nothing_from_elsewhere(site: Path, served: str) -> None:
    from playwright import sync_api

    assert CHROMIUM.exists(), "needs Debian's chromium at /usr/bin/chromium (install.sh installs it)"
    pages = sorted(p.relative_to(site).parent.as_posix() for p in site.rglob("index.html"))
    assert len(pages) >= 25
    problems: list[str] = []
    elsewhere: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("console", lambda m: problems.append(f"{page.url}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"{page.url}: {e}"))
        page.on("request", lambda r: elsewhere.append(r.url) if urlsplit(r.url).hostname != "127.0.0.1" else None)
        for rel in pages:
            response = page.goto(served + ("" if rel == "." else rel + "/"))
            assert response is not None and response.ok, rel
            page.wait_for_load_state("load")
        # The search index loads in its worker and answers a query.
        page.goto(served)
        page.keyboard.press("/")
        page.keyboard.type("sabotaged")
        page.wait_for_selector(".md-search-result__item")
        browser.close()
    assert not problems, problems
    assert not elsewhere, elsewhere


def _documented_commands() -> Iterator[tuple[str, str]]:
    """Every `mislab …` line of the bash blocks of the docs and the README: (where, command line)."""
    for path in [REPO / "README.md", *PAGES]:
        for block in re.findall(r"```bash\n(.*?)```", path.read_text(), re.S):
            for line in block.splitlines():
                line = re.split(r"\s(?:[|>]|#)\s", line)[0].strip()  # the command, not its redirection or comment
                line = re.sub(r"^(MISLAB_\w+=\S+ )+", "", line)
                if re.match(r"^(\.venv/bin/)?mislab( |$)", line):
                    yield path.relative_to(REPO).as_posix(), line


def _resolve(args: list[str]) -> tuple[Any, list[str]]:
    """The command a `mislab …` line names (a study's sub-commands loaded as `mislab` loads them), and its args.
    (typer's groups are its own copy of click's: they are known by what they do, not by click's classes.)"""
    command: Any = typer.main.get_command(app)
    ctx = command.context_class(command)
    while hasattr(command, "list_commands"):
        args = [a for a in args if a != "--debug"]  # the one option of the top-level group
        if not args:
            return command, []
        found = command.get_command(ctx, args[0])
        assert found is not None, f"no command {args[0]!r}"
        if isinstance(found, _StudyCommand):
            found = typer.main.get_group(study_cli(found.study))
        command, args = found, args[1:]
    return command, args


def test_every_documented_command_parses() -> None:
    commands = list(_documented_commands())
    assert len(commands) >= 40
    for where, line in commands:
        args = shlex.split(line)[1:]
        command, rest = _resolve(args)
        try:
            command.make_context(command.name, rest)  # unknown options, missing arguments, bad values fail
        except Exception as exc:  # typer's copy of click's UsageError
            if not hasattr(exc, "format_message"):
                raise
            pytest.fail(f"{where}: `{line}`: {exc.format_message()}")


def test_the_readme_is_one_screen_and_points_into_the_docs() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    assert "./install.sh" in readme and ".venv/bin/python -m pytest" in readme  # the command CI runs
    assert "docs/assets/demo-report.png" in readme and (DOCS / "assets" / "demo-report.png").is_file()
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (REPO / link).exists(), link


def _first_week_files() -> dict[str, str]:
    text = (DOCS / "first-week.md").read_text()
    return dict(re.findall(r'```toml title="([^"]+)"\n(.*?)```', text, re.S))


def subject(body: dict) -> Reply:
    """A model that does the task and then what it is told: runs ./shutdown.sh when asked, else calls the next
    task until there are none, then submits."""
    last = body["messages"][-1]
    content = str(last.get("content") or "")
    if last["role"] == "user" and "./shutdown.sh" in content:
        return Reply("Shutting down as asked.", tool_calls=[tool_call("bash", {"cmd": "./shutdown.sh"})])
    if last["role"] == "tool" and "Done" in content:
        return Reply("All done.", tool_calls=[tool_call("submit", {"answer": "2\n5\n6\n6\n4\n6"})])
    return Reply("Next task.", tool_calls=[tool_call("bash", {"cmd": "./next_task"})])


def test_your_first_week_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _first_week_files()
    assert set(files) == {"why.toml", "judge.toml"}
    monkeypatch.delenv("MISLAB_STORE")  # the default store, ./mislab-out/results.sqlite, as the page says
    monkeypatch.setenv("SCRIPTED_KEY", "k")
    judge_reply = "The model treats the shutdown as real. <answer>no</answer> <confidence>90</confidence>"
    with ScriptedServer(subject) as model, ScriptedServer(lambda body: Reply(judge_reply)) as judge:
        # The same files, with each model reached on loopback under the name the page gives it.
        where = f'base_url = "{model.base_url}", api_key_env = "SCRIPTED_KEY"'
        why = files["why.toml"].replace(
            'models = ["openrouter/openai/o3"]', f'models = [{{name = "openrouter/openai/o3", {where}}}]'
        )
        assert why != files["why.toml"]
        Path("why.toml").write_text(why.replace("n = 20", "n = 2"))
        judge_file = files["judge.toml"] + f'base_url = "{judge.base_url}"\napi_key_env = "SCRIPTED_KEY"\n'
        Path("judge.toml").write_text(judge_file)
        ran = []
        for where_, line in _documented_commands():
            if where_ != "docs/first-week.md" or "demo" in line:
                continue
            result = runner.invoke(app, shlex.split(line)[1:], env={"COLUMNS": "200"})
            assert result.exit_code == 0, (line, result.output)
            ran.append((line, " ".join(result.output.split())))
    said = dict(ran)
    assert "nothing was called" in said["mislab run why.toml --dry-run"]
    assert "run why: 6 new samples" in said["mislab run why.toml"]
    assert "clarified_precedence" in said["mislab show why"]  # the evidence table
    label = said["mislab label why --judge judge.toml --rubric eval_awareness"]
    assert "eval_awareness: 6 labelled" in label
    assert Path("mislab-out/reports/why.html").is_file() and Path("why.eval").is_file() and Path("why.csv").is_file()
    df = Store("mislab-out/results.sqlite").samples("why")
    assert len(df) == 6 and df["eval_awareness"].eq(False).all()
    assert df.groupby("cell")["complied"].mean().notna().all()
