"""Release requests end to end on a real ledger: gate, review, outbox, audit log, bypasses, crash recovery."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sandbox._private.shared.errors import BudgetExceededError, NotFoundError, ReleaseError, RequestCapError
from sandbox._private.shared.policy import Policy
from sandbox._private.vault.gate import requests as service_mod
from sandbox._private.vault.gate.findings import findings_digest
from sandbox._private.vault.gate.requests import ReleaseService
from sandbox._private.vault.gate.workflow import Actor
from sandbox._private.vault.ledger.ledger import ChargeRecord, ComputedAnswer, DatasetRecord, Ledger
from sandbox._private.vault.outbox.journal import read_entries

ALICE = Actor("alice", "analyst")
BOB, ERIN = Actor("bob", "reviewer"), Actor("erin", "reviewer")


def why(request_id: str, reviewer: Actor) -> str:
    """A decision comment of substance (the workflow refuses 'ok', and a copy of another approval)."""
    return f"{reviewer.name} read {request_id}: purpose, disclosure findings and privacy spend are in order."


ADMIN = Actor("root", "admin")


class Fixture:
    def __init__(
        self, root: Path, ledger_target: str | None = None, policy: Policy | None = None, budget: float = 10.0
    ) -> None:
        self.ledger = Ledger(ledger_target or root / "vault" / "ledger.sqlite")
        self.dataset = self.ledger.add_dataset(
            DatasetRecord("households", 1, "f" * 64, "s" * 64, "{}", str(root), budget, 1e-6, "2026-11-29")
        )
        self.svc = ReleaseService(root, self.ledger, policy or Policy())
        self.n = 0

    def charge(
        self, kind: str, public: dict[str, Any], private: dict[str, Any], analyst: str = "alice"
    ) -> ChargeRecord:
        self.n += 1
        return self.ledger.charge(
            self.dataset,
            kind=kind,
            query_key=f"q{self.n}",
            query={"n": self.n},
            epsilon=0.5,
            delta=0.0,
            analyst=analyst,
            run_id="run-1",
            compute=lambda: ComputedAnswer(public, private, "Laplace"),
        ).record

    def table(
        self, units: tuple[int, ...] = (40, 60), analyst: str = "alice", noisy: tuple[int, ...] | None = None
    ) -> ChargeRecord:
        keys = [f"city{i}" for i in range(len(units))]
        values = noisy or tuple(u + 2 for u in units)
        public = {
            "kind": "count",
            "columns": ["city", "value", "noise_scale"],
            "rows": [{"city": k, "value": v, "noise_scale": 10.0} for k, v in zip(keys, values, strict=True)],
        }
        private = {"cells": [{"key": [k], "rows": u, "units": u} for k, u in zip(keys, units, strict=True)]}
        return self.charge("aggregate", public, private, analyst)

    def model_and_audit(self) -> tuple[ChargeRecord, ChargeRecord]:
        m = self.charge("model", {"coef": [0.3], "features": ["income_band"]}, {"n_rows": 900})
        proxies = [{"feature": "income_band", "attribute": "gender", "auc": 0.52, "flagged": False}]
        a = self.charge(
            "audit", {"model_id": m.id, "verdict": {"status": "pass", "reasons": []}, "proxies": proxies}, {}
        )
        return m, a


def ref(r: ChargeRecord) -> dict[str, str]:
    return {"id": r.id, "sha256": r.result_sha256}


@pytest.fixture
def fx(tmp_path: Path) -> Fixture:
    return Fixture(tmp_path)


def release(
    fx: Fixture, items: list[Any], title: str = "Schulden per gemeente", author: Actor = ALICE
) -> dict[str, Any]:
    return fx.svc.create(items, author=author, title=title, purpose="Vroegsignalering evalueren")


def test_table_release_end_to_end(fx: Fixture) -> None:
    t = fx.table()
    req = release(fx, [ref(t)])
    assert (req["status"], req["state"], req["required_approvals"]) == ("pending_review", "submitted", 1)
    assert [r["id"] for r in fx.svc.requests(BOB)] == [req["id"]]
    done = fx.svc.act(req["id"], "approve", BOB, why(req["id"], BOB))
    assert done["status"] == "released" and done["release_id"] == f"rel-{req['id']}"
    folder = fx.svc.layout.outbox / done["release_id"]
    manifest = json.loads((folder / "manifest.json").read_bytes())
    names = sorted(f["name"] for f in manifest["files"])
    assert names == sorted([f"{t.id}_count.csv", f"{t.id}_count.parquet", f"{t.id}_count.html", "gate_report.json"])
    assert manifest["policy_sha256"] == fx.svc.policy.sha256
    assert manifest["ledger_entries"][0]["result_sha256"] == t.result_sha256
    assert manifest["provenance"]["run_ids"] == ["run-1"]
    assert manifest["review"]["approvers"] == ["bob"]
    csv_entry = next(f for f in manifest["files"] if f["name"].endswith(".csv"))
    assert (folder / csv_entry["file"]).read_text().splitlines() == [
        "city,value,noise_scale",
        "city0,42,10.0",
        "city1,62,10.0",
    ]
    report = fx.svc.verify()
    assert report.ok and report.releases == 1
    types = [e.type for e in read_entries(fx.svc.layout.journal)]
    assert types == [
        "ledger.charge",
        "request.create",
        "request.gate",
        "request.state",
        "request.vote",
        "request.state",
        "release",
        "request.state",
    ]
    charge = read_entries(fx.svc.layout.journal)[0].payload
    assert (charge["id"], charge["epsilon"], charge["result_sha256"]) == (t.id, 0.5, t.result_sha256)
    assert fx.svc.sync_charges() == 0
    assert fx.svc.anchor() == report.log.head


def test_model_needs_two_approvals_and_its_audit(fx: Fixture) -> None:
    m, a = fx.model_and_audit()
    req = release(fx, [ref(m), ref(a)])
    assert req["required_approvals"] == 2 and req["gate"]["verdict"] == "pass"
    mid = fx.svc.act(req["id"], "approve", BOB, why(req["id"], BOB))
    assert mid["state"] == "partially_reviewed" and mid["votes"] == [
        {"reviewer": "bob", "decision": "approve", "round": 1, "comment": why(req["id"], BOB)}
    ]
    assert fx.svc.show(req["id"], ERIN)["votes"] == []  # hidden until both reviews are in
    done = fx.svc.act(req["id"], "approve", ERIN, why(req["id"], ERIN))
    assert done["status"] == "released"
    manifest = json.loads((fx.svc.layout.outbox / done["release_id"] / "manifest.json").read_bytes())
    assert {f"{m.id}_model.json", f"{a.id}_fairness_audit.json", f"{a.id}_fairness_report.html"} <= {
        f["name"] for f in manifest["files"]
    }
    assert fx.svc.verify().ok


def test_blocked_request_is_never_offered(fx: Fixture) -> None:
    small = fx.table((40, 7), noisy=(42, 6))
    req = release(fx, [ref(small)])
    assert req["status"] == "blocked" and req["state"] == "draft"
    # the analyst is told what the noisy count shows, never the true count behind it; the reviewers see both
    assert req["gate"]["items"][0]["reasons"] == [
        "cell (city1): its released noisy count is 6, below the minimum of 10 households: merge categories or drop "
        "the cell"
    ]
    assert "reviewer_findings" not in req and "rests on" not in json.dumps(req)
    findings = fx.svc.show(req["id"], BOB)["reviewer_findings"]
    assert findings["items"][0]["reasons"] == [
        "cell (city1) rests on 7 households; the minimum is 10: merge categories or drop the cell"
    ]
    assert findings["items"][0]["cells"][0]["key"] == ["city1"] and findings["disclosure_verdict"] == "fail"
    assert fx.svc.requests(BOB) == []
    with pytest.raises(ReleaseError, match="blocked by the gate"):
        fx.svc.act(req["id"], "submit", ALICE)
    with pytest.raises(ReleaseError, match=r"cannot approve request .* it is draft"):
        fx.svc.act(req["id"], "approve", BOB, why(req["id"], BOB))
    m = fx.charge("model", {"coef": [1]}, {})
    assert release(fx, [ref(m)])["gate"]["items"][0]["reasons"][0].startswith(f"model {m.id} has no fairness audit")


def test_a_true_small_cell_behind_a_large_noisy_count_goes_to_review_and_cannot_be_approved(fx: Fixture) -> None:
    """The analyst's outcome depends on DP values only; reviewers see the true count and can only reject."""
    t = fx.table((40, 3), noisy=(41, 15))
    req = release(fx, [ref(t)])
    assert req["status"] == "pending_review" and req["gate"]["verdict"] == "pass"
    seen = fx.svc.show(req["id"], BOB)
    assert seen["reviewer_findings"]["disclosure_verdict"] == "fail" and not seen["reviewer_findings"]["approvable"]
    assert seen["reviewer_findings"]["items"][0]["gate_verdict"] == "pass"
    with pytest.raises(ReleaseError, match=r"fails the exact disclosure checks .* cannot be approved"):
        fx.svc.act(req["id"], "approve", BOB, why(req["id"], BOB))
    done = fx.svc.act(req["id"], "reject", BOB, service_mod.STANDARD_REASON)
    assert done["status"] == "rejected" and "rests on" not in json.dumps(fx.svc.show(req["id"], ALICE))


