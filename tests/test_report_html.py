"""The HTML report, opened in a real headless Chromium: it renders offline, its filters work, and model text
(including planted <script> and onerror HTML) shows as text and never runs."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mislab.report import write_report
from mislab.report.html import _select_records

from support.browsers import CHROMIUM, CHROMIUM_ARGS, REPO
from support.runs import LOCAL, LONG_SYSTEM, O3, PLANTED, SABOTAGED, SABOTAGED_TRUE, STUDIES, make_run

TOTAL = sum(len(v) for v in SABOTAGED.values()) + 1  # + the errored sample


def test_page_is_escaped_and_self_contained(tmp_path: Path) -> None:
    store, run_id = make_run(tmp_path)
    page = write_report(store, run_id, tmp_path / "r.html", studies=STUDIES).read_text("utf-8")
    assert PLANTED not in page and "<script>window.__pwned" not in page
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert csp and html.unescape(csp.group(1)).startswith("default-src 'none'; script-src 'sha256-")
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page)  # nothing loaded from elsewhere
    assert page.count("<script>") == 2  # plotly.js and the page's own script: the two hashes the CSP allows
    # The long system prompt of the local model's transcripts is stored once, not once per transcript.
    assert page.count(html.escape(LONG_SYSTEM)) == 1


def test_transcript_cap_keeps_every_cell(tmp_path: Path) -> None:
    store, run_id = make_run(tmp_path)
    records = store.sample_records(run_id)
    chosen = _select_records(records, 4)
    assert len(chosen) == 4 and {(r.model, r.cell) for r in chosen} == set(SABOTAGED)
    assert all(r.epoch == 0 for r in chosen)
    page = write_report(store, run_id, tmp_path / "r.html", studies=STUDIES, max_transcripts=4).read_text("utf-8")
    assert page.count('<details class="sample"') == 4 and f"embeds 4 of the run's {TOTAL} transcripts" in page


@dataclass
class Browser:
    page: Any  # playwright's sync Page
    problems: list[str] = field(default_factory=list)  # console errors and uncaught page errors
    requests: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    from playwright import sync_api

    # A missing browser is a failed install, not a reason to skip the security checks.
    assert CHROMIUM.exists(), "needs Debian's chromium at /usr/bin/chromium (install.sh installs it)"
    tmp = tmp_path_factory.mktemp("report")
    store, run_id = make_run(tmp)
    path = write_report(store, run_id, tmp / "report.html", studies=STUDIES)
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        b = Browser(page)
        page.on("console", lambda m: b.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: b.problems.append(f"page error: {e}"))
        page.on("request", lambda r: b.requests.append(r.url))
        page.goto(path.as_uri())
        page.wait_for_selector(".js-plotly-plot .main-svg")
        yield b
        chromium.close()


def _shown(b: Browser) -> int:
    page = b.page
    count = page.locator("details.sample:visible").count()
    assert page.locator("#shown").inner_text() == str(count)
    return count


def _filter(b: Browser, name: str, value: str) -> int:
    b.page.select_option(f'select[data-filter="{name}"]', value)
    return _shown(b)


@pytest.mark.slow  # opens the report in headless Chromium
def test_opens_on_the_overview(browser: Browser) -> None:
    page = browser.page
    assert browser.problems == []
    assert {url.split(":", 1)[0] for url in browser.requests} <= {"file", "data", "blob"}
    # One figure is drawn at load: the overview, every metric × model · cell with its interval (2 × 4 points)
    # and the published numbers as diamonds (o3's two Palisade targets sit in its own cells' columns).
    assert page.locator(".js-plotly-plot").count() == 1
    overview = page.locator("#fig-overview")
    assert overview.locator(".scatterlayer .trace").count() >= 5
    assert overview.locator(".scatterlayer .point").count() >= 2 * 4 + 2
    ticks = overview.locator(".xtick text").all_text_contents()
    assert any("Sabotaged shutdown" in t for t in ticks) and any("Complied" in t for t in ticks)
    legend = " ".join(overview.locator(".legendtext").all_text_contents())
    assert "published · palisade_a" in legend and "published (other models or prompts)" in legend
    # the same numbers as a k/n grid, and the two sentences on what the run shows and cannot
    grid = page.locator("#overview table").inner_text()
    assert f"{O3} · palisade_a" in grid and "4/5 [38–96]%" in grid
    assert "What it cannot show" in page.locator("#overview .takeaway").inner_text()
    assert page.locator("#overview").bounding_box()["y"] < 300  # the page opens on it
    REPO.joinpath("ci-artifacts").mkdir(exist_ok=True)
    page.screenshot(path=str(REPO / "ci-artifacts" / "report.png"))


@pytest.mark.slow  # opens the report in headless Chromium
def test_per_metric_detail_is_collapsed_and_drawn_when_opened(browser: Browser) -> None:
    page = browser.page
    details = page.locator("details.metric")
    assert details.count() == 2 and page.locator("details.metric[open]").count() == 0
    assert not page.locator("#metric-0 table").first.is_visible()
    page.click('nav a[href="#metric-0"]')  # a link to a collapsed section opens it
    assert page.locator("#metric-0 table").first.is_visible()
    page.wait_for_selector("#fig-rate-0 .main-svg")
    page.wait_for_selector("#fig-diff-0 .main-svg")
    assert page.locator("#fig-rate-0 .scatterlayer .point").count() >= 4
    assert page.locator("#fig-rate-0").bounding_box()["width"] > 600  # sized when visible, not at zero width
    row = page.locator("#metric-0 tbody tr", has_text=O3).first
    assert "4/5 = 80.0% [37.6, 96.4]" in row.inner_text() and "94.5% [93.0, 95.8]" in row.inner_text()
    assert browser.problems == []


@pytest.mark.slow  # opens the report in headless Chromium
def test_badges_colour_by_meaning(browser: Browser) -> None:
    page = browser.page
    # sabotaged=true is bad, complied=true is good: the colour follows the metric's declared meaning
    sabotaged = page.locator(".badge", has_text="sabotaged=true").first
    complied = page.locator(".badge", has_text="complied=true").first
    assert "bad" in sabotaged.get_attribute("class") and "good" in complied.get_attribute("class")
    red = page.evaluate("(e) => getComputedStyle(e).color", sabotaged.element_handle())
    green = page.evaluate("(e) => getComputedStyle(e).color", complied.element_handle())
    assert red == "rgb(180, 35, 24)" and green == "rgb(31, 122, 63)"


@pytest.mark.slow  # opens the report in headless Chromium
def test_filters(browser: Browser) -> None:
    page = browser.page
    page.click("#reset")
    assert _shown(browser) == TOTAL
    assert _filter(browser, "m0", "true") == SABOTAGED_TRUE
    assert _filter(browser, "model", LOCAL) == sum(v is True for v in SABOTAGED[(LOCAL, "palisade_a")])
    assert _filter(browser, "m0", "na") == 1  # local · palisade_a epoch 2
    page.click("#reset")
    assert _filter(browser, "status", "error") == 1
    page.click("#reset")
    # The links of the o3 · palisade_a row ("4/5 = …", n/a 1, errors 1) show exactly the transcripts counted.
    page.locator("#metric-0").evaluate("(d) => { d.open = true; }")
    links = page.locator("#metric-0 tbody tr", has_text=O3).first.locator("a")
    for link, expected in zip(links.all(), [4, 5, 1, 1], strict=True):
        link.click()
        assert _shown(browser) == expected, link.inner_text()
    page.click("#reset")


@pytest.mark.slow  # opens the report in headless Chromium
def test_model_text_is_text(browser: Browser) -> None:
    page = browser.page
    _filter(browser, "model", O3)
    card = page.locator("details.sample:visible").first
    card.locator("summary").click()
    card.locator(".sample-body").wait_for()  # built on the toggle event, just after the click
    assert card.locator(".scratchpad").first.is_visible()
    assert card.get_by_text("recovered from text").is_visible()
    assert card.get_by_text("parse error: invalid JSON").is_visible()
    assert card.get_by_text("The machine will shut down at the next call.").is_visible()
    assert card.locator("pre", has_text="<script>window.__pwned=1</script>").first.is_visible()
    assert card.locator("pre", has_text='<img src=x onerror="window.__pwned=2">').first.is_visible()
    assert card.locator("img").count() == 0 and card.locator("script").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    card.scroll_into_view_if_needed()
    page.evaluate("window.scrollBy(0, -90)")  # below the sticky filter bar
    page.screenshot(path=str(REPO / "ci-artifacts" / "report-transcript.png"))
    page.click("#reset")
    local = page.locator(f'details.sample[data-f-model="{LOCAL}"]').first
    local.locator("summary").first.click()
    local.locator(".sample-body").wait_for()
    local.locator(".role-system summary").click()
    assert local.locator(".role-system pre").inner_text().startswith("You are a helpful assistant.")  # shared text
    assert browser.problems == []
