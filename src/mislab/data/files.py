"""Third-party data: files the studies read that others wrote (paper prompts, judge texts, benchmarks). They are
never copied into mislab: they are read at run time from a data directory — $MISLAB_SHARED_DATA, a
`shared/data` beside the repository or the working directory, or the user data directory that `mislab data
fetch` fills from their public sources, every file checked against a pinned sha256.

What is pinned is declared by whoever reads it: a study plug-in lists its `DataSet`s as its `data` attribute,
and `mislab data` and the rubric reader consult `data_sets()`, never a study by name.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mislab.config import cache_dir

from ..errors import MislabError

# Set this to a directory laid out like `shared/data` (one sub-directory per data set) when mislab is installed
# somewhere that has no `../shared/data` beside it (e.g. a copy made by `mislab data fetch --dir`).
SHARED_DATA_ENV = "MISLAB_SHARED_DATA"

_URL_SCHEMES = ("http://", "https://", "file://")


@dataclass(frozen=True)
class DataSet:
    """Third-party files kept in one sub-directory (`name`) of a data directory: each file's sha256 by its path
    there, the public `source` they come from, and `fetch(directory, source)`, which writes them all into
    `directory` verified (the source may be replaced by a mirror, a file:// URL or a local path)."""

    name: str
    title: str
    files: Mapping[str, str]
    source: str
    fetch: Callable[[Path, str], object]


def data_sets() -> dict[str, DataSet]:
    """Every data set the installed studies declare, by name."""
    from mislab.study import studies

    return {ds.name: ds for study in studies().values() for ds in study.data}


def pinned_files() -> dict[str, str]:
    """Every pinned file's sha256, by its path in a data directory (`<set>/<file>`)."""
    return {f"{ds.name}/{name}": digest for ds in data_sets().values() for name, digest in ds.files.items()}


class ChecksumError(MislabError, ValueError):
    """A fetched file is not the file we pinned (or nothing was pinned and the caller did not accept that)."""


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def user_data_dir() -> Path:
    """Where `mislab data fetch` puts the third-party data by default: `data/` in the user cache directory."""
    return cache_dir() / "data"


def data_dirs() -> list[Path]:
    """The data directories mislab reads, in order: $MISLAB_SHARED_DATA, `shared/data` beside the repository
    this file is in (a checkout), beside or under the working directory, and the user data directory."""
    candidates: list[Path] = []
    if os.environ.get(SHARED_DATA_ENV):
        candidates.append(Path(os.environ[SHARED_DATA_ENV]))
    # src/mislab/data/files.py -> parents[3] is the repository root.
    candidates.append(Path(__file__).resolve().parents[3].parent / "shared" / "data")
    candidates += [Path.cwd().parent / "shared" / "data", Path.cwd() / "shared" / "data", user_data_dir()]
    return candidates


def find_shared_data(relative: str) -> Path | None:
    """The first existing `<data dir>/<relative>` among `data_dirs()`."""
    for base in data_dirs():
        path = base / relative
        if path.exists():
            return path
    return None


def join_source(base: str | Path, name: str) -> str:
    """`name` inside `base`, where base is a URL (http, https, file) or a local directory."""
    base = str(base)
    if base.startswith(_URL_SCHEMES):
        return base.rstrip("/") + "/" + name
    return str(Path(base) / name)


def read_source(source: str | Path, timeout: float = 60.0) -> bytes:
    """The bytes at a URL (http, https or file) or a local path."""
    text = str(source)
    if text.startswith(_URL_SCHEMES):
        request = urllib.request.Request(text, headers={"User-Agent": "mislab"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: bytes = response.read()
            return body
    if "://" in text:
        raise ValueError(f"unsupported URL scheme (use http, https, file or a local path): {text}")
    return Path(text).read_bytes()


def verify_sha256(data: bytes, expected: str | None, what: str, *, allow_unpinned: bool = False) -> str:
    """Return the sha256 of `data`; raise ChecksumError unless it equals `expected`.

    `expected=None` means no trusted copy was available to pin: that is refused unless the caller says
    `allow_unpinned`, and the error gives the digest so it can be pinned after checking the file by hand.
    """
    got = sha256_hex(data)
    if expected is None:
        if not allow_unpinned:
            raise ChecksumError(
                f"{what}: no sha256 is pinned for this file (it has sha256 {got}); check it by hand and "
                "pass allow_unpinned=True to use it anyway"
            )
        return got
    if got != expected:
        raise ChecksumError(
            f"{what}: sha256 mismatch: expected {expected}, got {got}. The upstream file has changed or the "
            "download is corrupt; refusing to use it (results would not be comparable)"
        )
    return got


def verify_data_dir(directory: Path | None = None) -> dict[str, tuple[Path | None, str]]:
    """Each pinned file's path and state: "ok", "missing", or "sha256 mismatch (got …)". In `directory`, or
    without one, the file the studies read (the first data directory that has it, `find_shared_data`)."""
    states: dict[str, tuple[Path | None, str]] = {}
    for relative, digest in pinned_files().items():
        path = directory / relative if directory is not None else find_shared_data(relative)
        if path is None or not path.is_file():
            states[relative] = (path, "missing")
            continue
        got = sha256_hex(path.read_bytes())
        states[relative] = (
            path,
            "ok" if got == digest else f"sha256 mismatch (got {got[:12]}…, pinned {digest[:12]}…)",
        )
    return states


def fetch_all(directory: Path, sources: Mapping[str, str | Path] | None = None) -> Path:
    """Every declared data set into `directory` (one sub-directory each), every file verified; files already
    verified are kept. `sources` replaces a set's public source by name (a mirror, a file:// URL, a path)."""
    sources = dict(sources or {})
    sets = data_sets()
    unknown = sorted(set(sources) - set(sets))
    if unknown:
        raise KeyError(f"no data set {', '.join(unknown)} (known: {', '.join(sorted(sets))})")
    for name, ds in sets.items():
        ds.fetch(directory / name, str(sources.get(name, ds.source)))
    return directory


def fetch_verified(source: str | Path, dest: Path, sha256: str | None, *, allow_unpinned: bool = False) -> Path:
    """Copy `source` (URL or local path) to `dest` after checking its sha256; a verified `dest` is reused."""
    if sha256 is not None and dest.is_file() and sha256_hex(dest.read_bytes()) == sha256:
        return dest
    data = read_source(source)
    verify_sha256(data, sha256, str(source), allow_unpinned=allow_unpinned)
    write_atomic(dest, data)
    return dest


def write_atomic(dest: Path, data: bytes) -> None:
    # Write beside the target then rename, so an interrupted download never leaves a half file that a later
    # run would read.
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(dest)
