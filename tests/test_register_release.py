"""The Algoritmeregister draft through a real vault: ``ws.release(..., register=)``, the gate, two approvals, outbox.

A live vault (uvicorn on 127.0.0.1, a free port, stopped by the fixture) over a population from the real generator
(Dutch labels in its schema). A DP model is fitted in the vault; its fairness audit is built with
:func:`sandbox.fairness.audit_from_counts` from fixed confusion counts (so it passes, and the request reaches the
reviewers). The request is approved by two reviewers; the outbox must then hold ``algoritmeregister.json`` and the
Dutch and English pages, listed in the manifest and covered by ``verify``; the JSON must meet the standard's limits
(:func:`check`) and the author's fields must be in it next to the sandbox's. A bad author field is a 422 naming the
field and its limit, with nothing stored and nothing charged.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _review_live import FAIR_COUNTS, LiveVault, live_vault

import sandbox as sb
from sandbox._private.shared import algoritmeregister as ar
from sandbox._private.shared.algoritmeregister_fields import FIELDS, field_spec
from sandbox._private.shared.errors import RegisterFieldError

FEATURES = ("household_type", "income_band", "n_creditors")
TARGET = "registered_problematic_debt"
TITLE = "Vroegsignalering problematische schulden"
PURPOSE = "Huishoudens met risico op problematische schulden eerder vinden, zodat de gemeente hulp kan aanbieden."
REGISTER = {
    "organization": "Gemeente Noorderhaaks",
    "contact_email": "algoritmes@noorderhaaks.example.nl",
    "publication_category": "Impactvolle algoritmes",
    "category": ["Sociale zekerheid"],
    "human_intervention": "Een schuldhulpverlener bekijkt elk signaal en beslist zelf of er contact komt.",
}  # description_short (required) and risks' own paragraph are left out on purpose: they must be flagged


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, generated_population: Path) -> Iterator[LiveVault]:
    names = [("alice", "analyst"), ("bob", "reviewer"), ("erin", "reviewer"), ("root", "admin")]
    with live_vault(tmp_path_factory.mktemp("register") / "ws", generated_population, names) as v:
        yield v


def _model_and_audit(live: LiveVault, ws: sb.Workspace, key: str, epsilon: float = 1.0) -> list[Any]:
    hh = ws.dataset("households")
    model = hh.fit(sb.ModelSpec("logistic_regression", target=TARGET, features=FEATURES), epsilon=epsilon)
    counts = {"male": FAIR_COUNTS["male"], "female": FAIR_COUNTS["female"]}
    audit = live._mint_audit(live.service.ledger.result(model.id), counts, key)
    return [model, ws.result(audit.id)]


def _post(live: LiveVault, path: str, body: Any, who: str = "alice") -> httpx.Response:
    headers = {"Authorization": f"Bearer {live.tokens[who]}"}
    return httpx.post(live.url + path, json=body, headers=headers, timeout=120)


def _get(live: LiveVault, path: str, who: str = "alice") -> httpx.Response:
    return httpx.get(live.url + path, headers={"Authorization": f"Bearer {live.tokens[who]}"}, timeout=120)


def _draft_of(fields: dict[str, Any]) -> ar.RegisterDraft:
    """Read the outbox JSON back as a draft (every value as one part) so the library's checks apply to it."""
    parts = {}
    for name, value in fields.items():
        if value is None:
            continue
        kind = field_spec(name).kind
        if kind == "links":
            value = tuple(ar.Link(v["title"], v.get("link") or "") for v in value)
        elif kind == "choices":
            value = tuple(value)
        parts[name] = (ar.Part("author", value),)
    return ar.RegisterDraft(parts)


