"""The review page without a browser: the comment rule, number formatting, charts, fragments, the report endpoint.

- the comment rule of decisions (``vault/gate/comment_rule.py``) against a table of refused and accepted comments,
  in the pure workflow and through the vault's HTTP API (so no client can skip it);
- numbers rounded for reading, in Dutch and English, against hand-written expected strings;
- the SVG charts parse as XML and place each estimate between its interval's ends;
- the page's fragments from a real DP model and audit (fitted and audited in the vault on the test population):
  no 17-digit float, every analyst-written text escaped, Dutch and English, reviewer-only;
- the report endpoint and its one-use links: reviewer-only (an analyst gets 403, as on ``GET /v1/verify``), 404 for
  an item that is no audit, a CSP that allows the report's own styles and no script.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from _review_live import FAIR_COUNTS, SMALL_COUNTS, LiveVault, live_vault

from sandbox._private.shared.errors import ReleaseError
from sandbox._private.vault.gate.comment_rule import MIN_CHARACTERS, check_decision_comment
from sandbox._private.vault.gate.workflow import Actor, RequestState, Vote, apply
from sandbox._private.vault.http import review_format as fmt
from sandbox._private.vault.http.review_charts import GapRow, RateRow, gap_chart, nice_ticks, rate_chart
from sandbox._private.vault.http.review_i18n import TEXT, Labels, choose_lang
from sandbox._private.vault.http.review_report import ReportTickets, Ticket
from sandbox._private.vault.http.review_view import RequestPage, request_fragment

BOB, ERIN = Actor("bob", "reviewer"), Actor("erin", "reviewer")
GOOD = "Counts per household type answer the purpose; no SDC findings; ε 0.3."

# --- the comment rule ----------------------------------------------------------------------------------------------

REFUSED = [
    ("approve", "", "needs a comment"),
    ("approve", "   ", "needs a comment"),
    ("approve", "ok", "too short"),
    ("approve", "OK!", "too short"),
    ("approve", "lgtm", "too short"),
    ("approve", "prima", "too short"),
    ("approve", "+1", "too short"),
    ("approve", "Akkoord.", "too short"),
    ("approve", "checked it", "too short"),
    ("approve", "ok ok ok ok ok ok ok ok ok ok", "stock approval"),
    ("approve", "lgtm lgtm lgtm lgtm lgtm lgtm", "stock approval"),
    ("approve", "Looks good to me, approved, fine by me", "stock approval"),
    ("approve", "Ziet er goed uit, akkoord, geen bezwaar", "stock approval"),
    ("approve", "Prima, prima, prima! Akkoord akkoord.", "stock approval"),
    ("reject", "no", "too short"),
    ("reject", "", "needs a comment"),
    ("return", "fix it", "too short"),
    ("return", "Not ok, not good, not fine at all", "stock approval"),
]
ACCEPTED = [
    ("approve", GOOD),
    ("approve", "Doel en SDC gecontroleerd, akkoord."),
    ("approve", "Audit read: the gender gap interval stays below 0.05; spend ε 1.5 fits the budget."),
    ("reject", "Housing is out of scope of this study's purpose."),
    ("return", "Please add the purpose: which municipalities will use this table?"),
    ("comment", "ok"),  # a plain comment needs only to be non-empty
    ("respond", "done"),
]


@pytest.mark.parametrize(("action", "text", "match"), REFUSED)
def test_the_comment_rule_refuses(action: str, text: str, match: str) -> None:
    with pytest.raises(ReleaseError, match=match):
        check_decision_comment(action, text)


@pytest.mark.parametrize(("action", "text"), ACCEPTED)
def test_the_comment_rule_accepts(action: str, text: str) -> None:
    check_decision_comment(action, text)


def test_an_approval_in_the_reviewers_own_words() -> None:
    earlier = [("bob", GOOD)]
    with pytest.raises(ReleaseError, match="repeats the comment of bob"):
        check_decision_comment("approve", GOOD.upper().replace(";", ","), on_request=earlier)
    with pytest.raises(ReleaseError, match="your approval of request req_1"):
        check_decision_comment("approve", GOOD, own_approvals=[("req_1", GOOD)])
    for action in ("reject", "return"):  # a second reviewer may give the first one's reason
        check_decision_comment(action, GOOD, on_request=earlier, own_approvals=[("req_1", GOOD)])
    assert MIN_CHARACTERS == 20


def test_the_workflow_applies_the_rule() -> None:
    state = RequestState("req-1", "alice", required=2, status="submitted")
    with pytest.raises(ReleaseError, match="too short"):
        apply(state, "approve", BOB, comment="ok")
    with pytest.raises(ReleaseError, match="too short"):
        apply(state, "return", BOB, comment="nee")
    mid = apply(state, "approve", BOB, comment=GOOD).state
    with pytest.raises(ReleaseError, match="repeats the comment of bob"):
        apply(mid, "approve", ERIN, comment=GOOD)
    done = apply(mid, "approve", ERIN, comment="Read the audit and the spend; the table has no small cells.")
    assert done.state.status == "approved"
    # a refusal of the action itself comes first: bob voted already
    with pytest.raises(ReleaseError, match="already voted"):
        apply(replace(state, votes=(Vote("bob", "approve", 1, GOOD),)), "approve", BOB, comment="ok")


# --- number formatting ---------------------------------------------------------------------------------------------

FORMATS = [
    (fmt.number, (0.0060717826469936925, "en"), "0.006"),
    (fmt.number, (0.0060717826469936925, "nl"), "0,006"),
    (fmt.number, (20036.0, "nl", 0), "20.036"),
    (fmt.number, (20036.0, "en", 0), "20,036"),
    (fmt.number, (-0.0004, "en"), "0.000"),
    (fmt.number, (-0.015, "en"), "\u22120.015"),
    (fmt.number, (float("nan"), "en"), "\u2013"),
    (fmt.number, (None, "nl"), "\u2013"),
    (fmt.number, (True, "nl"), "\u2013"),
    (fmt.significant, (3.3333333333333335, "en"), "3.33"),
    (fmt.significant, (125.97944007571883, "nl"), "126"),
    (fmt.significant, (-9.834534340571087, "nl"), "\u22129,83"),
    (fmt.significant, (9.996, "en"), "10.0"),
    (fmt.significant, (262563.3, "en"), "262,563"),
    (fmt.significant, (1.2e-9, "en"), "1.20e\u221209"),
    (fmt.significant, (0, "en"), "0"),
    (fmt.count, (11608.4, "nl"), "11.608"),
    (fmt.count, (7957, "en"), "7,957"),
    (fmt.epsilon, (1.7999999999999998, "en"), "1.8"),
    (fmt.epsilon, (1.9499999999999993, "nl"), "1,95"),
    (fmt.epsilon, (0.0125, "en"), "0.0125"),
    (fmt.epsilon, (2.0, "en"), "2"),
    (fmt.interval, (0.047, -0.015, 0.108, "en"), "0.047 (\u22120.015 to 0.108)"),
    (fmt.interval, (0.047, -0.015, 0.108, "nl"), "0,047 (\u22120,015 tot 0,108)"),
    (fmt.interval, (0.047, None, 0.108, "nl"), "0,047"),
]


@pytest.mark.parametrize(("func", "args", "expected"), FORMATS)
def test_numbers_are_rounded_for_reading(func: Any, args: tuple[Any, ...], expected: str) -> None:
    assert func(*args) == expected


def test_language_choice_and_texts() -> None:
    assert choose_lang("en", "nl-NL,nl;q=0.9") == "en"
    assert choose_lang(None, "en-GB,en;q=0.8,nl;q=0.5") == "en"
    assert choose_lang(None, "de-DE,nl;q=0.5") == "nl"
    assert choose_lang(None, None) == "nl"
    assert all(set(v) == {"nl", "en"} and all(v.values()) for v in TEXT.values())
    source = "".join(p.read_text() for p in Path("sandbox/_private/vault/http").glob("review_*.py"))
    used = set(re.findall(r"\bt\(\"(\w+)\"", source))
    assert used and used <= set(TEXT), sorted(used - set(TEXT))


# --- charts --------------------------------------------------------------------------------------------------------


def _circles(svg: str) -> list[float]:
    root = ET.fromstring(svg)
    return [float(c.get("cx", "nan")) for c in root.iter("{http://www.w3.org/2000/svg}circle")]


def test_gap_chart_places_estimates_inside_their_intervals() -> None:
    rows = [
        GapRow("gender", 0.02, -0.01, 0.05, 0.05, 0.1, "pass"),
        GapRow("age <script>", 0.12, 0.02, 0.2, 0.05, 0.1, "review"),
        GapRow("migration", 0.3, 0.15, 0.4, 0.05, 0.1, "fail"),
    ]
    svg = gap_chart(rows, "en")
    root = ET.fromstring(svg)  # well-formed, so the label was escaped
    assert "age &lt;script&gt;" in svg and "<script" not in svg
    xs = _circles(svg)
    assert xs == sorted(xs) and len(xs) == 3
    lines = [e for e in root.iter("{http://www.w3.org/2000/svg}line") if e.get("class", "").startswith("ci ")]
    for line, x in zip(lines, xs, strict=True):
        assert float(line.get("x1", "nan")) < x < float(line.get("x2", "nan"))
    review = [float(e.get("x1", "nan")) for e in root.iter() if e.get("class") == "thr-review"]
    fail = [float(e.get("x1", "nan")) for e in root.iter() if e.get("class") == "thr-fail"]
    assert len(review) == len(fail) == 3 and all(r < f for r, f in zip(review, fail, strict=True))
    assert gap_chart([], "en") == ""


def test_rate_chart_and_ticks() -> None:
    rows = [RateRow("gender", header=True), RateRow("female", 0.2, 0.15, 0.25), RateRow("male", suppressed=True)]
    svg = rate_chart(rows, "Selection rate", "nl", overall=0.21)
    ET.fromstring(svg)
    assert "onderdrukt" in svg and len(_circles(svg)) == 1
    assert nice_ticks(0.0, 0.42) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert nice_ticks(-0.127, 0.36)[0] <= -0.127 and nice_ticks(-0.127, 0.36)[-1] >= 0.36


# --- fragments and the report, from a real DP model and audit ------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, small_population: Path) -> Iterator[LiveVault]:
    names = [("alice", "analyst"), ("bob", "reviewer"), ("erin", "reviewer"), ("root", "admin")]
    with live_vault(tmp_path_factory.mktemp("review") / "ws", small_population, names) as v:
        yield v


@pytest.fixture(scope="module")
def real(live: LiveVault) -> dict[str, Any]:
    """A request with a DP table, a DP model and the vault's own audit of it (real noise), offered to reviewers.

    The audit fails about 1 draw in 20 (15 of 300 runs of this fixture's first draw, each time on the equalized odds
    difference), and a failing audit blocks the request, which is then never offered to reviewers. So a blocked
    request is withdrawn and a new model (another ε: a new charge, not the stored answer) and audit are drawn, at
    most 3 draws: the fixture fails about once in 20³ = 8000 runs, and then says why.
    """
    import sandbox as sb
    from sandbox._private.kernel.release import release

    with live.ws() as ws:
        hh = ws.dataset("households")
        table = hh.count(by=["household_type"], epsilon=0.3)
        spec = sb.ModelSpec("logistic_regression", target="arrears", features=["urbanisation", "n_persons", "income"])
        title = 'Vroegsignalering <img src=x onerror="alert(1)">'
        for epsilon in (1.0, 0.9, 0.8):
            model = hh.fit(spec, epsilon=epsilon)
            audit = model.audit(protected=["household_type"], epsilon=0.5)
            req = release(ws._t, [table, model, audit], title=title, purpose="Doel <b>vet</b>")
            if req.status != "blocked":
                break
            refused = [r for r in req.reasons if "a possible proxy" not in r]  # proxies need review, never block
            assert refused and all("says fail: equalized odds difference" in r for r in refused), req.reasons
            req.withdraw()
        assert req.status == "pending_review", req.reasons
    return {"id": req.id, "model": model.id, "audit": audit.id, "table": table.id}


def _get(live: LiveVault, path: str, who: str = "bob", **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {live.tokens[who]}", **kw.pop("headers", {})}
    return httpx.get(live.url + path, headers=headers, timeout=120, **kw)


def _post(live: LiveVault, path: str, who: str = "bob", body: Any = None) -> httpx.Response:
    return httpx.post(live.url + path, json=body or {}, headers={"Authorization": f"Bearer {live.tokens[who]}"})


_LONG_FLOAT = re.compile(r"\d[.,]\d{7,}")


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_request_fragment_of_a_real_model_and_audit(live: LiveVault, real: dict[str, Any], lang: str) -> None:
    resp = _get(live, f"/review/fragments/requests/{real['id']}?lang={lang}")
    assert resp.status_code == 200, resp.text
    html = resp.text
    text = re.sub(r"<[^>]+>", " ", html)
    assert not _LONG_FLOAT.search(text), _LONG_FLOAT.search(text)  # no 17-digit floats anywhere a reviewer reads
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html and "<img" not in html  # the title, escaped
    assert "Doel &lt;b&gt;vet&lt;/b&gt;" in html
    card = {"nl": ["Modelkaart", "Doelvariabele", "Grootste coëfficiënten"], "en": ["Model card", "Target"]}[lang]
    assert all(word in html for word in card)
    assert 'class="card model-card"' in html and 'class="card audit-card"' in html and "<svg" in html
    assert f'data-ticket="/v1/releases/{real["id"]}/items/{real["audit"]}/report-link?lang=nl"' in html
    assert {"nl": "Privacybudget", "en": "Privacy spend"}[lang] in html
    assert {"nl": "Onthullingscontrole", "en": "Disclosure control"}[lang] in html
    for svg in re.findall(r"<svg.*?</svg>", html, flags=re.DOTALL):
        ET.fromstring(svg)
    assert html.index('id="act-approve"') > html.index('class="card audit-card"')  # decide after reading
    listed = _get(live, f"/review/fragments/requests?lang={lang}").text
    assert real["id"] in listed and "&lt;img" in listed


def test_fragments_are_for_reviewers_only(live: LiveVault, real: dict[str, Any]) -> None:
    for path in ("/review/fragments/requests", f"/review/fragments/requests/{real['id']}"):
        analyst = _get(live, path, "alice")
        assert analyst.status_code == 403 and "role 'analyst'" in analyst.json()["message"]
        assert _get(live, path, "root").status_code == 200
        assert httpx.get(live.url + path).status_code == 401


def test_the_page_shell_and_its_policy(live: LiveVault) -> None:
    nl = httpx.get(live.url + "/review", headers={"Accept-Language": "nl-NL"})
    en = httpx.get(live.url + "/review?lang=en")
    assert '<html lang="nl">' in nl.text and "Beoordeling van vrijgaveverzoeken" in nl.text
    assert '<html lang="en">' in en.text and "Release review" in en.text and 'href="/review?lang=nl"' in en.text
    csp = nl.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe-inline" not in csp
    assert "<style" not in nl.text and " style=" not in nl.text and " on" not in re.sub(r'"[^"]*"', "", nl.text)
    script = httpx.get(live.url + "/review/app.js")
    css = httpx.get(live.url + "/review/app.css")
    assert script.headers["content-type"].startswith("text/javascript") and "sessionStorage" in script.text
    assert css.headers["content-type"].startswith("text/css") and script.headers["content-security-policy"] == csp


def test_report_endpoint_renders_both_languages_for_reviewers(live: LiveVault, real: dict[str, Any]) -> None:
    base = f"/v1/releases/{real['id']}/items/{real['audit']}/report"
    nl, en = _get(live, base, params={"lang": "nl"}), _get(live, base, params={"lang": "en"})
    assert nl.status_code == en.status_code == 200, nl.text
    assert '<html lang="nl">' in nl.text and "Fairness-audit" in nl.text and real["id"] in nl.text
    assert '<html lang="en">' in en.text and "What this report belongs to" in en.text and real["model"] in en.text
    csp = nl.headers["content-security-policy"]
    assert "'sha256-" in csp and "script-src" not in csp and "default-src 'none'" in csp and "img-src data:" in csp
    as_json = _get(live, base, params={"lang": "nl"}, headers={"Accept": "application/json"}).json()
    assert as_json["filename"] == f"{real['id']}_{real['audit']}_fairness_report_nl.html"
    assert as_json["html"].startswith("<!DOCTYPE html>")


def test_report_endpoint_refuses_analysts_and_non_audits(live: LiveVault, real: dict[str, Any]) -> None:
    base = f"/v1/releases/{real['id']}/items/{real['audit']}/report"
    analyst = _get(live, base, "alice")
    verify = _get(live, "/v1/verify", "alice")
    assert analyst.status_code == verify.status_code == 403 and "role 'analyst'" in analyst.json()["message"]
    assert _post(live, f"{base}-link", "alice").status_code == 403
    for item in (real["model"], real["table"], "r_notanitem"):
        missing = _get(live, f"/v1/releases/{real['id']}/items/{item}/report")
        assert missing.status_code == 404 and "fairness audit" in missing.json()["message"]
    assert _get(live, f"/v1/releases/req_0123456789abcdef/items/{real['audit']}/report").status_code == 404
    assert _get(live, base, params={"lang": "de"}).status_code == 422


def test_one_use_report_links(live: LiveVault, real: dict[str, Any]) -> None:
    base = f"/v1/releases/{real['id']}/items/{real['audit']}/report"
    link = _post(live, f"{base}-link?lang=nl").json()
    assert link["url"].startswith("/review/reports/sbr_") and link["expires_in"] == 60
    first = httpx.get(live.url + link["url"], timeout=120)
    assert first.status_code == 200 and '<html lang="nl">' in first.text
    again = httpx.get(live.url + link["url"])
    assert again.status_code == 404 and "used or expired" in again.json()["message"]
    missing = _post(live, f"/v1/releases/{real['id']}/items/{real['model']}/report-link")
    assert missing.status_code == 404
    tickets = ReportTickets(seconds=-1.0)
    code = tickets.issue(Ticket("bob", "reviewer", real["id"], real["audit"], "en"))
    with pytest.raises(Exception, match="expired"):
        tickets.redeem(code)


def test_the_vault_enforces_the_comment_rule_over_http(live: LiveVault, real: dict[str, Any]) -> None:
    path = f"/v1/releases/{real['id']}/actions"
    for action, comment in (("approve", "ok"), ("approve", ""), ("reject", "lgtm"), ("return", "prima")):
        resp = _post(live, path, "erin", {"action": action, "comment": comment})
        assert resp.status_code == 400, resp.text
        assert re.search("too short|needs a comment", resp.json()["message"])
    assert _get(live, f"/v1/releases/{real['id']}", "erin").json()["votes_in"] == 0  # nothing was recorded


def test_labels_warnings_and_independence_on_the_page(live: LiveVault, real: dict[str, Any]) -> None:
    view = _get(live, f"/v1/releases/{real['id']}").json()
    audit = view["details"][real["audit"]]["values"]
    audit["verdict"]["insufficient_evidence"] = True
    audit["evidence"] = {"insufficient": True, "label": {"en": "insufficient evidence: EN", "nl": "onvoldoende: NL"}}
    independence = {"independent": False, "label": "not independently reviewed", "reasons": ["local token"]}
    labels = Labels("nl", {"urbanisation": "Stedelijkheid", "household_type": "Type huishouden"})
    html = request_fragment(RequestPage(view=view, labels=labels, independence=independence))
    assert html.count("onvoldoende: NL") >= 2  # at the top and again in the decision panel
    assert html.index("onvoldoende: NL", html.index('class="decision"')) < html.index('id="act-approve"')
    assert "Niet onafhankelijk beoordeeld" in html and "local token" in html
    assert "Stedelijkheid (urbanisation)" in html and "Type huishouden" in html
    view["reviewer_findings"] = {"approvable": False, "items": [], "flags": []}
    assert "kan niet worden goedgekeurd" in request_fragment(RequestPage(view=view, labels=labels))


def test_not_independently_reviewed_from_the_vaults_tokens(
    live: LiveVault, real: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the token store can tell (laptop-mode tokens, h11-service), the page says "not independently reviewed"."""
    asked: list[tuple[str, list[str]]] = []

    class Told:
        def to_dict(self) -> dict[str, Any]:
            return {"independent": False, "label": "not independently reviewed", "reasons": ["minted on a laptop"]}

    def independence(author: str, reviewers: list[str]) -> Told:
        asked.append((author, reviewers))
        return Told()

    monkeypatch.setattr(live.service.tokens, "independence", independence, raising=False)
    html = _get(live, f"/review/fragments/requests/{real['id']}?lang=en").text
    assert "Not independently reviewed" in html and "minted on a laptop" in html
    assert asked == [("alice", ["bob"])]
    monkeypatch.delattr(live.service.tokens, "independence")  # the token store's own answer again
    own = live.service.tokens.independence("alice", ["bob"]).to_dict()
    shown = "Not independently reviewed" in _get(live, f"/review/fragments/requests/{real['id']}?lang=en").text
    assert shown == (not own["independent"]), own


