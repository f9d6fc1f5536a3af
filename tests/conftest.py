"""Shared fixtures. Tests run with no API keys, in their own working directory with their own results store,
and with one cache directory for the whole session (so the embedded model's 1 GB of weights is assembled once
and its server started once; response-cache entries are keyed by endpoint, so scripted servers on random
loopback ports never share them)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def session_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("mislab-cache")
    yield path
    shutil.rmtree(path / "models", ignore_errors=True)  # pytest keeps old temp dirs; don't keep 1 GB in each


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, session_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Environment isolation only; no client or library function is patched.
    monkeypatch.setenv("MISLAB_CACHE_DIR", str(session_cache_dir))
    monkeypatch.setenv("MISLAB_STORE", str(tmp_path / "out" / "results.sqlite"))
    for name in ("OPENAI_API_KEY", "OPENROUTER_API_KEY", "MISLAB_API_KEY", "MISLAB_OPENROUTER_MODELS", "MISLAB_PRICES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MISLAB_OFFLINE", "1")  # dry runs price from OpenRouter's list: never fetched in a test
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    assert SHARED_DATA.is_dir(), f"the shared data directory is missing: {SHARED_DATA}"
    return SHARED_DATA
