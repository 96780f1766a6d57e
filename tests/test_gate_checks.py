"""The release gate's checks: provenance refusals, SDC on tables, model + audit + proxies, epsilon per release."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd
import pytest

from sandbox._private.shared.canonical import canonical_json
from sandbox._private.shared.errors import NotFoundError, ReleaseError
from sandbox._private.shared.policy import Policy
from sandbox._private.vault.gate.checks import OpenItem, check_release
from sandbox._private.vault.ledger.ledger import ChargeRecord

POLICY = Policy()


def record(rid: str, kind: str, public: dict[str, Any], private: dict[str, Any], **kw: Any) -> ChargeRecord:
    pub = canonical_json(public)
    fields = {
        "id": rid,
        "dataset": "households",
        "version": 1,
        "kind": kind,
        "query_key": rid,
        "query_json": canonical_json(kw.pop("query", {})),
        "epsilon": kw.pop("epsilon", 0.5),
        "delta": 0.0,
        "mechanism": "Laplace",
        "public_json": pub,
        "result_sha256": hashlib.sha256(pub.encode()).hexdigest(),
        "private_json": canonical_json(private),
        "analyst": kw.pop("analyst", "alice"),
        "run_id": None,
        "created": "2026-11-29T13:00:00+00:00",
    }
    return ChargeRecord(**fields)


def count_table(rid: str, units: list[int], **kw: Any) -> ChargeRecord:
    keys = [["single_parent", f"city{i}"] for i in range(len(units))]
    public = {
        "rows": [{"household_type": k[0], "city": k[1], "value": u + 1} for k, u in zip(keys, units, strict=True)]
    }
    private = {"cells": [{"key": k, "rows": u, "units": u} for k, u in zip(keys, units, strict=True)]}
    return record(rid, "aggregate", public, private, **kw)


def model(rid: str, **kw: Any) -> ChargeRecord:
    return record(rid, "model", {"coef": [0.1, 0.2], "features": ["income_band"]}, {"n_rows": 1000}, **kw)


def audit(rid: str, model_id: str, status: str = "pass", proxies: Any = (), **kw: Any) -> ChargeRecord:
    public = {
        "model_id": model_id,
        "verdict": {"status": status, "reasons": [] if status == "pass" else ["equalized odds 0.12 > 0.10"]},
        "proxies": None if proxies is None else list(proxies),
    }
    return record(rid, "audit", public, {}, **kw)


class Ledger:
    def __init__(self, *records: ChargeRecord) -> None:
        self.records = {r.id: r for r in records}

    def __call__(self, rid: str) -> ChargeRecord:
        if rid not in self.records:
            raise NotFoundError(f"No result with id {rid!r}")
        return self.records[rid]


def ref(r: ChargeRecord, **extra: Any) -> dict[str, Any]:
    return {"id": r.id, "sha256": r.result_sha256, **extra}


def run(ledger: Ledger, items: list[Any], **kw: Any):  # type: ignore[no-untyped-def]
    return check_release(
        items, analyst=kw.pop("analyst", "alice"), lookup=ledger, policy=kw.pop("policy", POLICY), **kw
    )


def test_safe_table_passes() -> None:
    t = count_table("r_t", [50, 120])
    report = run(Ledger(t), [ref(t)])
    assert report.verdict == "pass" and not report.blocked and report.total_epsilon == 0.5
    assert report.items[0].to_json()["sdc"] == {"verdict": "pass", "reasons": [], "cells": []}


def test_small_cell_blocks_with_numbers() -> None:
    t = count_table("r_t", [50, 7])
    report = run(Ledger(t), [ref(t)])
    assert report.blocked
    assert report.items[0].reasons == (
        "cell (single_parent, city1) rests on 7 households; the minimum is 10: merge categories or drop the cell",
    )


def test_values_sent_by_the_client_are_checked() -> None:
    t = count_table("r_t", [50, 60])
    values = json.loads(t.public_json)
    assert not run(Ledger(t), [ref(t, values=values)]).blocked
    values["rows"][0]["value"] = 999
    with pytest.raises(ReleaseError, match="its values were changed on the client"):
        run(Ledger(t), [ref(t, values=values)])


@pytest.mark.parametrize(
    ("item", "match"),
    [
        (pd.DataFrame({"a": [1]}), "not a DataFrame"),
        ([1, 2], "not a list"),
        ({"id": "r_t"}, "not an object with id='r_t' and sha256=None"),
        ({"id": "r_forged", "sha256": "0" * 64}, "r_forged was not minted by this vault"),
        ({"id": "r_t", "sha256": "f" * 64}, "the result was edited after the vault returned it"),
        ({"id": "r_t", "sha256": "f" * 64, "pickle": "x"}, "unknown fields \\['pickle'\\]"),
    ],
)
def test_bypasses_refused(item: Any, match: str) -> None:
    t = count_table("r_t", [50, 60])
    with pytest.raises(ReleaseError, match=match):
        run(Ledger(t), [item])


def test_foreign_analyst_refused() -> None:
    t = count_table("r_t", [50, 60], analyst="carol")
    with pytest.raises(ReleaseError, match="belongs to analyst 'carol', not to 'alice'"):
        run(Ledger(t), [ref(t)])


def test_item_twice_or_already_held_refused() -> None:
    t = count_table("r_t", [50, 60])
    with pytest.raises(ReleaseError, match=r"items \['r_t'\] are listed twice"):
        run(Ledger(t), [ref(t), ref(t)])
    with pytest.raises(ReleaseError, match="already in request req-1 \\(released\\); an item is released only once"):
        run(Ledger(t), [ref(t)], open_item=lambda rid: OpenItem("req-1", "released"))


def test_empty_non_list_and_too_many_refused() -> None:
    with pytest.raises(ReleaseError, match="at least one item"):
        run(Ledger(), [])
    with pytest.raises(ReleaseError, match="Pass a list of results"):
        run(Ledger(), pd.DataFrame({"a": [1]}))  # type: ignore[arg-type]
    policy = Policy.from_mapping({"limits": {"max_items_per_release": 1}})
    t1, t2 = count_table("r_1", [50]), count_table("r_2", [50])
    with pytest.raises(ReleaseError, match="at most 1 items, got 2"):
        run(Ledger(t1, t2), [ref(t1), ref(t2)], policy=policy)


def test_model_without_audit_blocks() -> None:
    m = model("r_m")
    report = run(Ledger(m), [ref(m)])
    assert report.blocked
    assert "model r_m has no fairness audit in this request" in report.items[0].reasons[0]


def test_audit_of_another_model_does_not_count() -> None:
    m, other = model("r_m"), model("r_other")
    a = audit("r_a", "r_other")
    report = run(Ledger(m, other, a), [ref(m), ref(a)])
    assert report.blocked and report.items[0].audit_id is None


def test_model_with_passing_audit_and_clean_proxies_passes() -> None:
    m = model("r_m")
    a = audit("r_a", "r_m", proxies=[{"feature": "income_band", "attribute": "gender", "auc": 0.55, "flagged": False}])
    report = run(Ledger(m, a), [ref(m), ref(a)])
    assert report.verdict == "pass", report.to_json()
    assert report.items[0].audit_id == "r_a" and report.total_epsilon == 1.0


def test_flagged_proxy_and_missing_proxy_check_need_review() -> None:
    m = model("r_m")
    flagged = [{"feature": "postcode", "attribute": "migration_background", "auc": 0.83, "flagged": True}]
    report = run(Ledger(m, a := audit("r_a", "r_m", proxies=flagged)), [ref(m), ref(a)])
    assert report.verdict == "review" and not report.blocked
    assert report.items[0].reasons == (
        "feature 'postcode' predicts protected attribute 'migration_background' with AUC 0.83 (threshold 0.70): "
        "a possible proxy; a reviewer must judge it, or drop the feature",
    )
    report = run(Ledger(m, a := audit("r_a", "r_m", proxies=None)), [ref(m), ref(a)])
    assert report.verdict == "review" and "no proxy check" in report.items[0].reasons[0]


@pytest.mark.parametrize(("status", "blocked"), [("review", False), ("fail", True)])
def test_audit_verdict_carried_to_the_model(status: str, blocked: bool) -> None:
    m, a = model("r_m"), audit("r_a", "r_m", status=status)
    report = run(Ledger(m, a), [ref(m), ref(a)])
    assert report.blocked is blocked and report.items[0].verdict == status
    assert report.items[0].reasons[0] == f"fairness audit r_a says {status}: equalized odds 0.12 > 0.10"


def test_total_epsilon_within_policy() -> None:
    items = [count_table(f"r_{i}", [50], epsilon=2.0) for i in range(3)]
    report = run(Ledger(*items), [ref(r) for r in items])
    assert report.blocked and report.request_verdict == "fail" and report.total_epsilon == 6.0
    assert "spend ε=6.000 together; one release may carry at most ε=5.000" in report.reasons[0]
    assert all(i.verdict == "pass" for i in report.items)
