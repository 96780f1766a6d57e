"""Bad input, small groups, undefined rates, verdict rules and the counts path of the fairness audit."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox import FairnessInputError, Policy
from sandbox.fairness import (
    CountTable,
    FacetCounts,
    FairnessAudit,
    audit_from_counts,
    audit_predictions,
    confusion_counts,
)


def _policy(**fairness: object) -> Policy:
    base: dict[str, object] = {"protected_attributes": ["gender", "migration_background"], "intersections": []}
    return Policy.from_mapping({"fairness": {**base, **fairness}})


def _data(n: int = 4_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    sf = pd.DataFrame({"gender": rng.choice(["man", "vrouw"], n), "migration_background": rng.choice(["NL", "EU"], n)})
    yt = rng.integers(0, 2, n)
    yp = np.where(rng.random(n) < 0.8, yt, 1 - yt)
    return yt, yp, sf


# --- bad input -------------------------------------------------------------------------------------------------
def test_length_mismatch_names_both_lengths() -> None:
    yt, yp, sf = _data()
    with pytest.raises(FairnessInputError, match=r"y_pred has 3999 values, y_true has 4000"):
        audit_predictions(yt, yp[:-1], sf)
    with pytest.raises(FairnessInputError, match=r"sensitive feature 'gender' has 3999 values"):
        audit_predictions(yt, yp, {"gender": sf["gender"].to_numpy()[:-1]})


@pytest.mark.parametrize(
    "bad",
    [
        np.array([0, 1, 2, 1]),
        np.array(["ja", "nee", "ja", "nee"]),
        np.array([0.0, 0.5, 1, 1]),
        np.array([0, 1, "1", 1], dtype=object),
    ],
)
def test_non_binary_labels_are_refused_with_the_values_seen(bad: np.ndarray) -> None:
    sf = {"gender": ["m", "v", "m", "v"]}
    with pytest.raises(FairnessInputError, match=r"y_true must be binary .* found other values"):
        audit_predictions(bad, [0, 1, 0, 1], sf)


@pytest.mark.parametrize("labels", [pd.array([0, 1, None, 1], dtype="Int64"), np.array([0, 1, np.nan, 1])])
def test_missing_labels_are_refused_with_count(labels: object) -> None:
    with pytest.raises(FairnessInputError, match=r"y_pred has 1 missing values; drop those rows"):
        audit_predictions([0, 1, 0, 1], labels, {"gender": ["m", "v", "m", "v"]})


def test_missing_value_in_sensitive_feature_is_refused_with_count() -> None:
    yt, yp, sf = _data(100)
    sf.loc[[3, 7], "gender"] = None
    with pytest.raises(FairnessInputError, match=r"'gender' has 2 missing values of 100.*'unknown'"):
        audit_predictions(yt, yp, sf)


def test_attribute_unknown_to_the_policy_is_refused() -> None:
    yt, yp, sf = _data(100)
    sf["postcode"] = "1234"
    with pytest.raises(FairnessInputError, match=r"\['postcode'\] are not protected attributes of policy 'default'"):
        audit_predictions(yt, yp, sf, policy=_policy())


def test_without_policy_only_given_attributes_and_default_intersections() -> None:
    yt, yp, sf = _data(500)
    audit = audit_predictions(yt, yp, sf, n_boot=50, random_state=0)
    assert audit.rules.facets == (("gender",), ("migration_background",), ("gender", "migration_background"))
    assert audit.rules.definition == "equal_error_rates"


def test_bad_n_boot_names_the_range() -> None:
    yt, yp, sf = _data(100)
    with pytest.raises(FairnessInputError, match=r"n_boot must be an integer in \[50, 100000\], got 10"):
        audit_predictions(yt, yp, sf, n_boot=10)


# --- undefined rates and small groups -----------------------------------------------------------------------------
def test_group_without_negatives_reports_fpr_undefined_with_reason() -> None:
    yt, yp, sf = _data(2_000)
    yt = np.where(sf["migration_background"] == "EU", 1, yt)  # EU group: only positives
    audit = audit_predictions(yt, yp, sf, policy=_policy(min_group_size=10), n_boot=100, random_state=1)
    bg = audit.by_group.set_index(["attribute", "group"])
    eu = bg.loc[("migration_background", "EU")]
    assert np.isnan(eu["false_positive_rate"]) and np.isnan(eu["false_positive_rate_low"])
    assert "false_positive_rate undefined: no negatives in y_true (FP + TN = 0)" in eu["note"]
    assert eu["true_positive_rate"] == pytest.approx(np.mean(yp[(sf["migration_background"] == "EU").to_numpy()]))
    d = audit.disparities.set_index(["attribute", "metric", "reference"])
    row = d.loc[("migration_background", "equalized_odds", "between_groups")]
    assert row["verdict"] in ("review", "fail")
    assert "false_positive_rate undefined (no negatives in y_true) for EU" in row["reason"]
    # every NaN in the released numbers has a note next to it
    rates = ["true_positive_rate", "false_positive_rate", "precision"]
    assert all(bg.loc[bg[rates].isna().any(axis=1), "note"].str.len() > 0)


def test_small_group_gets_review_with_reason_and_is_not_used() -> None:
    yt, yp, sf = _data(3_000)
    sf.loc[:29, "migration_background"] = "buiten Europa"  # 30 rows
    audit = audit_predictions(yt, yp, sf, policy=_policy(min_group_size=50), n_boot=100, random_state=2)
    bg = audit.by_group.set_index(["attribute", "group"])
    small = bg.loc[("migration_background", "buiten Europa")]
    assert small["status"] == "small" and small["count"] == 30
    assert "n = 30 is below min_group_size 50: verdict review" in small["note"]
    d = audit.disparities.set_index(["attribute", "metric", "reference"])
    row = d.loc[("migration_background", "demographic_parity", "between_groups")]
    assert "buiten Europa" not in (row["group_a"], row["group_b"])
    assert row["verdict"] != "pass"
    assert "groups below min_group_size 50, not used: buiten Europa (n = 30)" in row["reason"]


# --- verdict rules ------------------------------------------------------------------------------------------------
def _two_groups(rate_a: float, rate_b: float, n: int) -> CountTable:
    """Groups a/b with the given TPR and FPR, 50% positives each."""

    def cells(r: float) -> list[float]:
        pos = n // 2
        return [round(r * pos), round(r * pos), pos - round(r * pos), pos - round(r * pos)]

    counts = np.array([cells(rate_a), cells(rate_b)], dtype=float)
    return CountTable((FacetCounts(("gender",), (("man",), ("vrouw",)), counts),), counts.sum(axis=0))


@pytest.mark.parametrize(
    ("rate_b", "n", "expected", "phrase"),
    [
        (0.50, 20_000, "pass", "is within the review threshold 0.05"),
        (0.42, 20_000, "review", "exceeds the review threshold 0.05"),
        (0.30, 20_000, "fail", "exceeds the fail threshold 0.1 and its interval excludes 0"),
        (0.38, 60, "review", "exceeds the fail threshold 0.1, but its interval includes 0 (not significant)"),
        (0.49, 100, "review", "its interval reaches beyond the fail threshold 0.1"),
    ],
)
def test_verdict_rule_uses_thresholds_and_significance(rate_b: float, n: int, expected: str, phrase: str) -> None:
    audit = audit_from_counts(
        _two_groups(0.5, rate_b, n), policy=_policy(min_group_size=10), n_boot=400, random_state=4
    )
    assert audit.verdict.status == expected
    assert phrase in audit.verdict.reason


def test_definition_decides_which_disparity_is_decisive() -> None:
    # equal selection rates, very different error rates: fails equal error rates, passes equal outcomes
    counts = np.array([[900, 100, 100, 900], [500, 500, 500, 500]], dtype=float)
    table = CountTable((FacetCounts(("gender",), (("man",), ("vrouw",)), counts),), counts.sum(axis=0))
    err = audit_from_counts(table, policy=_policy(definition="equal_error_rates"), n_boot=200, random_state=0)
    out = audit_from_counts(table, policy=_policy(definition="equal_outcomes"), n_boot=200, random_state=0)
    assert err.verdict.status == "fail" and "equalized odds difference for gender 0.400" in err.verdict.reason
    assert out.verdict.status == "pass" and "demographic parity difference for gender 0.000" in out.verdict.reason


# --- counts path ----------------------------------------------------------------------------------------------------
def test_audit_from_counts_equals_audit_of_predictions() -> None:
    yt, yp, sf = _data(5_000, seed=3)
    a = audit_predictions(yt, yp, sf, policy=_policy(), n_boot=4000, random_state=9)
    table = confusion_counts(yt, yp, sf, policy=_policy())
    b = audit_from_counts(table.to_frame(), policy=_policy(), n_boot=4000, random_state=9)
    # Point estimates and the groups' own (exact) intervals are identical. The gap intervals and detectable gaps
    # differ only through the bootstrap's critical value (predictions draw all facets from one resample of the
    # finest table, counts draw each facet on its own).
    power = [c for c in a.by_group.columns if c.endswith("_detectable_gap")]
    pd.testing.assert_frame_equal(a.by_group.drop(columns=power), b.by_group.drop(columns=power))
    np.testing.assert_allclose(a.by_group[power], b.by_group[power], rtol=0.05)
    dbounds = [c for c in a.disparities.columns if c.endswith(("_low", "_high"))] + ["detectable_gap"]
    cols = ["attribute", "metric", "reference", "difference", "ratio", "group_a", "group_b"]
    pd.testing.assert_frame_equal(a.disparities[cols], b.disparities[cols])
    np.testing.assert_allclose(a.disparities[dbounds], b.disparities[dbounds], atol=0.01)


def test_suppressed_groups_are_reported_without_numbers() -> None:
    counts = pd.DataFrame(
        {
            "attribute": ["gender"] * 3,
            "group": ["man", "vrouw", "x"],
            "tp": [400, 420, 3],
            "fp": [100, 90, 1],
            "fn": [100, 80, 2],
            "tn": [400, 410, 2],
        }
    )
    audit = audit_from_counts(
        counts, suppressed=[("gender", "x")], noise_scale=2.0, policy=_policy(), n_boot=200, random_state=1
    )
    row = audit.by_group.set_index(["attribute", "group"]).loc[("gender", "x")]
    assert row["status"] == "suppressed" and "suppressed by disclosure control" in row["note"]
    numeric = row.drop(["status", "note"]).astype(float)
    assert numeric.isna().all()
    html = audit.to_html()
    assert "<td>x</td><td>suppressed" in html.replace(" ", "")
    assert any("Laplace scale 2" in x for x in audit.limitations)
    with pytest.raises(FairnessInputError, match=r"suppressed names groups that are not in the counts"):
        audit_from_counts(counts, suppressed=[("gender", "y")], n_boot=50)


def test_negative_counts_are_refused() -> None:
    with pytest.raises(FairnessInputError, match=r"non-negative .*clip at 0"):
        FacetCounts(("gender",), (("m",),), np.array([[1.0, -2.0, 3.0, 4.0]]))


def test_to_dict_is_json_without_nan() -> None:
    yt, yp, sf = _data(1_000, seed=8)
    yt = np.where(sf["gender"] == "man", 1, yt)
    d = audit_predictions(yt, yp, sf, policy=_policy(), n_boot=50, random_state=0).to_dict()
    text = json.dumps(d, allow_nan=False)
    assert d["format"] == "sandbox.fairness_audit/1" and "NaN" not in text
    man = next(r for r in d["by_group"] if r["group"] == "man")
    assert man["false_positive_rate"] is None and "no negatives" in man["note"]


# --- properties of the counts ---------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 300),
    levels=st.tuples(st.integers(1, 4), st.integers(1, 3)),
    seed=st.integers(0, 2**32 - 1),
)
def test_counts_partition_the_rows_and_round_trip_through_a_frame(n: int, levels: tuple[int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    sf = pd.DataFrame(
        {
            "gender": rng.choice([f"g{i}" for i in range(levels[0])], n),
            "migration_background": rng.choice([f"m{i}" for i in range(levels[1])], n),
        }
    )
    yt, yp = rng.integers(0, 2, n), rng.integers(0, 2, n)
    pol = _policy(intersections=[["migration_background", "gender"]])
    table = confusion_counts(yt, yp, sf, policy=pol)
    for f in table.facets:
        np.testing.assert_array_equal(f.counts.sum(axis=0), table.overall)  # every facet partitions the rows
        assert (f.counts.sum(axis=1) > 0).all()  # only observed groups
    inter = table.facets[2]
    for (m, g), c in zip(inter.groups, inter.counts, strict=True):
        mask = ((sf["migration_background"] == m) & (sf["gender"] == g)).to_numpy()
        assert c.tolist() == [
            np.sum(mask & (yt == 1) & (yp == 1)),
            np.sum(mask & (yt == 0) & (yp == 1)),
            np.sum(mask & (yt == 1) & (yp == 0)),
            np.sum(mask & (yt == 0) & (yp == 0)),
        ]
    back = CountTable.from_frame(table.to_frame())
    assert [f.name for f in back.facets] == [f.name for f in table.facets]
    for a, b in zip(back.facets, table.facets, strict=True):
        assert a.groups == b.groups
        np.testing.assert_array_equal(a.counts, b.counts)


# --- intervals on any counts: within range, around the estimate, no warnings ------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.tuples(*(st.integers(0, 60) for _ in range(4))).map(list), min_size=2, max_size=5),
    noise=st.sampled_from([0.0, 0.0, 1.5, 20.0]),
    seed=st.integers(0, 2**16),
)
def test_intervals_respect_the_range_and_bracket_the_estimates(
    counts: list[list[int]], noise: float, seed: int
) -> None:
    arr = np.asarray(counts, dtype=float)
    groups = tuple((f"g{i}",) for i in range(len(arr)))
    table = CountTable((FacetCounts(("gender",), groups, arr),), arr.sum(axis=0), noise)
    audit = audit_from_counts(table, policy=_policy(min_group_size=5), n_boot=50, random_state=seed)
    bg = audit.by_group
    for m in ("selection_rate", "true_positive_rate", "false_positive_rate", "precision", "accuracy"):
        ok = bg[m].notna()
        lo, v, hi = (bg.loc[ok, c].to_numpy() for c in (f"{m}_low", m, f"{m}_high"))
        assert ((lo >= 0) & (lo <= v + 1e-12) & (v <= hi + 1e-12) & (hi <= 1)).all(), m
    d = audit.disparities
    for q in ("difference", "ratio"):
        ok = d[q].notna() & d[f"{q}_low"].notna()
        lo, v, hi = (d.loc[ok, c].to_numpy() for c in (f"{q}_low", q, f"{q}_high"))
        assert ((lo >= 0) & (lo <= v + 1e-9) & (v <= hi + 1e-9) & (hi <= 1)).all(), q
    power = d.loc[d["reference"] == "between_groups", "detectable_gap"].dropna()
    assert ((power > 0) & (power <= 1)).all()
    json.dumps(audit.to_dict(), allow_nan=False)


def test_rates_of_0_and_1_everywhere_give_finite_power_without_warnings() -> None:
    # no false positives and every flagged household a real case, in every group
    counts = np.array([[300.0, 0, 100, 600], [280, 0, 120, 600], [320, 0, 80, 600]])
    table = CountTable((FacetCounts(("gender",), (("a",), ("b",), ("c",)), counts),), counts.sum(axis=0))
    audit = audit_from_counts(table, policy=_policy(), n_boot=100, random_state=0)
    d = audit.disparities.set_index(["metric", "reference"])
    assert d.loc[("predictive_parity", "between_groups"), "difference"] == 0.0
    assert 0 < d.loc[("predictive_parity", "between_groups"), "detectable_gap"] < 0.1
    fpr = audit.by_group.set_index("group").loc["a"]
    assert fpr["false_positive_rate"] == 0 and fpr["false_positive_rate_low"] == 0
    assert 0 < fpr["false_positive_rate_high"] < 0.01  # exact: 3.7 / 600 at 95%


def test_an_audit_dict_from_before_power_was_reported_still_rebuilds_and_renders() -> None:
    yt, yp, sf = _data(1_000, seed=2)
    d = audit_predictions(yt, yp, sf, policy=_policy(), n_boot=50, random_state=0).to_dict()
    for key in ("evidence", "interval_method"):
        d.pop(key)
    d["verdict"].pop("insufficient_evidence")
    for r in d["disparities"]:
        r.pop("detectable_gap"), r.pop("evidence")
    for r in d["by_group"]:
        for k in [k for k in r if k.endswith("_detectable_gap")]:
            r.pop(k)
    d["columns"] = {
        k: [c for c in v if "detectable" not in c and c != "evidence"] for k, v in d["columns"].items() if v
    }
    old = FairnessAudit.from_dict(d)
    assert not old.evidence.insufficient and old.evidence.gaps == ()
    assert "<table" in old.to_html("nl") and old.to_dict()["evidence"]["detectable_gaps"] == []
