"""The review page in headless Chromium at 1280 px: readable, in Dutch and English, and a sign-off that works.

A live vault (uvicorn in a thread on 127.0.0.1, a free port, stopped by the fixture) serves a synthetic population
of 2,000 households. The analyst asks to release a DP table with a DP model (fitted in the vault) and its fairness
audit; a second request carries an audit whose groups are too small ("insufficient evidence"). The tests check:

- at 1280 px the page does not scroll sideways (``scrollWidth <= 1280``) and shows the model card, the gap chart,
  the rate charts, the spend and disclosure tables and both report links, in Dutch and in English, with the
  schema's labels; no console error and no CSP violation;
- the "insufficient evidence" label is shown at the top and again above the approve button;
- a reviewer reads the request, opens the Dutch report in a new tab, is refused for "ok" (the reason shown beside
  the approve button), approves with reasons, a second reviewer approves, and the request is released: outbox
  manifest with both approvers and ``sandbox verify`` ok.

Screenshots go to ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _review_live import FAIR_COUNTS, SMALL_COUNTS, LiveVault, live_vault

pytestmark = [pytest.mark.browser, pytest.mark.system]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FEATURES = ["income_band", "arrears_energy", "housing"]


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import synthetic

    root = tmp_path_factory.mktemp("review_browser")
    population = synthetic.write_population(root / "population", 2_000, seed=5)
    names = [("alice", "analyst"), ("rianne", "reviewer"), ("bram", "reviewer")]
    with live_vault(root / "workspace", population, names) as live:
        target = "registered_problematic_debt"
        fair = live.model_request("Vroegsignalering schulden v1", features=FEATURES, target=target, counts=FAIR_COUNTS,
                                  table_by="housing")  # fmt: skip
        small = live.model_request("Vroegsignalering kleine groepen", features=FEATURES[:2], target=target,
                                   counts=SMALL_COUNTS)  # fmt: skip
        assert fair.status == small.status == "pending_review", (fair.reasons, small.reasons)
        yield {"live": live, "fair": fair.id, "small": small.id}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: run `make sysdeps`")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


_EXPECTED_4XX = "Failed to load resource: the server responded with a status of 400"


class Session:
    """One reviewer's tab: logs in, opens requests, records console errors and CSP violations."""

    def __init__(self, browser: Any, live: LiveVault, reviewer: str, lang: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="nl-NL")
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))
        self.page.goto(f"{live.url}/review?lang={lang}")
        self.page.fill("#token", live.tokens[reviewer])
        self.page.click("#login")
        self.page.wait_for_selector("#list a.open-request")

    def _console(self, message: Any) -> None:
        # a refused decision is an HTTP 400 the page shows beside its button: expected, not a problem
        if message.type == "error" and not message.text.startswith(_EXPECTED_4XX):
            self.problems.append(message.text)

    def open(self, request_id: str) -> None:
        self.page.click(f"#list a[data-id='{request_id}']")
        self.page.wait_for_selector(f"article.request[data-request='{request_id}'] .decision")

    def decide(self, action: str, comment: str) -> Any:
        self.page.fill("#comment", comment)
        self.page.click(f"#act-{action}")
        box = self.page.locator(f".feedback[data-for='{action}']")
        self.page.wait_for_function(
            f"() => document.querySelector(\".feedback[data-for='{action}']\").textContent.length > 0"
        )
        return box

    def close(self) -> None:
        self.context.close()


def _beside(page: Any, button: str, feedback: Any) -> None:
    """The feedback is on the button's row, to its right, and in view."""
    b, f = page.locator(button).bounding_box(), feedback.bounding_box()
    assert b and f, (b, f)
    assert abs((b["y"] + b["height"] / 2) - (f["y"] + f["height"] / 2)) < b["height"], (b, f)
    assert f["x"] >= b["x"] + b["width"], (b, f)
    assert page.evaluate("(y) => y >= 0 && y < window.innerHeight", f["y"]), f


