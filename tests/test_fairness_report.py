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


# --- power, insufficient evidence, and what the report belongs to ------------------------------------------------
def _small_audit():
    """Two groups of 150 with equal error rates: the gap is small, but 150 households cannot show it is."""
    rng = np.random.default_rng(3)
    n = 300
    sf = pd.DataFrame({"gender": np.repeat(["man", "vrouw"], n // 2)})
    yt = rng.random(n) < 0.4
    yp = np.where(yt, rng.random(n) < 0.7, rng.random(n) < 0.2)
    pol = Policy.from_mapping({"fairness": {"protected_attributes": ["gender"], "intersections": []}})
    return audit_predictions(yt, yp, sf, policy=pol, n_boot=200, random_state=0)


def test_small_sample_audit_shows_power_and_insufficient_evidence_before_anything_else() -> None:
    audit = _small_audit()
    ev = audit.evidence
    assert audit.verdict.status == "review" and ev.insufficient
    (gap,) = ev.gaps
    fail = audit.rules.thresholds["equalized_odds_difference"].fail
    assert gap.metric == "equalized_odds" and gap.detectable_gap > fail and not gap.detects_threshold
    assert ev.undetectable == (gap,)
    for lang, label, power in (
        ("en", "insufficient evidence: this audit cannot show the model is fair", "Power"),
        ("nl", "onvoldoende bewijs: deze audit kan niet aantonen dat het model eerlijk is", "Onderscheidend vermogen"),
    ):
        page = audit.to_html(lang=lang)
        summary = page.split('<section id="summary"', 1)[1].split("</section>", 1)[0]
        assert label in summary and 'id="insufficient-evidence"' in summary
        assert summary.index(label) < summary.index('id="power"')  # the label first, then the power figures
        assert power in summary and f"{gap.detectable_gap * 100:.1f}" in summary
        assert page.index(label) < page.index('<section id="figures"')
    d = audit.to_dict()
    assert d["verdict"]["insufficient_evidence"] is True
    assert d["evidence"]["insufficient"] is True and d["evidence"]["attributes"] == ["gender"]
    assert d["evidence"]["label"]["nl"].startswith("onvoldoende bewijs")
    (entry,) = d["evidence"]["detectable_gaps"]
    assert entry["detects_fail_threshold"] is False and entry["detectable_gap"] == pytest.approx(gap.detectable_gap)
    assert "insufficient evidence" in audit.verdict.reason


def test_a_large_fair_audit_is_not_labelled_insufficient(audit) -> None:
    rng = np.random.default_rng(4)
    n = 200_000
    sf = pd.DataFrame({"gender": rng.choice(["man", "vrouw"], n)})
    yt = rng.random(n) < 0.4
    yp = np.where(yt, rng.random(n) < 0.7, rng.random(n) < 0.2)
    pol = Policy.from_mapping({"fairness": {"protected_attributes": ["gender"], "intersections": []}})
    big = audit_predictions(yt, yp, sf, policy=pol, n_boot=200, random_state=0)
    assert big.verdict.status == "pass" and not big.evidence.insufficient
    assert big.evidence.gaps[0].detects_threshold
    html = big.to_html()
    summary = html.split('<section id="summary"', 1)[1].split("</section>", 1)[0]
    assert "insufficient evidence" not in summary and 'id="insufficient-evidence"' not in html
    assert 'id="power"' in summary
    assert big.to_dict()["evidence"]["label"] is None


def test_equal_opportunity_is_not_repeated_and_only_decisive_metrics_are_coloured(audit, html_en: str) -> None:
    from sandbox.fairness._private.report_plots import bar_colours

    assert audit.rules.decisive_metrics == ("equalized_odds",)
    table = html_en.split("<h3>Disparities</h3>", 1)[1].split("</table>", 1)[0]
    rows = table.split("<tr>")[2:]
    assert rows and not any("<td>equal opportunity" in r for r in rows)
    assert "is part of each equalized-odds line and is not repeated" in html_en
    assert "equal opportunity difference" not in audit.verdict.reason
    for r in rows:
        coloured = re.findall(r'class="badge (pass|review|fail)"', r)
        if "<td>equalized odds *</td>" in r and "<td>between groups</td>" in r:
            assert len(coloured) == 1, r
        else:
            assert not coloured, r  # decides nothing: grey, never red
    d = audit.disparities
    colours = bar_colours(d)
    grey = "#57606a"
    assert all(c == grey for c, dec in zip(colours, d["decisive"], strict=True) if not dec)
    assert any(c != grey for c in colours)


def test_dutch_report_uses_the_callers_dutch_labels() -> None:
    import synthetic

    rng = np.random.default_rng(8)
    n = 4_000
    sf = pd.DataFrame(
        {
            "gender": rng.choice(["male", "female"], n),
            "migration_background": rng.choice(["nederland", "buiten_europa"], n),
        }
    )
    yt, yp = rng.integers(0, 2, n), rng.integers(0, 2, n)
    pol = Policy.from_mapping(
        {
            "fairness": {
                "protected_attributes": ["gender", "migration_background"],
                "intersections": [["gender", "migration_background"]],
            }
        }
    )
    audit = audit_predictions(yt, yp, sf, policy=pol, n_boot=100, random_state=0)
    labels = {
        a: {c: nl for c, (nl, _) in synthetic.CATEGORY_LABELS[a].items()} for a in ("gender", "migration_background")
    }
    names = {"gender": "geslacht", "migration_background": "migratieachtergrond"}
    html = audit.to_html(lang="nl", labels=labels, attribute_labels=names)
    assert "<td>geslacht × migratieachtergrond</td>" in html and "<td>vrouw × buiten Europa</td>" in html
    assert "buiten_europa" not in html and ">female<" not in html
    assert "buiten_europa" in audit.to_html(lang="nl")  # without labels the codes stay
    with pytest.raises(FairnessInputError, match=r"labels\['gender'\]\['male'\] must be a non-empty label"):
        audit.to_html(lang="nl", labels={"gender": {"male": ""}})


def test_report_says_what_it_belongs_to() -> None:
    rng = np.random.default_rng(9)
    sf = pd.DataFrame({"gender": rng.choice(["man", "vrouw"], 2_000)})
    audit = audit_predictions(rng.integers(0, 2, 2_000), rng.integers(0, 2, 2_000), sf, n_boot=100, random_state=0)
    assert len(audit.rules.policy_sha256) == 64  # the shipped default policy, loaded from its file
    meta = {
        "request": "req-0007 Vroegsignalering v1",
        "model": "res-m-42",
        "target": "registered_problematic_debt",
        "features": ["income_band", "arrears_energy"],
        "dataset": "households",
        "dataset_version": 3,
        "author": "analist.a",
        "policy_sha256": audit.rules.policy_sha256,
    }
    html = audit.to_html(lang="nl", metadata=meta)
    about = html.split('<section id="about">', 1)[1].split("</section>", 1)[0]
    assert html.index('<section id="about">') < html.index('<section id="summary"')
    for word in ("vrijgaveverzoek", "req-0007 Vroegsignalering v1", "income_band, arrears_energy", "analist.a"):
        assert word in about
    assert f"<td>{audit.rules.policy_sha256}</td>" in about and "<td>3</td>" in about
    assert "warning" not in about
    other = audit.to_html(metadata={**meta, "policy_sha256": "0" * 64})
    assert 'class="mismatch"' in other and f"but this audit applied policy {audit.rules.policy_sha256[:12]}" in other
    with pytest.raises(FairnessInputError, match=r"unknown report metadata \['modle'\]; the fields are"):
        audit.to_html(metadata={"modle": "x"})