def test_the_audit_log_holds_a_salted_hash_of_the_exact_findings_not_the_counts(fx: Fixture) -> None:
    req = release(fx, [ref(fx.table((40, 1), noisy=(39, 12)))])
    log = fx.svc.layout.journal.read_text()
    assert "rests on" not in log and 'reviewer_findings":' not in log
    gate_event = next(e for e in read_entries(fx.svc.layout.journal) if e.type == "request.gate")
    findings = fx.svc.show(req["id"], BOB)["reviewer_findings"]
    assert gate_event.payload["reviewer_findings_sha256"] == findings["sha256"] == findings_digest(findings)
    assert len(findings["salt"]) == 32  # without the salt the few possible small counts could be tried one by one
    again = release(fx, [ref(fx.table((40, 1), noisy=(39, 12)))])
    assert fx.svc.show(again["id"], BOB)["reviewer_findings"]["sha256"] != findings["sha256"]


def test_daily_cap_refuses_with_the_reset_and_changes_nothing(tmp_path: Path) -> None:
    fx = Fixture(tmp_path, policy=Policy.from_mapping({"gate": {"max_requests_per_day": 2}}))
    t = fx.table()
    first = release(fx, [ref(t)])
    fx.svc.act(first["id"], "withdraw", ALICE)
    release(fx, [ref(t)])
    third = fx.table()
    before = log_and_outbox(fx), fx.ledger.budget(fx.dataset).epsilon_spent
    with pytest.raises(
        RequestCapError, match=r"'alice' has made 2 release requests on dataset 'households' today"
    ) as e:
        release(fx, [ref(third)])
    assert "allows 2 per analyst, dataset and day (gate.max_requests_per_day). The cap resets at " in str(e.value)
    assert "T00:00:00+00:00" in str(e.value) and "Nothing was charged" in str(e.value)
    assert (log_and_outbox(fx), fx.ledger.budget(fx.dataset).epsilon_spent) == before
    assert len(fx.svc.requests(ALICE, include_closed=True)) == 2
    assert release(fx, [ref(fx.table(analyst="carol"))], author=Actor("carol", "analyst"))["status"]  # per analyst


