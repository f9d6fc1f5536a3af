"""`mislab data fetch / verify`: every third-party file fetched from its source (here local stand-ins through
file:// URLs: no network in tests) into a data directory, each checked against its pinned sha256, and found
there by the studies."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mislab.alignment_faking.prompts import load_paper_prompts
from mislab.alignment_faking.queries import load_advbench
from mislab.cli import app
from mislab.data.files import ChecksumError, fetch_all, pinned_files, user_data_dir, verify_data_dir

from support.arena import ADVBENCH, fake_arena


def _sources(tmp_path: Path) -> list[str]:
    arena = fake_arena(tmp_path / "arena")
    return ["--source", f"alignment_faking={arena.as_uri()}", "--source", f"advbench={ADVBENCH.as_uri()}"]


def test_fetch_then_verify_a_directory(tmp_path: Path) -> None:
    pinned = pinned_files()
    target = tmp_path / "data"
    runner = CliRunner()
    fetched = runner.invoke(app, ["data", "fetch", "--dir", str(target), *_sources(tmp_path)])
    assert fetched.exit_code == 0, fetched.output
    assert f"{len(pinned)} files fetched and verified in {target}" in fetched.output
    assert f"MISLAB_SHARED_DATA={target}" in fetched.output
    for relative, digest in pinned.items():
        assert hashlib.sha256((target / relative).read_bytes()).hexdigest() == digest
    verified = runner.invoke(app, ["data", "verify", "--dir", str(target)])
    assert verified.exit_code == 0 and f"all {len(pinned)} files match" in verified.output
    # a changed file and a missing one are named, and the command fails
    (target / "advbench" / "harmful_behaviors.csv").write_text("goal,target\nx,y\n")
    (target / "alignment_faking" / "examples.json").unlink()
    broken = runner.invoke(app, ["data", "verify", "--dir", str(target)])
    assert broken.exit_code == 1
    assert "advbench/harmful_behaviors.csv: sha256 mismatch" in broken.output
    assert "alignment_faking/examples.json: missing" in broken.output


def test_verify_without_a_directory_checks_each_file_where_the_studies_read_it(tmp_path: Path) -> None:
    """Files are looked up one by one (the first data directory that has each wins), so that is what a plain
    `mislab data verify` checks and shows: a bad file in the first directory fails it, a file missing there is
    checked where it is read instead."""
    first = tmp_path / "first"
    fetch_all(first, {"alignment_faking": fake_arena(tmp_path / "arena").as_uri(), "advbench": ADVBENCH.as_uri()})
    (first / "advbench" / "harmful_behaviors.csv").write_text("goal,target\nx,y\n")
    (first / "alignment_faking" / "examples.json").unlink()
    runner, env = CliRunner(), {"MISLAB_SHARED_DATA": str(first), "COLUMNS": "300"}
    bad = runner.invoke(app, ["data", "verify"], env=env)
    assert bad.exit_code == 1
    assert "BAD advbench/harmful_behaviors.csv: sha256 mismatch (got" in bad.output and f"({first})" in bad.output
    fallback = next(line for line in bad.output.splitlines() if "alignment_faking/examples.json" in line)
    assert fallback.strip().startswith("ok ") and str(first) not in fallback  # read from a later directory
    (first / "advbench" / "harmful_behaviors.csv").write_bytes(ADVBENCH.read_bytes())
    good = runner.invoke(app, ["data", "verify"], env=env)
    assert good.exit_code == 0 and f"all {len(pinned_files())} files match" in good.output, good.output


def test_fetched_data_is_found_by_the_studies_without_configuration(tmp_path: Path) -> None:
    # The default target is the user data directory (under MISLAB_CACHE_DIR, isolated per test session),
    # which the loaders search when no shared/data is beside the repository or set in MISLAB_SHARED_DATA.
    sources = {"alignment_faking": fake_arena(tmp_path / "arena").as_uri(), "advbench": ADVBENCH.as_uri()}
    out = fetch_all(user_data_dir(), sources)
    assert all(state == "ok" for _, state in verify_data_dir(out).values())
    assert load_paper_prompts(out / "alignment_faking").modified == ()
    assert len(load_advbench(out / "advbench" / "harmful_behaviors.csv")) == 520


def test_a_changed_upstream_is_refused_and_said_in_one_line(tmp_path: Path) -> None:
    tampered = tmp_path / "advbench.csv"
    tampered.write_text(ADVBENCH.read_text() + "Do something else,Sure\n")
    arena = fake_arena(tmp_path / "arena")
    with pytest.raises(ChecksumError):
        fetch_all(tmp_path / "data", {"alignment_faking": arena, "advbench": tampered})
    sources = ["--source", f"alignment_faking={arena}", "--source", f"advbench={tampered}"]
    result = CliRunner().invoke(app, ["data", "fetch", "--dir", str(tmp_path / "d2"), *sources])
    assert result.exit_code == 1 and "sha256 mismatch" in result.output and "Traceback" not in result.output


def test_an_unreachable_source_says_what_to_do_offline(tmp_path: Path) -> None:
    source = ["--source", f"alignment_faking={tmp_path / 'no'}"]
    result = CliRunner().invoke(app, ["data", "fetch", "--dir", str(tmp_path / "d"), *source])
    assert result.exit_code == 1
    assert "Offline? Run `mislab data fetch --dir DIR` on a connected machine" in " ".join(result.output.split())


def test_a_misnamed_source_is_one_line_naming_the_sets(tmp_path: Path) -> None:
    for given, said in (("arena=x", "no data set arena (known: "), ("advbench", "--source takes SET=URL_OR_PATH")):
        result = CliRunner().invoke(app, ["data", "fetch", "--dir", str(tmp_path / "d"), "--source", given])
        assert result.exit_code == 2 and said in result.output and "Traceback" not in result.output
    assert not (tmp_path / "d").exists()


def test_where_lists_the_directories_and_the_declared_data_sets() -> None:
    result = CliRunner().invoke(app, ["data", "where"])
    assert result.exit_code == 0, result.output
    assert str(user_data_dir()) in result.output
    assert "advbench: AdvBench harmful_behaviors.csv" in result.output
    assert "1 pinned file, from https://" in result.output
