"""The gate through a real HTTP server: ws.release from the client, `sandbox review`, and the reviewer web page.

The vault app (with the gate router mounted) is served by uvicorn on 127.0.0.1 on a free port in a thread of
the test process, and stopped by the fixture that started it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import uvicorn
from conftest import free_port, register_population

from sandbox._private.kernel.release import release
from sandbox._private.kernel.workspace import Workspace
from sandbox._private.shared.errors import ReleaseError
from sandbox._private.shared.policy import default_policy_path
from sandbox._private.vault.http.app import create_app
from sandbox._private.vault.ledger.ledger import ChargeRecord, ComputedAnswer
from sandbox._private.vault.server import open_service
from sandbox.cli import main

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]  # fmt: skip


@dataclass
class Live:
    workspace: Path
    url: str
    service: Any
    tokens: dict[str, str] = field(default_factory=dict)

    def ws(self, name: str = "alice") -> Workspace:
        return Workspace(self.url, self.tokens[name])

    def mint(self, kind: str, public: dict[str, Any], key: str) -> ChargeRecord:
        dataset = self.service.ledger.dataset("households")
        return self.service.ledger.charge(
            dataset, kind=kind, query_key=key, query={"key": key}, epsilon=0.5, delta=0.0, analyst="alice",
            run_id="study-1", compute=lambda: ComputedAnswer(public, {}, "LogisticRegression"),
        ).record  # fmt: skip

    def model_with_audit(self) -> tuple[ChargeRecord, ChargeRecord]:
        m = self.mint("model", {"coef": [0.4, -0.2], "features": ["income", "n_persons"]}, "model")
        audit = {
            "model_id": m.id,
            "verdict": {"status": "pass", "reasons": ["equalized odds difference 0.03 is below 0.05"]},
            "definition": "equal_error_rates",
            "disparities": [{"facet": "gender", "metric": "equalized_odds_difference", "value": 0.03}],
            "proxies": [{"feature": "income", "attribute": "gender", "auc": 0.54, "flagged": False}],
        }
        return m, self.mint("audit", audit, "audit")


@pytest.fixture
def live(tmp_path: Path, small_population: Path) -> Iterator[Live]:
    workspace = tmp_path / "ws"
    policy = tmp_path / "policy.yaml"  # min_count 15, so the fine table below has a failing cell (of 10)
    policy.write_text(default_policy_path().read_text().replace("min_count: 10", "min_count: 15"))
    register_population(workspace, small_population, policy)
    service = open_service(workspace, policy=policy)
    port = free_port()
    config = uvicorn.Config(create_app(service), host="127.0.0.1", port=port,
                            log_level="warning", access_log=False)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the test vault did not start"
        time.sleep(0.05)
    roles = [("alice", "analyst"), ("bob", "reviewer"), ("erin", "reviewer")]
    live = Live(workspace, f"http://127.0.0.1:{port}", service, {n: service.tokens.create(n, r) for n, r in roles})
    try:
        yield live
    finally:
        server.should_exit = True
        thread.join(30)


def test_ws_release_of_real_dp_results(live: Live) -> None:
    with live.ws() as ws:
        hh = ws.dataset("households")
        safe = hh.count(by=["household_type"], epsilon=0.5)
        fine = hh.count(by=["household_type", "urbanisation", "arrears"], epsilon=0.5)
        req = release(ws._t, [safe], title="Huishoudens per type", purpose="Omvang doelgroep")
        assert req.status == "pending_review", req.reasons
        blocked = release(ws._t, [fine], title="Te fijn", purpose="Laat de SDC-regels zien")
        assert blocked.status == "blocked"
        # judged on the noisy counts (cells of ~20 households and empty ones, noise scale 2): some fall below 15
        expected = "below the minimum of 15 households: merge categories or drop the cell"
        assert any(expected in r for r in blocked.reasons) and not any("rests on" in r for r in blocked.reasons)
        with pytest.raises(ReleaseError, match="not a DataFrame"):
            release(ws._t, [pd.DataFrame({"a": [1]})], title="x", purpose="y")
        edited = hh.count(by=["urbanisation"], epsilon=0.5)
        rows = [dict(r) for r in edited.values["rows"]]
        rows[0]["value"] += 100
        object.__setattr__(edited, "values", {**edited.values, "rows": rows})
        with pytest.raises(ReleaseError, match="values were changed on the client"):
            release(ws._t, [edited], title="x", purpose="y")
        with pytest.raises(ReleaseError, match=f"already in request {req.id}"):
            release(ws._t, [safe], title="again", purpose="y")


def test_review_cli_against_the_vault(live: Live, capsys: pytest.CaptureFixture[str]) -> None:
    with live.ws() as ws:
        t = ws.dataset("households").count(by=["household_type"], epsilon=0.5)
        req = release(ws._t, [t], title="Tabel", purpose="Doel")
    base = ["review", "--url", live.url, "--token", live.tokens["bob"]]
    assert main([*base, "list"]) == 0
    assert req.id in capsys.readouterr().out
    assert main([*base, "show", req.id]) == 0
    shown = capsys.readouterr().out
    assert "gate=pass" in shown and "provenance:" in shown and "purpose: Doel" in shown
    assert main([*base, "return", req.id]) == 2  # -m is required
    capsys.readouterr()
    assert main([*base, "comment", req.id, "-m", "ziet er goed uit"]) == 0
    assert main([*base, "approve", req.id]) == 0
    assert "released" in capsys.readouterr().out
    analyst = ["review", "--url", live.url, "--token", live.tokens["alice"]]
    assert main([*analyst, "approve", req.id]) == 2
    assert "approve is a reviewer action" in capsys.readouterr().err
    assert main(["verify", "--workspace", str(live.workspace)]) == 0


@pytest.mark.browser
def test_two_reviewers_approve_a_model_in_the_browser(live: Live) -> None:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Chromium is installed by scripts/sysdeps.sh (make sysdeps)"
    m, a = live.model_with_audit()
    with live.ws() as ws:
        req = release(ws._t, [ws.result(m.id), ws.result(a.id)], title="Vroegsignalering model v1", purpose="Doel")
    assert req.status == "pending_review" and req.data["required_approvals"] == 2
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for reviewer, expected in (("bob", "partially_reviewed"), ("erin", "released")):
                page = browser.new_context().new_page()
                page.goto(f"{live.url}/review")
                page.fill("#token", live.tokens[reviewer])
                page.click("#login")
                page.click(f"a[data-id='{req.id}']")
                report = page.locator(".fairness-report")
                report.wait_for()
                assert "Verdict: pass" in report.inner_text()
                assert "equalized_odds_difference" in report.inner_text()
                assert "income" in report.locator("table").last.inner_text()  # the proxy check
                assert (
                    "0.500" in page.locator("#detail-spend").inner_text()
                    or "1.000" in page.locator("#detail-spend").inner_text()
                )
                page.fill("#comment", f"{reviewer}: audit gelezen")
                page.click("#approve")
                page.wait_for_function(
                    "s => document.getElementById('detail-status').textContent.includes(s)", arg=expected
                )
                page.context.close()
        finally:
            browser.close()
    folder = live.workspace / "outbox" / f"rel-{req.id}"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {f["name"] for f in manifest["files"]} >= {f"{m.id}_model.json", f"{a.id}_fairness_report.html"}
    assert manifest["review"]["approvers"] == ["bob", "erin"]
    assert main(["verify", "--workspace", str(live.workspace)]) == 0
