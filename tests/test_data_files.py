"""Third-party data files (`mislab.data.files`): copies checked by sha256 before use (from local files only: no
network), and the data sets the installed studies declare."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mislab.data.files import ChecksumError, data_sets, fetch_all, fetch_verified, pinned_files


def test_fetch_verified_checksum_mismatch(tmp_path: Path) -> None:
    source = tmp_path / "file.txt"
    source.write_text("hello")
    dest = tmp_path / "out" / "file.txt"
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        fetch_verified(source, dest, "0" * 64)
    assert not dest.exists()
    with pytest.raises(ChecksumError, match="no sha256 is pinned"):
        fetch_verified(source.as_uri(), dest, None)
    digest = hashlib.sha256(b"hello").hexdigest()
    assert fetch_verified(source.as_uri(), dest, digest).read_text() == "hello"
    assert fetch_verified(source, tmp_path / "unpinned.txt", None, allow_unpinned=True).is_file()
    with pytest.raises(ValueError, match="unsupported URL scheme"):
        fetch_verified("ftp://example.invalid/x", dest, digest.replace("a", "b"))


def test_the_studies_declare_their_pinned_data_sets() -> None:
    # Declared by the alignment-faking plug-in, found through the study registry (no study named in core).
    sets = data_sets()
    assert {"alignment_faking", "advbench"} <= set(sets)
    pins = pinned_files()
    assert pins["advbench/harmful_behaviors.csv"] == sets["advbench"].files["harmful_behaviors.csv"]
    assert "alignment_faking/judges/JUDGE_PROMPT.txt" in pins


def test_fetch_all_refuses_an_unknown_data_set(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="no data set nosuch"):
        fetch_all(tmp_path, {"nosuch": str(tmp_path)})
    assert not any(tmp_path.iterdir())  # nothing fetched
