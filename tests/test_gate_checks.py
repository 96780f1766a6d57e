"""The release gate's checks: provenance refusals, SDC on tables, model + audit + proxies, epsilon per release.

The analyst's verdicts come from DP values only (the released noisy counts, or the gate's DP disclosure test);
the exact rules on the true counts go to the reviewers' findings (DESIGN invariant 10).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

import pandas as pd
import pytest

from sandbox._private.shared.canonical import canonical_json
from sandbox._private.shared.errors import InternalError, NotFoundError, ReleaseError
from sandbox._private.shared.policy import Policy
from sandbox._private.shared.schema import Column, TableSchema
from sandbox._private.vault.gate.checks import OpenItem, check_release, plan_tests
from sandbox._private.vault.gate.dp_sdc import compute_test, plan_test
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


def count_table(rid: str, units: list[int], noisy: list[int] | None = None, **kw: Any) -> ChargeRecord:
    """A household count table: true ``units`` per cell (private) and released noisy values (``units + 1``)."""
    keys = [["single_parent", f"city{i}"] for i in range(len(units))]
    values = noisy if noisy is not None else [u + 1 for u in units]
    public = {
        "kind": "count",
        "rows_per_unit": 1,
        "columns": ["household_type", "city", "value", "noise_scale", "ci95"],
        "rows": [{"household_type": k[0], "city": k[1], "value": v} for k, v in zip(keys, values, strict=True)],
    }
    private = {"cells": [{"key": k, "rows": u, "units": u} for k, u in zip(keys, units, strict=True)]}
    return record(rid, "aggregate", public, private, **kw)


def sum_table(rid: str, cells: list[tuple[int, float, float, float]], **kw: Any) -> ChargeRecord:
    """A sum of income by city: ``(units, abs_total, top1, top2)`` per cell."""
    public = {
        "kind": "sum",
        "rows_per_unit": 1,
        "rows": [{"city": f"city{i}", "value": 1.0} for i in range(len(cells))],
    }
    private = {
        "cells": [
            {"key": [f"city{i}"], "rows": u, "units": u, "total": a, "abs_total": a, "top1": t1, "top2": t2}
            for i, (u, a, t1, t2) in enumerate(cells)
        ]
    }
    return record(rid, "aggregate", public, private, query={"kind": "sum", "column": "income"}, **kw)


INCOME = TableSchema(
    "households", "h", "h", "household", "household_id", 1,
    (Column("household_id", "id", "id", "id", lower=1, upper=10**9),
     Column("income", "float", "inkomen", "income", lower=0.0, upper=100_000.0)),
)  # fmt: skip


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
    assert report.items[0].to_json()["sdc"] == {
        "verdict": "pass", "basis": "released noisy counts", "test_id": None, "epsilon": 0.0, "cells": [],
    }  # fmt: skip
    assert report.reviewer_findings()["disclosure_verdict"] == "pass"


def test_small_noisy_cell_blocks_and_reviewers_get_the_true_count() -> None:
    t = count_table("r_t", [50, 7], noisy=[52, 6])
    report = run(Ledger(t), [ref(t)])
    assert report.blocked
    assert report.items[0].reasons == (
        "cell (single_parent, city1): its released noisy count is 6, below the minimum of 10 households: merge "
        "categories or drop the cell",
    )
    assert report.items[0].to_json()["sdc"]["cells"] == [
        {"key": ["single_parent", "city1"], "rule": "min_count", "verdict": "fail"}
    ]
    findings = report.reviewer_findings()
    assert findings["items"][0]["reasons"] == [
        "cell (single_parent, city1) rests on 7 households; the minimum is 10: merge categories or drop the cell"
    ]
    assert findings["disclosure_verdict"] == "fail" and not findings["approvable"]
    assert "7 households" not in json.dumps(report.to_json())


@pytest.mark.parametrize(("true", "noisy", "verdict"), [(3, 14, "pass"), (0, 11, "pass"), (40, 8, "fail")])
def test_the_analyst_verdict_follows_the_noisy_count_not_the_true_one(true: int, noisy: int, verdict: str) -> None:
    """A cell of 3 (or 0) households whose noisy count is 14 passes for the analyst; the reviewers see it fail."""
    t = count_table("r_t", [true], noisy=[noisy])
    report = run(Ledger(t), [ref(t)])
    assert report.items[0].verdict == verdict
    exact = report.reviewer_findings()["items"][0]["disclosure_verdict"]
    assert exact == ("pass" if true >= 10 else "review" if true == 0 else "fail")


def test_a_zero_noisy_count_gets_the_zero_rule() -> None:
    t = count_table("r_t", [50, 12], noisy=[48, -2])
    item = run(Ledger(t), [ref(t)]).items[0]
    assert item.verdict == "review" and "may be empty (policy zeros: review)" in item.reasons[0]


def test_a_magnitude_table_needs_its_dp_test() -> None:
    s = sum_table("r_s", [(50, 2.0e6, 60_000.0, 50_000.0)])
    plans = plan_tests([s], POLICY, lambda _r: INCOME)
    assert list(plans) == ["r_s"] and plans["r_s"].tests == ("units", "dominance", "p_ratio")
    assert plans["r_s"].epsilon == POLICY.gate.sdc_test_epsilon and plans["r_s"].max_abs == 100_000.0
    with pytest.raises(InternalError, match="must charge the DP disclosure tests of \\['r_s'\\]"):
        run(Ledger(s), [ref(s)], schema_of=lambda _r: INCOME)
    assert plan_test(count_table("r_t", [50]), POLICY, None) is None  # a household count: its noisy values suffice
    no_tests = Policy.from_mapping({"gate": {"sdc_test_epsilon": 0}})
    assert plan_tests([s], no_tests, lambda _r: INCOME) == {}
    item = run(Ledger(s), [ref(s)], policy=no_tests, schema_of=lambda _r: INCOME).items[0]
    assert item.verdict == "review" and "judged by reviewers only" in item.reasons[0]


def _test_record(plan: Any, item: ChargeRecord, policy: Policy = POLICY) -> ChargeRecord:
    answer = compute_test(plan, item, policy)
    return record("r_test", "sdc_test", dict(answer.public), dict(answer.private), epsilon=plan.epsilon)


def test_dp_test_sensitivities() -> None:
    policy = Policy.from_mapping({"gate": {"sdc_test_epsilon": 2.0}, "budget": {"epsilon_per_query_max": 2.0}})
    s = sum_table("r_s", [(400, 3.0e7, 90_000.0, 80_000.0)])
    plan = plan_tests([s], policy, lambda _r: INCOME)["r_s"]
    public = json.loads(_test_record(plan, s, policy).public_json)
    scales = {m["test"]: m["scale"] for m in public["mechanisms"]}
    share = 2.0 / 3
    # one household: 1 in the counts; max(k, 1 - k) * M in the dominance margin; M in the p-ratio margin
    assert scales == pytest.approx({"units": 1 / share, "dominance": 0.85 * 100_000 / share, "p_ratio": 1e5 / share})
    person_level = replace(plan, rows_per_unit=8)
    scales8 = {
        m["test"]: m["scale"] for m in json.loads(_test_record(person_level, s, policy).public_json)["mechanisms"]
    }
    assert scales8 == pytest.approx({k: 8 * v for k, v in scales.items()})


def test_dp_test_verdicts_from_its_noisy_values() -> None:
    """At an epsilon so large that the noise is negligible, the DP test reproduces the rules: a cell of 6 fails the
    minimum, a dominated cell and a cell that fails the p-ratio (remainder 8,000 below 10% of 90,000: off the rule's
    edge, where the noisy margin's sign would be a coin toss) get review, a large cell passes."""
    cells = [(6, 5.0e5, 90_000.0, 80_000.0), (400, 1.0e5, 90_000.0, 2_000.0), (400, 3.0e7, 90_000.0, 80_000.0)]
    s = sum_table("r_s", cells)
    plan = replace(plan_tests([s], POLICY, lambda _r: INCOME)["r_s"], epsilon=1e7)
    test = _test_record(plan, s)
    report = check_release(
        [ref(s)], analyst="alice", lookup=Ledger(s), policy=POLICY, tests={"r_s": test}, schema_of=lambda _r: INCOME
    )
    item = report.items[0]
    assert item.sdc is not None and item.sdc.test_id == "r_test" and item.sdc.basis == "DP disclosure test"
    rules = sorted((c["key"][0], c["rule"], c["verdict"]) for c in item.to_json()["sdc"]["cells"])
    assert rules == [("city0", "min_count", "fail"), ("city1", "dominance", "review"), ("city1", "p_ratio", "review")]
    assert item.verdict == "fail" and report.test_epsilon == 1e7
    exact = report.reviewer_findings()["items"][0]
    assert exact["disclosure_verdict"] == "fail" and any("rests on 6 households" in r for r in exact["reasons"])


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