def test_model_request_with_chosen_counts(live: LiveVault) -> None:
    """The helper of the browser test makes the verdicts it promises (a pass, and a review from too little data)."""
    fair = live.model_request(
        "Eerlijk model", features=["urbanisation", "income"], target="arrears", counts=FAIR_COUNTS
    )
    small = live.model_request("Klein model", features=["n_persons"], target="arrears", counts=SMALL_COUNTS)
    assert fair.status == small.status == "pending_review", (fair.reasons, small.reasons)
    views = [_get(live, f"/v1/releases/{r.id}").json() for r in (fair, small)]
    audits = [next(d["values"] for d in v["details"].values() if d["ledger"]["kind"] == "audit") for v in views]
    assert [a["verdict"]["status"] for a in audits] == ["pass", "review"]
    assert [a["verdict"]["insufficient_evidence"] for a in audits] == [False, True]


def test_reviewer_client_and_cli_write_both_reports(
    live: LiveVault, real: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sandbox as sb
    from sandbox.cli import main

    with sb.connect_reviewer(url=live.url, token=live.tokens["erin"]) as reviewer:
        html = reviewer.report(real["id"], real["audit"], "nl")
        assert html.startswith("<!DOCTYPE html>") and '<html lang="nl">' in html
        with pytest.raises(sb.NotFoundError, match="nl and en"):
            reviewer.report(real["id"], real["audit"], "de")
        with pytest.raises(sb.NotFoundError, match="not a fairness audit"):
            reviewer.report(real["id"], real["model"], "en")
    base = ["review", "--url", live.url, "--token", live.tokens["erin"]]
    assert main([*base, "report", real["id"], "--out", str(tmp_path / "reports")]) == 0
    written = sorted(p.name for p in (tmp_path / "reports").iterdir())
    assert written == [f"{real['id']}_{real['audit']}_fairness_report_{lang}.html" for lang in ("en", "nl")]
    assert str(tmp_path / "reports") in capsys.readouterr().out
    assert main([*base, "approve", real["id"]]) == 2  # -m is required
    analyst = ["review", "--url", live.url, "--token", live.tokens["alice"]]
    assert main([*analyst, "report", real["id"], "--out", str(tmp_path / "analyst")]) == 2
    assert "role 'analyst'" in capsys.readouterr().err and not (tmp_path / "analyst").exists()


def test_reviewer_findings_are_tables(live: LiveVault, real: dict[str, Any]) -> None:
    """``reviewer_findings`` (the shape documented by h10-channel in vault/gate/findings.py) shows as tables."""
    view = _get(live, f"/v1/releases/{real['id']}").json()
    view["reviewer_findings"] = {
        "format": "sandbox.reviewer-findings/1",
        "disclosure_verdict": "review",
        "approvable": True,
        "items": [
            {"id": real["table"], "kind": "aggregate", "gate_verdict": "pass", "disclosure_verdict": "review",
             "reasons": ["cell (other) rests on 12 households; dominance 0.91 > 0.85"],
             "cells": [{"key": ["other"], "verdict": "review", "reasons": ["dominance 0.91 > 0.85 <b>"]}]},
        ],
        "flags": [{"analyst": "alice", "dataset": "households", "day": "2026-12-01", "requests": 4, "blocked": 3,
                   "exact_fail": 1, "request_ids": ["req_1"]}],
        "salt": "0" * 32,
        "sha256": "1" * 64,
    }  # fmt: skip
    html = request_fragment(RequestPage(view=view, labels=Labels("en")))
    sdc = html[html.index('id="sdc"') : html.index('id="checks"')]
    assert "Exact findings on the true data: for reviewers only" in sdc
    assert "Analyst was told" in sdc and "dominance 0.91 &gt; 0.85 &lt;b&gt;" in sdc and "(other)" in sdc
    assert "Flags on the author" in sdc and "3 blocked and 1 failing the exact checks, of 4" in sdc
    assert "req_1" not in sdc and "do not quote the exact findings" in html
    assert 'class="badge v-review"' in sdc and 'class="badge v-pass"' in sdc