def test_repeated_blocked_requests_are_flagged_to_reviewers_only(tmp_path: Path) -> None:
    fx = Fixture(tmp_path, policy=Policy.from_mapping({"gate": {"flag_blocked_per_day": 2}}))
    ids = [release(fx, [ref(fx.table((40, 5), noisy=(40, 4)))])["id"] for _ in range(2)]
    fine = release(fx, [ref(fx.table())])
    flags = fx.svc.flags()
    assert [(f["analyst"], f["dataset"], f["blocked"], f["requests"], f["request_ids"]) for f in flags] == [
        ("alice", "households", 2, 3, ids)
    ]
    assert fx.svc.show(fine["id"], BOB)["reviewer_findings"]["flags"] == flags
    assert "flags" not in json.dumps(fx.svc.show(fine["id"], ALICE))
    events = [e for e in read_entries(fx.svc.layout.journal) if e.type == "gate.flag"]
    assert len(events) == 1 and events[0].payload["request_id"] == ids[-1] and "exact_fail" not in events[0].payload


def test_a_magnitude_item_gets_a_charged_dp_test_reused_when_resubmitted(fx: Fixture) -> None:
    cells = [{"key": ["city0"], "rows": 50, "units": 50, "total": 1e6, "abs_total": 1e6, "top1": 9e4, "top2": 8e4}]
    public = {"kind": "sum", "rows_per_unit": 1, "rows": [{"city": "city0", "value": 1.0e6}]}
    s = fx.charge("aggregate", public, {"cells": cells})
    spent = fx.ledger.budget(fx.dataset).epsilon_spent
    req = release(fx, [ref(s)])
    sdc = req["gate"]["items"][0]["sdc"]
    assert sdc["basis"] == "DP disclosure test" and sdc["epsilon"] == Policy().gate.sdc_test_epsilon
    test = fx.ledger.result(sdc["test_id"])
    assert (test.kind, test.analyst, json.loads(test.query_json)["sdc_test"]) == ("sdc_test", "alice", s.id)
    assert fx.ledger.budget(fx.dataset).epsilon_spent == pytest.approx(spent + test.epsilon)
    assert req["gate"]["test_epsilon"] == test.epsilon
    fx.svc.act(req["id"], "withdraw", ALICE)
    again = release(fx, [ref(s)])
    assert again["gate"]["items"][0]["sdc"]["test_id"] == test.id  # the stored test: no new noise, no new charge
    assert fx.ledger.budget(fx.dataset).epsilon_spent == pytest.approx(spent + test.epsilon)
    assert [e.type for e in read_entries(fx.svc.layout.journal)].count("ledger.charge") == 2


