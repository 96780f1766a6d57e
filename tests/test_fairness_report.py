"""The HTML report: sections, escaping, languages, no external references, and a render in headless Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sandbox import FairnessInputError, Policy, QueryError
from sandbox.fairness import audit_predictions

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _audit(with_features: bool = True, n: int = 6_000):
    rng = np.random.default_rng(11)
    sf = pd.DataFrame(
        {
            "gender": rng.choice(["man", "vrouw"], n),
            "migration_background": rng.choice(
                ["Nederland", "Europa", "buiten Europa", "<script>x</script>"], n, p=[0.6, 0.15, 0.2, 0.05]
            ),
        }
    )
    yt = rng.integers(0, 2, n)
    worse = (sf["migration_background"] == "buiten Europa").to_numpy()
    yp = np.where(rng.random(n) < np.where(worse, 0.6, 0.85), yt, 1 - yt)
    score = np.clip(0.5 * yp + 0.25 + rng.normal(0, 0.1, n), 0, 1)
    features = (
        pd.DataFrame(
            {
                "postcode_area": np.where(worse, rng.choice(["30", "31"], n), rng.choice(["10", "11", "12", "30"], n)),
                "income": rng.normal(30_000, 8_000, n),
            }
        )
        if with_features
        else None
    )
    pol = Policy.from_mapping(
        {
            "fairness": {
                "protected_attributes": ["gender", "migration_background"],
                "intersections": [["gender", "migration_background"]],
                "definition_reason": "Missed households & wrong flags are the harm.",
            }
        }
    )
    return audit_predictions(yt, yp, sf, y_score=score, policy=pol, n_boot=200, random_state=0, features=features)


@pytest.fixture(scope="module")
def audit():
    return _audit()


@pytest.fixture(scope="module")
def html_en(audit) -> str:
    return audit.to_html(lang="en")


def test_report_has_every_section_in_order_and_summary_first(html_en: str) -> None:
    html = html_en
    ids = re.findall(r'<section id="([a-z]+)"', html)
    assert ids == ["summary", "figures", "direct", "indirect", "definition", "significance", "limitations", "tables"]
    assert "Verdict" in html and "equal error rates" in html
    assert "Missed households &amp; wrong flags are the harm." in html


def test_report_is_self_contained_and_escaped(audit, html_en: str) -> None:
    html = html_en
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert not re.search(r"(src|href)=\"(?!data:)", html)
    assert "http://" not in html and "https://" not in html
    assert html.count("data:image/png;base64,") == 1 + len(audit.rules.facets)


def test_dutch_report(audit) -> None:
    html = audit.to_html(lang="nl")
    for words in (
        "Samenvatting",
        "Direct onderscheid",
        "Indirect onderscheid (proxy's)",
        "Fairness-definitie",
        "Significantie",
        "Beperkingen",
        "gelijke foutpercentages",
    ):
        assert words.replace("'", "&#x27;") in html, words
    with pytest.raises(FairnessInputError, match=r"lang must be one of \('en', 'nl'\), got 'de'"):
        audit.to_html(lang="de")


def test_proxy_and_calibration_in_report(audit, html_en: str) -> None:
    assert ("postcode_area", "migration_background") in audit.proxies.flagged
    assert ("income", "migration_background") not in audit.proxies.flagged
    html = html_en
    assert "The model uses none of the protected attributes and none of the forbidden features" in html
    assert "Calibration by group" in html and "postcode_area" in html
    assert "_repr_html_" in dir(audit) and audit._repr_html_().startswith('<div class="sandbox-fairness">')


def test_forbidden_feature_is_refused() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(QueryError, match=r"'nationality_NL' \(forbidden: 'nationality'\) under policy 'default'"):
        audit_predictions(
            rng.integers(0, 2, 10),
            rng.integers(0, 2, 10),
            {"gender": ["m", "v"] * 5},
            n_boot=50,
            features=pd.DataFrame({"nationality_NL": rng.integers(0, 2, 10)}),
        )


@pytest.mark.browser
def test_report_renders_in_headless_chromium(audit) -> None:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Chromium is installed by scripts/sysdeps.sh (make sysdeps)"
    ARTIFACTS.mkdir(exist_ok=True)
    page_file = ARTIFACTS / "fairness_report.html"
    audit.write_html(str(page_file), lang="nl")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.route(
                "**/*", lambda route: route.abort() if not route.request.url.startswith("file:") else route.continue_()
            )
            page.goto(page_file.as_uri())
            summary = page.locator("#summary")
            assert summary.is_visible() and "Oordeel" in summary.inner_text()
            images = page.locator("img.plot")
            assert images.count() == 1 + len(audit.rules.facets)
            for i in range(images.count()):
                img = images.nth(i)
                assert img.is_visible()
                assert img.evaluate("e => e.complete && e.naturalWidth > 100 && e.naturalHeight > 50")
            page.screenshot(path=str(ARTIFACTS / "fairness_report.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "fairness_report.png").stat().st_size > 10_000


def test_direct_distinction_names_protected_attributes_used_as_features() -> None:
    rng = np.random.default_rng(2)
    n = 400
    sf = pd.DataFrame({"gender": rng.choice(["man", "vrouw"], n)})
    features = pd.DataFrame({"gender": sf["gender"], "income": rng.normal(size=n)})
    audit = audit_predictions(rng.integers(0, 2, n), rng.integers(0, 2, n), sf, n_boot=50, features=features)
    html = audit.to_html()
    assert "The model uses protected attributes as features: gender." in html
    assert "model_features" in audit.to_dict() and audit.to_dict()["model_features"] == ["gender", "income"]


def test_write_html_to_an_unwritable_path_names_it(audit, tmp_path: Path) -> None:
    from sandbox import OutputPathError

    target = tmp_path / "missing-dir" / "report.html"
    with pytest.raises(OutputPathError, match=r"cannot write the report to .*report.html.*choose a writable path"):
        audit.write_html(str(target))
