"""The fairness audit in the vault: DP confusion counts per group, suppression, the ledger charge, the client.

References: at epsilon = 1e6 the Laplace noise on each count has scale ~1e-5, so after rounding the released counts
are the exact counts and every group metric must equal :func:`sandbox.fairness.audit_predictions` on the same
protected rows and predictions computed directly from the model's public parameters (tests may read the protected
Parquet file; the analyst cannot). The building blocks are checked against scikit-learn (AUC) and against the
fairness package's own exact counts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import VaultProcess, register_population
from sklearn.metrics import roc_auc_score

import sandbox as sb
from sandbox._private.shared.errors import NotFoundError, QueryError
from sandbox._private.shared.model_params import predict_from_params
from sandbox._private.shared.policy import load_policy
from sandbox._private.vault.dp.fairness_audit import audit_model, noisy_counts
from sandbox._private.vault.server import open_service
from sandbox._private.vault.service import VaultService
from sandbox.fairness import FairnessAudit, audit_predictions, confusion_counts
from sandbox.fairness._private.dp_audit import (
    CodedAttribute,
    FacetExact,
    contingency_auc,
    noisy_count_table,
    schema_facet_counts,
)

HUGE = 1e6
MIN_COUNT = 150  # above the smallest age band of the 3,000 generated households, so one group is suppressed
ATTRS = ["gender", "age_band", "migration_background", "household_type", "disability"]
SPEC = {
    "estimator": "logistic_regression",
    "target": "registered_problematic_debt",
    "features": ["income_band", "arrears_energy", "housing", "neighbourhood_deprivation"],
}
POLICY_YAML = f"""version: 1
name: audit-test
budget:
  epsilon_per_dataset: 1.0e8
  epsilon_per_query_max: 1.0e7
  epsilon_per_release_max: 1.0e8
disclosure:
  min_count: {MIN_COUNT}
fairness:
  intersections:
    - [gender, migration_background]
    - [migration_background, household_type]