WORDS = {
    "nl": ["Modelkaart", "Doelvariabele", "geregistreerde problematische schulden", "inkomensklasse",
           "Verschillen tussen groepen", "Privacybudget", "Onthullingscontrole (SDC)", "Fairnessrapport (Nederlands)",
           "Fairnessrapport (Engels)", "Grootste coëfficiënten", "Goedkeuren"],
    "en": ["Model card", "Target", "registered problematic debt", "income band", "Gaps between groups",
           "Privacy spend", "Disclosure control (SDC)", "Fairness report (Dutch)", "Fairness report (English)",
           "Largest coefficients", "Approve"],
}  # fmt: skip


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_review_page_at_1280px(vault: dict[str, Any], browser: Any, lang: str) -> None:
    s = Session(browser, vault["live"], "rianne", lang)
    try:
        s.open(vault["fair"])
        page = s.page
        widths = page.evaluate("[document.documentElement.scrollWidth, document.body.scrollWidth, innerWidth]")
        assert max(widths[:2]) <= 1280, widths
        text = page.inner_text("#detail")
        missing = [w for w in WORDS[lang] if w not in text]
        assert not missing, missing
        assert page.locator(".model-card").count() == 1 and page.locator(".model-card table.coef tr").count() >= 4
        assert page.locator("svg.chart[id^='gap-']").is_visible()
        assert page.locator("svg.chart[id^='gap-'] circle").count() == 1  # one decisive gap: gender
        assert page.locator("svg.chart[id^='rate-'] circle").count() >= 2
        assert page.locator("table.spend tr").count() == 5 and page.locator("table.sdc tr").count() >= 2
        assert page.locator("table.requests").is_visible()
        page.screenshot(path=str(ARTIFACTS / f"review_page_{lang}_1280_full.png"), full_page=True)
        page.locator(".audit-card").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / f"review_page_{lang}_1280_audit.png"))
        s.open(vault["small"])
        label = {"nl": "onvoldoende bewijs", "en": "insufficient evidence"}[lang]
        top = page.locator("#warnings .insufficient")
        assert top.is_visible() and label in top.inner_text()
        in_panel = page.locator(".decision .insufficient")
        assert label in in_panel.inner_text()
        assert in_panel.bounding_box()["y"] < page.locator("#act-approve").bounding_box()["y"]
        page.locator(".decision").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / f"review_page_{lang}_1280_insufficient.png"))
        assert max(page.evaluate("[document.documentElement.scrollWidth, document.body.scrollWidth]")) <= 1280
        assert not s.problems, s.problems
    finally:
        s.close()


def test_two_reviewers_approve_after_reading(vault: dict[str, Any], browser: Any) -> None:
    live: LiveVault = vault["live"]
    request_id = vault["fair"]
    first = Session(browser, live, "rianne", "nl")
    try:
        first.open(request_id)
        page = first.page
        page.locator(".audit-card").scroll_into_view_if_needed()
        with first.context.expect_page() as opened:
            page.click("a.report-link[hreflang='nl']")
        report = opened.value
        report.wait_for_url("**/review/reports/sbr_*", timeout=120_000)  # about:blank first, then the one-use link
        report.wait_for_load_state()
        assert report.evaluate("document.documentElement.lang") == "nl"
        assert "Fairness-audit" in report.inner_text("body") and request_id in report.inner_text("body")
        report.screenshot(path=str(ARTIFACTS / "review_report_nl.png"))
        report.close()
        refused = first.decide("approve", "ok")
        assert "Geweigerd" in refused.inner_text() and "too short" in refused.inner_text()
        _beside(page, "#act-approve", refused)
        assert page.input_value("#comment") == "ok"  # the text stays to be improved
        reasons = (
            "Modelkaart, fairness-audit en beide rapporten gelezen: het verschil tussen geslachten blijft binnen de "
            "reviewdrempel; geen SDC-bevindingen; ε 1,7 past in het budget."
        )
        done = first.decide("approve", reasons)
        assert "vastgelegd" in done.inner_text() and "deels beoordeeld" in done.inner_text(), done.inner_text()
        _beside(page, "#act-approve", done)
        page.screenshot(path=str(ARTIFACTS / "review_approve_feedback_nl.png"))
        assert not first.problems, first.problems
    finally:
        first.close()
    second = Session(browser, live, "bram", "en")
    try:
        second.open(request_id)
        done = second.decide("approve", "Read the model card, the gap chart and the English report; spend is fine.")
        assert "recorded" in done.inner_text() and "released" in done.inner_text(), done.inner_text()
        _beside(second.page, "#act-approve", done)
        assert second.page.locator("#act-approve").is_disabled()  # the request is closed now
        second.page.screenshot(path=str(ARTIFACTS / "review_released_feedback_en.png"))
        assert not second.problems, second.problems
    finally:
        second.close()
    manifest = json.loads((live.workspace / "outbox" / f"rel-{request_id}" / "manifest.json").read_text())
    assert manifest["review"]["approvers"] == ["rianne", "bram"]
    from sandbox.cli import main

    assert main(["verify", "--workspace", str(live.workspace)]) == 0
