"""The picture of a report for the docs and the README: the page opened in Debian's headless Chromium (as the
tests open it), at a reading width, once its overview figure is drawn.

    .venv/bin/python docs/hooks/screenshot.py mislab-out/reports/demo.html docs/assets/demo-report.png"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def main(report: Path, out: Path) -> None:
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.goto(report.resolve().as_uri())
        page.wait_for_selector("#fig-overview .main-svg")
        page.screenshot(path=str(out))
        browser.close()
    if problems:
        sys.exit(f"the report logged errors: {problems}")
    print(f"{out}: {report} at 1100×760")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
