"""Debian's headless Chromium, as the report tests drive it through Playwright, and where screenshots go."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # screenshots land in REPO/ci-artifacts
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
