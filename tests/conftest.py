"""Shared fixtures. Every test runs with its own cache directory, so nothing leaks between tests or into the
user's cache, and with no API keys in the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Environment isolation only; no client or library function is patched.
    monkeypatch.setenv("MISLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MISLAB_STORE", str(tmp_path / "out" / "results.sqlite"))
    for name in ("OPENAI_API_KEY", "OPENROUTER_API_KEY", "MISLAB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    assert SHARED_DATA.is_dir(), f"the shared data directory is missing: {SHARED_DATA}"
    return SHARED_DATA
