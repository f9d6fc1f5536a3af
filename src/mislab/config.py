"""Where mislab keeps things, and how it finds secrets. Secrets are read here and passed to clients only."""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values
from platformdirs import user_cache_dir


def cache_dir() -> Path:
    """The user cache directory (assembled weights, the response cache, server logs)."""
    path = Path(os.environ.get("MISLAB_CACHE_DIR") or user_cache_dir("mislab"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_store_path() -> Path:
    """The results store: `./mislab-out/results.sqlite` unless MISLAB_STORE says otherwise."""
    return Path(os.environ.get("MISLAB_STORE") or Path.cwd() / "mislab-out" / "results.sqlite")


def read_secret(name: str) -> str | None:
    """An API key from the environment or, failing that, a `.env` in the working directory.

    The `.env` is read without exporting it to os.environ so it never leaks into subprocesses.
    """
    value = os.environ.get(name)
    if value:
        return value
    env_file = Path.cwd() / ".env"
    if env_file.is_file():
        return dotenv_values(env_file).get(name) or None
    return None