def test_an_approved_model_release_carries_the_register_draft(live: LiveVault) -> None:
    with live.ws() as ws:
        items = _model_and_audit(live, ws, "approved")
        req = ws.release(items, title=TITLE, purpose=PURPOSE, justification="Alleen DP-model en audit.",
                         register=REGISTER)  # fmt: skip
    assert req.status == "pending_review", req.reasons
    model_id = items[0].id
    # the request view flags what nobody filled: a required field, the risks' own paragraph, optional fields
    section = req.register
    assert section["fields"] == REGISTER
    (entry,) = section["models"]
    assert entry["model_id"] == model_id
    assert entry["missing_required"] == ["description_short"]
    assert entry["incomplete"] == ["risks"]
    assert "lawful_basis" in entry["unfilled"] and "organization" not in entry["unfilled"]
    assert any("requires description_short" in w for w in req.warnings)
    assert any("risks need your own paragraph" in w for w in req.warnings)

    with sb.Reviewer(live.url, live.tokens["bob"]) as bob:
        bob.approve(req.id, f"Bob read {req.id}: purpose, audit and the register draft's flags are in order.")
    with sb.Reviewer(live.url, live.tokens["erin"]) as erin:
        view = erin.approve(req.id, "Erin: the DP spend fits the budget; the model features are no proxies.")
    assert view["status"] == "released", view

    folder = live.workspace / "outbox" / f"rel-{req.id}"
    manifest = json.loads((folder / "manifest.json").read_text())
    listed = {f["name"]: f for f in manifest["files"]}
    for name in ("algoritmeregister.json", "algoritmeregister.html", "algoritmeregister_en.html"):
        assert name in listed, sorted(listed)
        data = (folder / listed[name]["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == listed[name]["sha256"]
    verified = _get(live, "/v1/verify", "root").json()
    assert verified["ok"], verified

    def read(name: str) -> str:
        return (folder / listed[name]["file"]).read_text(encoding="utf-8")

    fields = json.loads(read("algoritmeregister.json"))
    assert list(fields) == [f.name for f in FIELDS if f.source != ("register",)]  # the standard's names, in order
    ar.check(_draft_of(fields))  # every value within the standard's limits
    assert fields["name"] == TITLE and fields["goal"] == PURPOSE and fields["source_id"] == req.id
    assert fields["organization"] == REGISTER["organization"] and fields["category"] == ["Sociale zekerheid"]
    assert fields["description_short"] is None and fields["lawful_basis"] is None  # unfilled: null
    # the sandbox's paragraph first, the author's after it; schema labels in Dutch; the audit's verdict
    assert fields["human_intervention"].endswith(REGISTER["human_intervention"])
    assert "2 verschillende beoordelaars" in fields["human_intervention"]  # the policy: two approve a model
    assert "aantal schuldeisers (n_creditors)" in fields["source_data"]
    assert fields["impacttoetsen_grouping"][0]["title"].startswith("Bias-analyse")
    nl, en = read("algoritmeregister.html"), read("algoritmeregister_en.html")
    assert "nog in te vullen" in nl and '<html lang="nl"' in nl and '<html lang="en"' in en
    assert TITLE in nl and TITLE in en


def test_a_bad_register_field_is_422_naming_the_field_and_nothing_is_stored(live: LiveVault) -> None:
    with live.ws() as ws:
        items = _model_and_audit(live, ws, "refused", epsilon=0.9)  # another fit: the first one is released
        refs = [{"id": i.id, "sha256": i.sha256} for i in items]
        before = ws.budget("households").epsilon_spent
    listed = len(_get(live, "/v1/releases").json())
    cases = [
        ({**REGISTER, "description_short": "x" * 401}, TITLE, r"description_short.*400"),
        ({**REGISTER, "organisation": "Gemeente Noorderhaaks"}, TITLE, r"no field 'organisation'.*'organization'"),
        ({**REGISTER, "publication_category": "Belangrijk"}, TITLE, r"publication_category"),
        ({**REGISTER, "name": "Mijn model"}, TITLE, r"'name'.*change that instead"),
        ({**REGISTER, "human_intervention": "x" * 2500}, TITLE, r"human_intervention.*2500"),  # too long beside ours
        (REGISTER, "T" * 101, r"\bname\b.*100"),  # the title is the register's name: at most 100 characters
    ]
    for register, title, pattern in cases:
        body = {"items": refs, "title": title, "purpose": PURPOSE, "register": register}
        r = _post(live, "/v1/releases", body)
        assert r.status_code == 422, (register, r.text)
        assert r.json()["error"] == "RegisterFieldError"
        assert re.search(pattern, r.json()["message"], re.DOTALL), r.json()["message"]
    assert len(_get(live, "/v1/releases").json()) == listed  # nothing stored
    with live.ws() as ws:
        assert ws.budget("households").epsilon_spent == before  # nothing charged (no DP test either)
        # the kernel refuses the same before sending, with the same error
        with pytest.raises(RegisterFieldError, match=r"description_short.*400"):
            ws.release(items, title=TITLE, purpose=PURPOSE, register={"description_short": "x" * 401})
        # register fields on a request without a model are refused too
        table = ws.dataset("households").count(by=["household_type"], epsilon=0.2)
    r = _post(live, "/v1/releases", {"items": [{"id": table.id, "sha256": table.sha256}], "title": "Tabel",
                                     "purpose": PURPOSE, "register": REGISTER})  # fmt: skip
    assert r.status_code == 422 and "no model item" in r.json()["message"]
    assert len(_get(live, "/v1/releases").json()) == listed


def test_the_fairness_reports_land_in_workspace_reports_in_both_languages(live: LiveVault) -> None:
    with sb.Workspace(live.url, live.tokens["alice"], workspace=live.workspace) as ws:
        items = _model_and_audit(live, ws, "reports", epsilon=0.8)
        req = ws.release(items, title="Vroegsignalering met rapporten", purpose=PURPOSE, register=REGISTER)
    model, audit = items
    folder = live.workspace / "reports" / req.id
    expected = [folder / f"{audit.id}_fairness_report_{lang}.html" for lang in ("en", "nl")]
    assert sorted(req.reports) == expected and sorted(folder.iterdir()) == expected
    nl, en = (p.read_text(encoding="utf-8") for p in (expected[1], expected[0]))
    for page in (nl, en):  # what the report belongs to, from the request, the fit query, /v1/health
        for fact in (req.id, model.id, TARGET, *FEATURES, "alice", live.service.policy.sha256, "households"):
            assert fact in page, fact
    # the schema's labels in the report's language: Dutch attribute and group names in the Dutch report
    assert "geslacht hoofdkostwinner" in nl and ">vrouw<" in nl and ">man<" in nl
    assert "gender of the main earner" in en and ">female<" in en and "vrouw" not in en
    assert '<html lang="nl"' in nl and '<html lang="en"' in en
    # a workspace-less connection (a remote vault without SANDBOX_WORKSPACE) writes nothing and says nothing
    with live.ws() as ws:
        items = _model_and_audit(live, ws, "no-folder", epsilon=0.7)
        assert ws.workspace is None and ws.release(items, title="Zonder map", purpose=PURPOSE).reports == []


def test_a_long_audit_is_shortened_to_leave_the_author_room_never_refused() -> None:
    """A real audit with many flagged proxies and long labels: the sandbox's risks text fits with room to spare."""
    import pandas as pd

    from sandbox.fairness import audit_from_counts

    rows = [{"attribute": "gender", "group": g, "tp": c[0], "fp": c[1], "fn": c[2], "tn": c[3]}
            for g, c in FAIR_COUNTS.items()]  # fmt: skip
    audit = audit_from_counts(pd.DataFrame(rows), noise_scale=1.5, n_boot=200, random_state=3).to_dict()
    features = [f"kenmerk_{i}" for i in range(12)]
    attributes = ["gender", "age_band", "migration_background", "household_type", "disability"]
    audit["proxies"] = [
        {"feature": f, "attribute": a, "auc": 0.9 - 0.01 * i, "flagged": True}
        for i, (f, a) in enumerate((f, a) for f in features for a in attributes)
    ]
    labels = {a: f"een heel lang Nederlands label voor {a} uit het schema (CBS-definitie 2022)" for a in attributes}
    labels |= {f: f"een lang label van {f} uit het openbare schema" for f in features}
    spec = {"dataset": "households", "version": "1", "epsilon": 1.0,
            "spec": {"estimator": "logistic_regression", "target": TARGET, "features": features}}  # fmt: skip
    request = {"id": "req_0123456789abcdef", "title": TITLE, "purpose": PURPOSE}
    own = {"risks": "Elk kwartaal toetsen we opnieuw. " * 14}  # 462 characters of the author's own
    draft = ar.draft_from_release(request, spec, audit, sb.load_policy(), own, column_labels=labels)
    ar.check(draft)
    risks = str(draft.values["risks"])
    sandbox_part = risks[: -len(own["risks"].strip())]
    assert len(sandbox_part) <= 2500 - ar.AUTHOR_ROOM + 2  # the standard's 2500; 2: the paragraph break
    assert "(Ingekort; de volledige fairness-audit en het beleid staan in de vrijgave.)" in sandbox_part
    assert sandbox_part.startswith("Risico op discriminatie:") and risks.endswith(own["risks"].strip())
    # without the long labels the text fits: the proxies are named three features at most, the rest counted
    plain = str(ar.draft_from_release(request, spec, audit, sb.load_policy(), own).values["risks"])
    assert "(en 9 andere kenmerken; de fairness-audit noemt ze allemaal)." in plain and "Ingekort" not in plain
    assert "kenmerk_0 voor gender, age_band, migration_background, household_type en disability" in plain
    # the analyst's own text is never cut: a purpose over the 2500 characters of goal is refused, naming it
    with pytest.raises(RegisterFieldError, match=r"goal .* 2600 characters; the standard allows 2500"):
        ar.check(ar.draft_from_release({**request, "purpose": "p" * 2600}, spec, audit, sb.load_policy()))


def test_a_reports_folder_that_cannot_be_written_warns_and_keeps_the_request(live: LiveVault, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the workspace should be")
    with sb.Workspace(live.url, live.tokens["alice"], workspace=blocker) as ws:
        items = _model_and_audit(live, ws, "unwritable", epsilon=0.6)
        with pytest.warns(sb.SandboxWarning, match=r"was made, but its fairness reports were not written: cannot wr"):
            req = ws.release(items, title="Rapporten zonder map", purpose=PURPOSE, register=REGISTER)
        assert req.reports == [] and ws.request(req.id).status == req.status == "pending_review"
        page = req._repr_html_()  # the notebook display lists the draft's warnings under the items
        assert "Warnings (they do not block the request)" in page and "requires description_short" in page


def test_a_request_made_before_the_wiring_is_still_released(live: LiveVault) -> None:
    """Migration: a stored model request without a register section, with a title over 100 characters (allowed
    then), is released on approval without a draft, rather than failing at release."""
    with live.ws() as ws:
        items = _model_and_audit(live, ws, "legacy", epsilon=0.5)
        req = ws.release(items, title="Oud verzoek", purpose=PURPOSE)
    with live.service.ledger.db.transaction() as tx:  # rewrite it as the gate stored requests before
        (gate_json,) = tx.one("SELECT gate_json FROM gate_requests WHERE id = ?", (req.id,))
        gate = {k: v for k, v in json.loads(gate_json).items() if k != "register"}
        tx.execute("UPDATE gate_requests SET gate_json = ?, title = ? WHERE id = ?",
                   (json.dumps(gate), "Oud verzoek " * 10, req.id))  # fmt: skip
    with sb.Reviewer(live.url, live.tokens["bob"]) as bob:
        bob.approve(req.id, f"Bob read the legacy request {req.id}: the audit and spend are in order.")
    with sb.Reviewer(live.url, live.tokens["erin"]) as erin:
        assert erin.approve(req.id, "Erin: model features checked, no proxies; the DP spend fits.")["status"] == (
            "released"
        )
    manifest = json.loads((live.workspace / "outbox" / f"rel-{req.id}" / "manifest.json").read_text())
    names = [f["name"] for f in manifest["files"]]
    assert any(n.endswith("_model.json") for n in names) and not any("algoritmeregister" in n for n in names)