def test_a_dp_test_the_budget_cannot_pay_refuses_the_request(tmp_path: Path) -> None:
    fx = Fixture(tmp_path, budget=0.55)
    cells = [{"key": ["c"], "rows": 50, "units": 50, "total": 1e6, "abs_total": 1e6, "top1": 9e4, "top2": 8e4}]
    s = fx.charge("aggregate", {"kind": "mean", "rows": [{"value": 1.0}]}, {"cells": cells})
    with pytest.raises(BudgetExceededError, match=r"the gate's DP disclosure test of .* needs ε=0.1 .* No request"):
        release(fx, [ref(s)])
    assert fx.svc.requests(ADMIN, include_closed=True) == []


def log_and_outbox(fx: Fixture) -> tuple[list[str], list[str]]:
    fx.svc.sync_charges()  # minting a result logs its charge; that is not part of the refused request
    log = [e.hash for e in read_entries(fx.svc.layout.journal)]
    outbox = fx.svc.layout.outbox
    return log, sorted(p.name for p in outbox.iterdir()) if outbox.exists() else []


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda fx: pd.DataFrame({"a": [1]}), "not a DataFrame"),
        (lambda fx: {"id": fx.table().id, "sha256": "0" * 64}, "edited after the vault returned it"),
        (lambda fx: {"id": "r_forged", "sha256": "0" * 64}, "not minted by this vault"),
        (lambda fx: ref(fx.table(analyst="carol")), "belongs to analyst 'carol'"),
    ],
)
def test_bypasses_refused_and_nothing_changes(fx: Fixture, make: Any, match: str) -> None:
    item = make(fx)
    before = log_and_outbox(fx)
    with pytest.raises(ReleaseError, match=match):
        release(fx, [item])
    assert log_and_outbox(fx) == before
    assert fx.svc.requests(ADMIN, include_closed=True) == []


@pytest.mark.parametrize(("title", "match"), [("../../etc", "contains '../'"), ("a\x07b", "U\\+0007")])
def test_bad_titles_refused(fx: Fixture, title: str, match: str) -> None:
    with pytest.raises(ReleaseError, match=match):
        release(fx, [ref(fx.table())], title=title)
    assert fx.svc.requests(ADMIN, include_closed=True) == []


def test_item_released_twice_refused(fx: Fixture) -> None:
    t = fx.table()
    req = release(fx, [ref(t)])
    with pytest.raises(ReleaseError, match=f"already in request {req['id']} \\(submitted\\)"):
        release(fx, [ref(t)])
    fx.svc.act(req["id"], "approve", BOB, why(req["id"], BOB))
    with pytest.raises(ReleaseError, match=f"already in request {req['id']} \\(released\\)"):
        release(fx, [ref(t)])
    with pytest.raises(ReleaseError, match=r"cannot release request .* it is released"):
        fx.svc.release(req["id"], ADMIN)
    # a withdrawn request frees its items
    t2 = fx.table((50, 50))
    r2 = release(fx, [ref(t2)])
    fx.svc.act(r2["id"], "withdraw", ALICE)
    assert release(fx, [ref(t2)])["status"] == "pending_review"


def test_roles_and_authors(fx: Fixture) -> None:
    req = release(fx, [ref(fx.table())])
    with pytest.raises(ReleaseError, match=r"alice is the author of request .* can never approve it"):
        fx.svc.act(req["id"], "approve", Actor("alice", "reviewer"))
    with pytest.raises(ReleaseError, match="only a reviewer other than the author may approve"):
        fx.svc.act(req["id"], "approve", Actor("carol", "analyst"))
    with pytest.raises(ReleaseError, match="release requests are made by analysts"):
        fx.svc.create([ref(fx.table())], author=BOB, title="t", purpose="p")
    with pytest.raises(NotFoundError, match="of yours"):
        fx.svc.show(req["id"], Actor("carol", "analyst"))
    with pytest.raises(NotFoundError, match="no release request 'req_nope'"):
        fx.svc.show("req_nope", BOB)


