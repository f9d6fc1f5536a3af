"""Where the third-party alignment-faking data comes from, and how it is fetched and checked.

The paper prompts, ARENA's judges and AdvBench are written by others and are never copied into this
repository: they are read at run time from a data directory laid out like `shared/data` — $MISLAB_SHARED_DATA,
a `shared/data` beside the repository or the working directory, or the user's data directory that
`mislab data fetch` fills from the public sources, every file checked against a pinned sha256.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

from mislab.config import cache_dir

# Set this to a directory laid out like `shared/data` (with `alignment_faking/`, `advbench/`) when mislab is
# installed somewhere that has no `../shared/data` beside it (e.g. a copy made by `mislab data fetch --dir`).
SHARED_DATA_ENV = "MISLAB_SHARED_DATA"

# sha256 of the files in shared/data/alignment_faking, which are the ARENA constants byte for byte (see
# SOURCES.md). A downloaded or extracted copy must match these before it is used.
PAPER_FILE_SHA256: dict[str, str] = {
    "examples.json": "3aaf2e0375393d94273935a0deedafa3cf0fc28d2dc856167854bcf6d5084359",
    "system_prompt_no_scratchpad.txt": "dc9336e5577215dc5b96b17d93fe49cced46507882e9b8b05b4c27ee32bcd051",
    "system_prompt_scratchpad.txt": "e4fc1f7a18992a7024cf093971ac4ed75b2b91fbfa5ed772da09b37b22cb83f2",
    "user_prompt_template.txt": "c44251578b1cbc442d6a80e3964f9924f739a81d7e4fcc6cfc6959e1bb02dcdf",
    "judges/ALIGNMENT_REASONING_JUDGE_PROMPT.txt": "42d913e52590d6c9143d1ee7f0b435fed0d8335166cca0652599bf71b784954a",
    "judges/ALIGNMENT_REASONING_JUDGE_SYSTEM.txt": "b80651c47e579944756ba75b04860e5c4e4681b6abf310441be7f96fa5bc8d83",
    "judges/AUTORATER_PROMPT.txt": "869b267b8f31aff311cb8540934dd951938c39d2496668bd7f91da4b2f32c5c7",
    "judges/AUTORATER_SYSTEM.txt": "a7a717c538345c96d7a1f5418fd687619332fd5f05edc11c0dde6e78c7dd1610",
    "judges/CATEGORY_KEYWORDS.json": "c1df099fdf89901f0c9b44f22ea043c6d6a730d08f28e99ea5c14ffbc3ba451d",
    "judges/JUDGE_PROMPT.txt": "772a0abe440c7502be57d38ebb21cff14caa6c870085dcc8fa901ed08ec17093",
    "judges/JUDGE_SYSTEM.txt": "3256fb8b31a6181d0d129da8251e542152649a2af11e0c0839d67a948bc9babb",
}

# AdvBench `harmful_behaviors.csv` as published by llm-attacks (sha256 from SOURCES.md).
ADVBENCH_URL = "https://raw.githubusercontent.com/llm-attacks/llm-attacks/main/data/advbench/harmful_behaviors.csv"
ADVBENCH_SHA256 = "6cd1a5c63c07610d7eb67307772ee5606017ee950b5770ab288a2c487489d3e1"

# Every pinned third-party file, by its path in a data directory: what `mislab data verify` checks.
PINNED_FILES: dict[str, str] = {
    **{f"alignment_faking/{name}": digest for name, digest in PAPER_FILE_SHA256.items()},
    "advbench/harmful_behaviors.csv": ADVBENCH_SHA256,
}

_URL_SCHEMES = ("http://", "https://", "file://")


class ChecksumError(ValueError):
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
    # src/mislab/alignment_faking/sources.py -> parents[3] is the repository root.
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
            return response.read()
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


def verify_data_dir(directory: Path) -> dict[str, str]:
    """Each pinned file's state in `directory`: "ok", "missing", or "sha256 mismatch (got …)"."""
    states: dict[str, str] = {}
    for relative, digest in PINNED_FILES.items():
        path = directory / relative
        if not path.is_file():
            states[relative] = "missing"
            continue
        got = sha256_hex(path.read_bytes())
        states[relative] = "ok" if got == digest else f"sha256 mismatch (got {got[:12]}…, pinned {digest[:12]}…)"
    return states


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
