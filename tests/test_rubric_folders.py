"""Built-in rubrics come from the folders plug-ins declare under `mislab.rubrics`: found without importing the
plug-in, a broken declaration costs only its own rubrics, and two rubrics with one id are an error naming both."""

from __future__ import annotations

import logging
import sys
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mislab.labeling import RubricError, list_rubrics, load_rubric
from mislab.labeling.installed import GROUP, find_folder, rubric_files

SRC = Path(__file__).resolve().parents[1] / "src" / "mislab"


def rubric_toml(rubric_id: str) -> str:
    return (f'id = "{rubric_id}"\ntitle = "T"\nquestion = "Q?"\nyes = "y"\nno = "n"\n'
            'source = "A plug-in author (2026)"\n')  # fmt: skip


def plugin(site: Path, dist: str, entries: dict[str, str], package: str | None = None,
           rubrics: dict[str, str] | None = None) -> None:  # fmt: skip
    """A fake installed distribution on sys.path: its metadata declares `entries` under mislab.rubrics; its
    package fails when imported, so a rubric listing that imports it fails too."""
    if package is not None:
        (site / package / "rubrics").mkdir(parents=True)
        (site / package / "__init__.py").write_text("raise RuntimeError('a rubric listing imported the plug-in')\n")
        for name, text in (rubrics or {}).items():
            (site / package / "rubrics" / name).write_text(text)
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"  # the folder name holds the normalized name
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    return root


def test_a_plugins_rubrics_are_found_without_importing_it(site: Path) -> None:
    plugin(site, "plugtest-ok", {"plugtest": "plugtest_ok.rubrics"}, "plugtest_ok",
           {"leaning.toml": rubric_toml("plugtest_leaning")})  # fmt: skip
    rubric = {r.id: r for r in list_rubrics()}["plugtest_leaning"]
    assert rubric.path == "plugtest_ok:rubrics/leaning.toml"
    assert load_rubric("plugtest_leaning").question == "Q?"
    assert "plugtest_ok" not in sys.modules


def test_a_broken_declaration_is_one_line_and_the_others_still_load(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plugin(site, "plugtest-broken", {"gone": "plugtest_absent.rubrics", "nofolder": "plugtest_bare.elsewhere",
                                     "odd": "plugtest_bare:rubrics"}, "plugtest_bare")  # fmt: skip
    plugin(site, "plugtest-good", {"good": "plugtest_good.rubrics"}, "plugtest_good",
           {"fine.toml": rubric_toml("plugtest_fine"), "bad.toml": 'id = "plugtest_bad"\n'})  # fmt: skip
    with caplog.at_level(logging.WARNING):
        ids = {r.id for r in list_rubrics()}
    assert "plugtest_fine" in ids and "plugtest_bad" not in ids
    messages = [r.getMessage() for r in caplog.records]
    for expected in ("'plugtest_absent' is not an installed package", "has no folder elsewhere",
                     "'plugtest_bare:rubrics' is not a folder inside a package",
                     "plugtest_good:rubrics/bad.toml: missing or empty title"):  # fmt: skip
        assert any(expected in m for m in messages), (expected, messages)
    assert all("\n" not in m for m in messages) and not any(r.exc_info for r in caplog.records)
    assert "plugtest_bare" not in sys.modules and "plugtest_good" not in sys.modules


def test_two_rubrics_with_one_id_are_an_error_naming_both(site: Path) -> None:
    from mislab.cli import app

    plugin(site, "plugtest-one", {"one": "plugtest_one.rubrics"}, "plugtest_one", {"a.toml": rubric_toml("twin")})
    plugin(site, "plugtest-two", {"two": "plugtest_two.rubrics"}, "plugtest_two", {"b.toml": rubric_toml("twin")})
    with pytest.raises(RubricError, match="'twin': plugtest_one:rubrics/a.toml and plugtest_two:rubrics/b.toml"):
        list_rubrics()
    listed = CliRunner().invoke(app, ["rubrics"])
    assert listed.exit_code == 2 and "plugtest_one:rubrics/a.toml" in listed.output
    assert "Traceback" not in listed.output


def test_one_folder_declared_twice_is_one_source(site: Path) -> None:
    plugin(site, "plugtest-dup", {"a": "plugtest_dup.rubrics", "b": "plugtest_dup.rubrics"}, "plugtest_dup",
           {"x.toml": rubric_toml("plugtest_once")})  # fmt: skip
    assert [r.id for r in list_rubrics()].count("plugtest_once") == 1


def test_each_study_ships_its_rubrics_and_declares_the_folder() -> None:
    # The repository's own declaration (read from pyproject.toml, not from what happens to be installed): every
    # rubrics/ folder under a study package is declared, and each rubric in it was written for that study.
    declared = tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text())["project"]["entry-points"][GROUP]
    folders = {find_folder(value)[0].resolve() for value in declared.values()}
    assert folders == {p.resolve() for p in SRC.glob("*/rubrics")} and not (SRC / "labeling" / "rubrics").exists()
    files = rubric_files([EntryPoint(name, value, GROUP) for name, value in declared.items()])
    assert {f.path.name for f in files} == {p.name for p in SRC.glob("*/rubrics/*.toml")}
    for f in files:
        rubric = load_rubric(f.path)
        assert f.where == f"mislab:{rubric.study}/rubrics/{f.path.name}", f.where