def test_return_respond_resubmit_cycle(fx: Fixture) -> None:
    req = release(fx, [ref(fx.table())])
    r = fx.svc.act(req["id"], "return", BOB, "explain the noise scale")
    assert r["state"] == "returned"
    with pytest.raises(ReleaseError, match="respond to the reviewers"):
        fx.svc.act(req["id"], "resubmit", ALICE)
    fx.svc.act(req["id"], "respond", ALICE, "added a note on the scale")
    r = fx.svc.act(req["id"], "resubmit", ALICE)
    assert (r["state"], r["round"]) == ("submitted", 2)
    assert [c["text"] for c in r["comments"]] == ["added a note on the scale"]
    assert fx.svc.act(req["id"], "approve", BOB, why(req["id"], BOB))["status"] == "released"


def test_crash_between_outbox_and_database_is_recovered(fx: Fixture, monkeypatch: pytest.MonkeyPatch) -> None:
    req = release(fx, [ref(fx.table())])
    real_save = service_mod.ReleaseService._save

    def crash_on_release(self: ReleaseService, tx: Any, state: Any, release_id: str | None = None) -> None:
        if release_id is not None:
            raise KeyboardInterrupt("simulated crash after the outbox write")
        real_save(self, tx, state, release_id)

    monkeypatch.setattr(service_mod.ReleaseService, "_save", crash_on_release)
    with pytest.raises(KeyboardInterrupt):
        fx.svc.act(req["id"], "approve", BOB, why(req["id"], BOB))
    monkeypatch.undo()
    assert fx.svc.show(req["id"], BOB)["state"] == "approved"
    assert fx.svc.verify().ok  # the release is complete in outbox + log; only the database lags
    actions = fx.svc.recover()
    assert actions == [f"marked {req['id']} released (its release was already in the outbox)"]
    assert fx.svc.show(req["id"], BOB)["status"] == "released"
    assert fx.svc.verify().ok and fx.svc.recover() == []


def test_admin_retries_a_release_that_failed(fx: Fixture, monkeypatch: pytest.MonkeyPatch) -> None:
    req = release(fx, [ref(fx.table())])

    def boom(*a: Any, **k: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(service_mod, "publish_release", boom)
    with pytest.raises(OSError, match="disk full"):
        fx.svc.act(req["id"], "approve", BOB, why(req["id"], BOB))
    monkeypatch.undo()
    assert fx.svc.show(req["id"], ADMIN)["state"] == "approved"
    assert fx.svc.recover() == []
    fx.svc.release(req["id"], ADMIN)
    assert fx.svc.show(req["id"], ADMIN)["status"] == "released" and fx.svc.verify().ok


def test_tampered_ledger_answer_is_refused(fx: Fixture) -> None:
    t = fx.table()
    with fx.ledger.db.transaction() as tx:
        tx.execute("UPDATE charges SET public_json = ? WHERE id = ?", ('{"rows":[]}', t.id))
    with pytest.raises(Exception, match="ledger says"):
        release(fx, [ref(t)])


@pytest.mark.system
def test_review_and_release_on_postgresql(tmp_path: Path, postgres: Any) -> None:
    fx = Fixture(tmp_path, postgres.fresh_database("gate_service"))
    m, a = fx.model_and_audit()
    req = release(fx, [ref(m), ref(a)])
    assert fx.svc.act(req["id"], "approve", BOB, why(req["id"], BOB))["state"] == "partially_reviewed"
    with pytest.raises(ReleaseError, match=f"already in request {req['id']}"):
        release(fx, [ref(m), ref(a)])
    assert fx.svc.act(req["id"], "approve", ERIN, why(req["id"], ERIN))["status"] == "released"
    report = fx.svc.verify()
    assert report.ok and report.releases == 1 and fx.svc.anchor() == report.log.head


def test_verify_uses_the_ledger_anchor_when_the_file_anchor_is_rewritten(fx: Fixture) -> None:
    from sandbox._private.vault.outbox.journal import Head
    from sandbox._private.vault.outbox.verify import read_db_anchor, verify_workspace, write_anchor

    req = release(fx, [ref(fx.table())])
    fx.svc.act(req["id"], "comment", BOB, "ok")
    layout = fx.svc.layout
    assert read_db_anchor(layout.ledger) == fx.svc.anchor() and verify_workspace(layout.workspace).ok
    lines = layout.journal.read_bytes().splitlines(keepends=True)
    layout.journal.write_bytes(b"".join(lines[:-1]))  # cut the last entry ...
    cut = read_entries(layout.journal)[-1]
    write_anchor(layout.journal_head, Head(cut.seq, cut.hash))  # ... and rewrite the file anchor to match
    report = verify_workspace(layout.workspace)
    assert not report.ok and "entries were removed" in str(report.first_problem)