"""


# -- building blocks ------------------------------------------------------------------------------------------
def test_contingency_auc_equals_sklearn_on_the_expanded_rows() -> None:
    rng = np.random.default_rng(1)
    table = rng.integers(0, 40, size=(6, 3)).astype(float)
    feature = np.repeat(np.repeat(np.arange(6), 3), table.ravel().astype(int))
    attr = np.repeat(np.tile(np.arange(3), 6), table.ravel().astype(int))
    share = table / table.sum(axis=1, keepdims=True)
    ref = [roc_auc_score(attr == v, share[feature, v]) for v in range(3)]
    macro, top, code = contingency_auc(table)
    assert macro == pytest.approx(np.mean(ref), abs=1e-12)
    assert top == pytest.approx(max(ref), abs=1e-12) and code == int(np.argmax(ref))


def test_contingency_auc_is_undefined_when_nobody_is_outside_the_group() -> None:
    macro, top, code = contingency_auc(np.array([[5.0], [3.0]]))
    assert np.isnan(macro) and np.isnan(top) and code == -1


def test_schema_counts_cover_every_schema_group_and_equal_the_exact_counts() -> None:
    rng = np.random.default_rng(2)
    n = 500
    g = rng.integers(0, 2, n)
    m = rng.integers(0, 2, n)  # the schema's third migration value never occurs
    yt, yp = rng.integers(0, 2, n), rng.integers(0, 2, n)
    attrs = {
        "gender": CodedAttribute("gender", g, ("female", "male")),
        "migration_background": CodedAttribute("migration_background", m, ("nl", "eu", "non_eu")),
    }
    facets = [("gender",), ("migration_background",), ("gender", "migration_background")]
    exact = schema_facet_counts(yt, yp, attrs, facets)
    assert [len(f.groups) for f in exact] == [2, 3, 6]
    assert exact[1].counts[2].sum() == 0 and exact[2].groups[2] == ("female", "non_eu")
    sf = pd.DataFrame({"gender": np.array(["female", "male"])[g], "migration_background": np.array(["nl", "eu"])[m]})
    ref = confusion_counts(yt, yp, sf, policy=load_policy())
    for mine, theirs in zip(exact, ref.facets, strict=True):
        got = {grp: c for grp, c in zip(mine.groups, mine.counts, strict=True) if c.sum() > 0}
        assert got.keys() == set(theirs.groups)
        for grp, c in zip(theirs.groups, theirs.counts, strict=True):
            np.testing.assert_array_equal(got[grp], c)


def test_noisy_table_scales_noise_by_the_number_of_facets_and_suppresses_small_groups() -> None:
    rng = np.random.default_rng(3)
    g = np.r_[np.zeros(95, int), np.ones(5, int)]
    attrs = {"gender": CodedAttribute("gender", g, ("female", "male")), "d": CodedAttribute("d", g, ("a", "b"))}
    exact = schema_facet_counts(rng.integers(0, 2, 100), rng.integers(0, 2, 100), attrs, [("gender",), ("d",)])
    seen: list[float] = []

    def noise(v: np.ndarray, sensitivity: float) -> tuple[np.ndarray, float]:
        seen.append(sensitivity)
        return v + 0.4 - 2.0 * (v == 0), sensitivity / 0.5  # rounding undoes +0.4; zeros go negative, then clip

    table, suppressed = noisy_count_table(exact, 0.5, 10, noise)
    assert seen == [2.0, 2.0] and table.noise_scale == 4.0
    np.testing.assert_array_equal(table.facets[0].counts, exact[0].counts)
    assert suppressed == [("gender", "male"), ("d", "b")]
    assert table.facets[0].suppressed.tolist() == [False, True]
    np.testing.assert_array_equal(table.overall, exact[0].counts.sum(axis=0))


def _coverage(noise_aware: bool, reps: int = 150) -> float:
    """Share of 95% intervals of the selection rate (2 groups) that hold the population value, DP scale 20."""
    from sandbox.fairness import CountTable, audit_from_counts

    rng = np.random.default_rng(11)
    p_pos, p_sel = np.array([0.2, 0.4]), np.array([0.3, 0.5])  # per group; prediction independent of the truth
    hits = 0
    for _ in range(reps):
        g = rng.integers(0, 2, 2_000)
        yt, yp = rng.random(g.size) < p_pos[g], rng.random(g.size) < p_sel[g]
        exact = schema_facet_counts(yt, yp, {"gender": CodedAttribute("gender", g, ("female", "male"))}, [("gender",)])

        def noise(v: np.ndarray, sens: float) -> tuple[np.ndarray, float]:
            # seeded Laplace of the vault's scale, so the test is deterministic (the vault uses diffprivlib)
            return v + rng.laplace(0.0, sens / 0.05, v.shape), sens / 0.05

        table, _ = noisy_count_table(exact, 0.05, 10, noise)
        # the same released counts; the intervals either add noise of the table's scale or ignore it
        released = CountTable(table.facets, table.overall, table.noise_scale if noise_aware else 0.0)
        audit = audit_from_counts(released, policy=_policy(), n_boot=200, random_state=rng)
        rows = audit.by_group[audit.by_group["attribute"] == "gender"]
        lo, hi = rows["selection_rate_low"].to_numpy(), rows["selection_rate_high"].to_numpy()
        hits += int(((lo <= p_sel) & (p_sel <= hi)).sum())
    return hits / (2 * reps)


def _policy() -> sb.Policy:
    return sb.Policy.from_mapping({"fairness": {"protected_attributes": ["gender"], "intersections": []}})


@pytest.mark.slow
def test_intervals_of_noisy_counts_cover_at_the_nominal_rate() -> None:
    # noise sd on a selection rate here is ~0.04 against a sampling sd of ~0.015: intervals that ignore the noise
    # would cover far less than 95%
    assert 0.90 <= _coverage(noise_aware=True) <= 0.99
    assert _coverage(noise_aware=False, reps=40) < 0.75


def test_audit_dict_round_trip_rebuilds_the_same_audit() -> None:
    rng = np.random.default_rng(4)
    n = 600
    sf = pd.DataFrame({"gender": rng.choice(["f", "m"], n), "migration_background": rng.choice(["a", "b", "c"], n)})
    feats = pd.DataFrame({"income": rng.normal(size=n), "housing": rng.choice(["own", "rent"], n)})
    audit = audit_predictions(
        rng.random(n) < 0.3, rng.random(n) < 0.4, sf, y_score=rng.random(n), n_boot=100, random_state=0, features=feats
    )
    back = FairnessAudit.from_dict(json.loads(json.dumps(audit.to_dict())))
    pd.testing.assert_frame_equal(back.by_group, audit.by_group)
    pd.testing.assert_frame_equal(back.disparities, audit.disparities)
    assert back.calibration is not None and audit.calibration is not None
    pd.testing.assert_frame_equal(back.calibration, audit.calibration, check_dtype=False)
    assert back.proxies is not None and back.proxies.flagged == audit.proxies.flagged  # type: ignore[union-attr]
    assert back.rules == audit.rules and back.verdict == audit.verdict
    assert back.to_dict() == audit.to_dict() and back.to_html("nl") == audit.to_html("nl")


def test_audit_dict_of_another_format_is_refused() -> None:
    with pytest.raises(sb.FairnessInputError, match=r"expected a 'sandbox\.fairness_audit/1' dict"):
        FairnessAudit.from_dict({"format": "sandbox.answer/1"})


# -- the vault service, in process ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory, generated_population: Path) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("audit")
    (base / "policy.yaml").write_text(POLICY_YAML, encoding="utf-8")
    svc = open_service(base / "ws", policy=base / "policy.yaml")
    svc.registry.add_population(generated_population)
    svc.tokens.create("ann", "analyst")
    caller = svc.tokens.list()[0]
    model = svc.fit({"dataset": "households", "spec": SPEC, "epsilon": HUGE}, caller, None)
    audit = audit_model(svc, model["id"], None, HUGE, caller, None)
    return {"svc": svc, "caller": caller, "model": model, "audit": audit, "base": base}


def _reference(svc: VaultService, model: dict[str, Any], population: Path) -> FairnessAudit:
    frame = pd.read_parquet(population / "households.parquet")
    y_pred = np.asarray(predict_from_params(model["values"], frame)) == True  # noqa: E712 - labels may be objects
    y_true = frame[SPEC["target"]].to_numpy() == True  # noqa: E712
    return audit_predictions(y_true, y_pred, frame[ATTRS], policy=svc.policy, n_boot=50, random_state=0)


def test_in_vault_metrics_at_huge_epsilon_equal_audit_predictions(
    vault: dict[str, Any], generated_population: Path
) -> None:
    ref = _reference(vault["svc"], vault["model"], generated_population).by_group.set_index(["attribute", "group"])
    got = FairnessAudit.from_dict(vault["audit"]["values"]).by_group.set_index(["attribute", "group"])
    ok = got[got["status"] != "suppressed"]
    assert len(ok) >= 20 and set(ok.index) <= set(ref.index)
    for m in ("count", "selection_rate", "true_positive_rate", "false_positive_rate", "precision", "accuracy"):
        np.testing.assert_allclose(ok[m].to_numpy(float), ref.loc[ok.index, m].to_numpy(float), atol=1e-12)
    assert vault["audit"]["values"]["facets"] == [[a] for a in ATTRS] + [
        ["gender", "migration_background"],
        ["migration_background", "household_type"],
    ]


def test_groups_below_the_disclosure_minimum_are_suppressed(vault: dict[str, Any], generated_population: Path) -> None:
    frame = pd.read_parquet(generated_population / "households.parquet")
    sizes = frame["age_band"].value_counts()
    small = sorted(str(g) for g in sizes[sizes < MIN_COUNT].index)
    assert small, "the fixture needs an age band below MIN_COUNT"
    rows = [r for r in vault["audit"]["values"]["by_group"] if r["attribute"] == "age_band"]
    for r in rows:
        if r["group"] in small:
            assert r["status"] == "suppressed" and "disclosure" in r["note"]
            assert all(v is None for k, v in r.items() if k not in ("attribute", "group", "status", "note"))
        else:
            assert r["status"] != "suppressed" and r["count"] == sizes[r["group"]]
    # the private part (for the reviewers' exact findings) has every group's true size and whether it was released
    private = json.loads(vault["svc"].ledger.result(vault["audit"]["id"]).private_json)
    cells = {tuple(c["key"]): c for c in private["cells"]}
    assert cells[("age_band", small[0])] == {"key": ["age_band", small[0]], "units": sizes[small[0]], "released": False}
    assert all(c["released"] == (c["units"] >= MIN_COUNT) for c in cells.values())  # at huge ε noisy = true
    assert cells[("gender", "male")]["released"]


def test_suppression_and_the_overall_row_follow_the_noisy_counts_only() -> None:
    """A group of 4 whose noisy size is 30 is released; a group of 40 whose noisy size is 6 is suppressed; the
    overall row is its own noisy vector (the G facets and it share the L1 sensitivity G + 1)."""
    exact = [
        FacetExact(("gender",), (("female",), ("male",)), np.array([[1, 1, 1, 1], [10, 10, 10, 10]])),
        FacetExact(("disability",), (("no",), ("yes",)), np.array([[5, 5, 5, 5], [6, 6, 6, 6]])),
    ]
    offsets = {0: np.array([6.5] * 4 + [-8.5] * 4), 1: np.zeros(8), 2: np.full(4, 100.0)}
    calls: list[float] = []

    def noise(vector: np.ndarray, sensitivity: float) -> tuple[np.ndarray, float]:
        calls.append(sensitivity)
        return vector + offsets[len(calls) - 1], sensitivity / 0.3

    table, suppressed = noisy_counts(exact, 0.3, 10, noise)
    assert calls == [3.0, 3.0, 3.0] and table.noise_scale == pytest.approx(10.0)
    assert suppressed == [("gender", "male")]  # true 40, noisy 6; female: true 4, noisy 30, released
    assert table.overall.tolist() == [111.0] * 4  # its own noisy vector, not the sum of a facet's groups


def test_the_audit_status_comes_from_noisy_sizes_and_the_policy(vault: dict[str, Any]) -> None:
    rows = vault["audit"]["values"]["by_group"]
    policy_min = load_policy(None).fairness.min_group_size
    for r in rows:
        if r["status"] == "small":
            assert r["count"] is not None and r["count"] < policy_min
        elif r["status"] == "ok":
            assert r["count"] >= policy_min


def test_audit_is_one_charge_and_a_repeat_costs_nothing(vault: dict[str, Any]) -> None:
    svc, caller, audit = vault["svc"], vault["caller"], vault["audit"]
    assert audit["kind"] == "audit" and audit["charged_epsilon"] == HUGE and not audit["reused"]
    assert audit["values"]["model_id"] == vault["model"]["id"]
    before = svc.budget("households", caller)
    again = audit_model(svc, vault["model"]["id"], list(ATTRS), HUGE, caller, None)  # same resolved request
    assert again["id"] == audit["id"] and again["reused"] and again["charged_epsilon"] == 0.0
    after = svc.budget("households", caller)
    assert after["epsilon_spent"] == before["epsilon_spent"]
    charges = svc.ledger.charges("households")
    query = {"model_id": vault["model"]["id"], "protected": ATTRS, "epsilon": HUGE}
    mine = [r for r in charges if r.kind == "audit" and json.loads(r.query_json) == query]
    assert [r.id for r in mine] == [audit["id"]] and mine[0].epsilon == HUGE
    assert after["epsilon_spent"] == pytest.approx(sum(r.epsilon for r in charges))  # the audit is in the budget
    assert after["epsilon_spent"] >= 2 * HUGE  # the fit and the audit


def test_response_holds_no_row_level_data(vault: dict[str, Any]) -> None:
    audit = vault["audit"]
    text = json.dumps(audit)
    assert "household_id" not in text and "n_rows" not in text and "units" not in text
    longest = max(len(audit["values"][k]) for k in ("by_group", "disparities", "proxies"))

    def lists(v: Any) -> list[int]:
        if isinstance(v, dict):
            return [n for x in v.values() for n in lists(x)]
        if isinstance(v, list):
            return [len(v), *(n for x in v for n in lists(x))]
        return []

    assert max(lists(audit)) == longest < 200  # only per-group / per-feature tables, never per-row arrays


def test_gate_fields_are_present(vault: dict[str, Any]) -> None:
    values = vault["audit"]["values"]
    assert values["verdict"]["status"] in ("pass", "review", "fail") and values["verdict"]["reasons"]
    assert {"feature", "attribute", "auc", "flagged"} <= set(values["proxies"][0])
    assert {p["feature"] for p in values["proxies"]} == set(SPEC["features"])
    assert values["noise_scale"] == pytest.approx((7 + 1) / (0.75 * HUGE))  # 7 facets and the overall row


def test_at_the_policy_epsilon_the_counts_are_noisy_non_negative_integers(vault: dict[str, Any]) -> None:
    svc, caller, mid = vault["svc"], vault["caller"], vault["model"]["id"]
    out = audit_model(svc, mid, ["gender", "migration_background"], None, caller, None)
    values = out["values"]
    facets = 3  # two attributes and their intersection, and the overall row beside them
    assert out["epsilon"] == svc.policy.fairness.audit_epsilon == values["epsilon"]
    assert values["noise_scale"] == pytest.approx((facets + 1) / (0.75 * svc.policy.fairness.audit_epsilon))
    exact = FairnessAudit.from_dict(vault["audit"]["values"]).by_group.set_index(["attribute", "group"])
    noisy = FairnessAudit.from_dict(values).by_group.set_index(["attribute", "group"])
    noisy = noisy[noisy["status"] != "suppressed"]
    counts = noisy["count"].to_numpy(float)
    assert (counts >= 0).all() and np.array_equal(counts, np.round(counts))
    assert not np.array_equal(counts, exact.loc[noisy.index, "count"].to_numpy(float))  # noise was added
    assert any("not audited" in x for x in values["limitations"])  # the other protected attributes


def test_a_protected_attribute_used_as_feature_is_reported_and_flagged(vault: dict[str, Any]) -> None:
    svc, caller = vault["svc"], vault["caller"]
    spec = {**SPEC, "features": ["income_band", "gender"]}
    model = svc.fit({"dataset": "households", "spec": spec, "epsilon": HUGE}, caller, None)
    values = audit_model(svc, model["id"], ["gender"], HUGE, caller, None)["values"]
    assert values["rules"]["protected_as_features"] == ["gender"]
    row = next(p for p in values["proxies"] if p["feature"] == "gender")
    assert row["auc"] == pytest.approx(1.0) and row["flagged"]
    assert "The model uses protected attributes as features: gender." in FairnessAudit.from_dict(values).to_html("en")


def test_a_result_that_is_not_a_model_is_refused(vault: dict[str, Any]) -> None:
    svc, caller = vault["svc"], vault["caller"]
    agg = svc.query({"dataset": "households", "kind": "count", "epsilon": 1.0}, caller, None)
    with pytest.raises(QueryError, match=r"is a 'aggregate' result, not a fitted model"):
        audit_model(svc, agg["id"], None, None, caller, None)
    with pytest.raises(QueryError, match=r"is a 'audit' result, not a fitted model"):
        audit_model(svc, vault["audit"]["id"], None, None, caller, None)
    with pytest.raises(NotFoundError, match=r"No result with id 'r_nope'"):
        audit_model(svc, "r_nope", None, None, caller, None)


def test_unknown_protected_attribute_is_refused_naming_the_known_ones(vault: dict[str, Any]) -> None:
    svc, caller, mid = vault["svc"], vault["caller"], vault["model"]["id"]
    with pytest.raises(QueryError, match=r"\['religion'\] are not protected attributes .* known ones are \['gender'"):
        audit_model(svc, mid, ["gender", "religion"], None, caller, None)
    with pytest.raises(QueryError, match=r"epsilon"):
        audit_model(svc, mid, None, 1e9, caller, None)
    with pytest.raises(QueryError, match=r"epsilon=1e-300 is below the smallest supported epsilon 1e-06"):
        audit_model(svc, mid, None, 1e-300, caller, None)


def test_audit_result_rebuilds_the_audit_for_the_notebook(vault: dict[str, Any]) -> None:
    result = sb.AuditResult.from_payload(vault["audit"])
    audit = FairnessAudit.from_dict(vault["audit"]["values"])
    assert result.model_id == vault["model"]["id"] and result.verdict == audit.verdict
    pd.testing.assert_frame_equal(result.by_group, audit.by_group)
    pd.testing.assert_frame_equal(result.disparities, audit.disparities)
    assert result.audit.to_dict() == audit.to_dict() and result.model_id in result._repr_html_()
    assert repr(result).startswith(f"AuditResult(model={result.model_id}, verdict='{audit.verdict.status}'")


def test_an_unconnected_model_cannot_be_audited(vault: dict[str, Any]) -> None:
    model = sb.FittedModel.from_payload(vault["model"])
    with pytest.raises(QueryError, match=r"is not connected to a vault; get it from hh\.fit"):
        model.audit()


# -- through the real vault process and the client ------------------------------------------------------------
@pytest.fixture(scope="module")
def live(vault_factory: Callable[..., VaultProcess], generated_population: Path, tmp_path_factory: Any) -> VaultProcess:
    base = tmp_path_factory.mktemp("audit-live")
    policy = base / "policy.yaml"
    policy.write_text(POLICY_YAML, encoding="utf-8")
    v = vault_factory(policy=policy)
    register_population(v.workspace, generated_population, policy=policy)
    return v.start()


@pytest.mark.system
def test_client_audit_through_the_vault_process(live: VaultProcess) -> None:
    with sb.connect(url=live.url, token=live.token("analyst")) as ws:
        m = ws.dataset("households").fit(SPEC, epsilon=HUGE)
        a = m.audit(epsilon=HUGE)
        assert isinstance(a, sb.AuditResult) and a.model_id == m.id and a.epsilon == HUGE
        assert a.verdict.status in ("pass", "review", "fail") and not a.by_group.empty
        assert "<html" in a.to_html(lang="nl").lower() and "<table" in a._repr_html_()
        assert a.disparities["attribute"].nunique() == 7
        again = m.audit(protected=ATTRS, epsilon=HUGE)
        assert again.id == a.id and again.reused and again.charged_epsilon == 0.0
        fetched = ws.result(a.id)
        assert isinstance(fetched, sb.AuditResult) and fetched.sha256 == a.sha256
        with pytest.raises(QueryError, match=r"known ones are"):
            m.audit(protected=["religion"])
        assert ws.budget("households")["epsilon_spent"] == 2 * HUGE


@pytest.mark.system
def test_http_refuses_non_model_ids_and_bad_bodies(live: VaultProcess) -> None:
    with live.client("analyst") as http:
        agg = http.post("/v1/query", json={"dataset": "households", "kind": "count", "epsilon": 1.0}).json()
        r = http.post(f"/v1/models/{agg['id']}/audit", json={})
        assert r.status_code == 422 and "not a fitted model" in r.json()["message"]
        assert http.post("/v1/models/r_missing/audit", json={}).status_code == 404
        assert http.post("/v1/models/not-an-id/audit", json={}).status_code == 422
        assert http.post(f"/v1/models/{agg['id']}/audit", json={"epsilon": -1}).status_code == 422
    with live.client("reviewer") as http:
        assert http.post(f"/v1/models/{agg['id']}/audit", json={}).status_code == 403


@pytest.mark.system
def test_gate_passes_the_fairness_check_only_with_the_audit(live: VaultProcess) -> None:
    from sandbox._private.kernel.release import release

    with sb.connect(url=live.url, token=live.token("analyst")) as ws:
        spec = {**SPEC, "features": ["income_band", "housing"]}
        m = ws.dataset("households").fit(spec, epsilon=HUGE)
        alone = release(ws._t, [m], title="model zonder audit", purpose="test")
        assert alone.status == "blocked" and alone.items[0]["verdict"] == "fail"
        assert any("has no fairness audit" in r for r in alone.reasons)
        alone.withdraw()
        a = m.audit(epsilon=HUGE)
        both = release(ws._t, [m, a], title="model met audit", purpose="test")
        items = {i["id"]: i for i in both.items}
        assert items[m.id]["audit_id"] == a.id
        assert not any("has no fairness audit" in r for r in both.reasons)
        # the model's fairness finding is the audit's own verdict (and its proxy flags), nothing worse
        expected = ("fail",) if a.verdict.status == "fail" else ("pass", "review")
        assert items[m.id]["verdict"] in expected, both.reasons
        # the audit released only groups whose noisy size reaches the minimum: nothing for the analyst to flag
        assert items[a.id]["verdict"] == "pass", items[a.id]["reasons"]
