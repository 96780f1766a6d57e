"""Point estimates of the fairness audit against fairlearn's MetricFrame and disparity functions."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score, precision_score

from sandbox import Policy
from sandbox.fairness import audit_predictions

ATTRS = ("gender", "age_band", "migration_background", "disability")
TOL = 1e-12


def _policy(intersections: list[list[str]], min_group_size: int = 1) -> Policy:
    return Policy.from_mapping(
        {
            "fairness": {
                "protected_attributes": list(ATTRS),
                "intersections": intersections,
                "min_group_size": min_group_size,
            }
        }
    )


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    sf = pd.DataFrame(
        {
            "gender": rng.choice(["man", "vrouw"], n),
            "age_band": rng.choice(["18-26", "27-44", "45-66", "67+"], n, p=[0.15, 0.35, 0.35, 0.15]),
            "migration_background": rng.choice(["Nederland", "Europa", "buiten Europa"], n, p=[0.7, 0.12, 0.18]),
            "disability": rng.choice(["ja", "nee"], n, p=[0.2, 0.8]),
        }
    )
    # Labels and predictions depend on the groups, so the rates really differ between them.
    logit = -1.0 + 0.6 * (sf["migration_background"] == "buiten Europa") + 0.3 * (sf["gender"] == "vrouw")
    yt = (rng.random(n) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(int)
    yp = np.where(rng.random(n) < 0.75, yt, 1 - yt)
    yp = np.where((sf["age_band"] == "67+").to_numpy() & (rng.random(n) < 0.2), 1, yp)
    return yt, yp, sf


METRICS = {
    "count": count,
    "selection_rate": selection_rate,
    "true_positive_rate": true_positive_rate,
    "false_positive_rate": false_positive_rate,
    "false_negative_rate": false_negative_rate,
    "precision": lambda t, p: precision_score(t, p, zero_division=np.nan),
    "accuracy": accuracy_score,
    "base_rate": lambda t, p: float(np.mean(t)),
}

# every pair and the four-way intersection (the triples add run time, not coverage)
ALL_INTERSECTIONS = [list(c) for r in (2, 4) for c in itertools.combinations(ATTRS, r)] + [
    ["disability", "migration_background"]  # a pair in the reverse of the column order
]
# fairlearn's MetricFrame costs ~35 ms per group and metric, so the fast test uses two pairs
FAST_INTERSECTIONS = [["gender", "migration_background"], ["disability", "migration_background"]]


@pytest.fixture(scope="module")
def audited() -> tuple[np.ndarray, np.ndarray, pd.DataFrame, object]:
    yt, yp, sf = _data(20_000, seed=7)
    audit = audit_predictions(yt, yp, sf, policy=_policy(ALL_INTERSECTIONS), n_boot=100, random_state=3)
    return yt, yp, sf, audit


def _compare_with_metricframe(yt, yp, sf, audit, facets) -> int:
    by_group = audit.by_group
    compared = 0
    for facet in facets:
        mf = MetricFrame(metrics=METRICS, y_true=yt, y_pred=yp, sensitive_features=sf[list(facet)])
        ours = by_group[by_group["attribute"] == " × ".join(facet)].set_index("group")
        assert len(ours) == len(mf.by_group), facet
        for key, row in mf.by_group.iterrows():
            label = " × ".join(key) if isinstance(key, tuple) else str(key)
            for metric in METRICS:
                expected, got = float(row[metric]), float(ours.loc[label, metric])
                assert got == pytest.approx(expected, abs=TOL, rel=0), (facet, label, metric)
                compared += 1
    return compared


def test_group_metrics_equal_metricframe_attributes_and_pairs(audited) -> None:
    yt, yp, sf, audit = audited
    facets = [(a,) for a in ATTRS] + [tuple(c) for c in FAST_INTERSECTIONS]
    # 2 + 4 + 3 + 2 groups, then 6 + 6 intersection groups
    assert _compare_with_metricframe(yt, yp, sf, audit, facets) == 8 * 23


@pytest.mark.slow
def test_group_metrics_equal_metricframe_all_intersections(audited) -> None:
    yt, yp, sf, audit = audited
    facets = [(a,) for a in ATTRS] + [tuple(c) for c in ALL_INTERSECTIONS]
    # 4 attributes + 6 pairs + the four-way + a pair in reverse order: 11 + 44 + 48 + 6 = 109 groups
    assert _compare_with_metricframe(yt, yp, sf, audit, facets) == 8 * 109


def test_overall_row_equals_metricframe_overall(audited) -> None:
    yt, yp, sf, audit = audited
    mf = MetricFrame(metrics=METRICS, y_true=yt, y_pred=yp, sensitive_features=sf["gender"])
    overall = audit.by_group.set_index("attribute").loc["overall"]
    for metric in METRICS:
        assert float(overall[metric]) == pytest.approx(float(mf.overall[metric]), abs=TOL, rel=0)


@pytest.mark.parametrize("facet", [("gender",), ("migration_background",), ("age_band", "disability")])
def test_disparities_equal_fairlearn_functions(audited, facet: tuple[str, ...]) -> None:
    yt, yp, sf, audit = audited
    d = audit.disparities
    d = d[d["attribute"] == " × ".join(facet)].set_index(["metric", "reference"])
    s = sf[list(facet)]
    for method in ("between_groups", "to_overall"):
        dp_d = demographic_parity_difference(yt, yp, sensitive_features=s, method=method)
        dp_r = demographic_parity_ratio(yt, yp, sensitive_features=s, method=method)
        eo_d = equalized_odds_difference(yt, yp, sensitive_features=s, method=method)
        eo_r = equalized_odds_ratio(yt, yp, sensitive_features=s, method=method)
        assert d.loc[("demographic_parity", method), "difference"] == pytest.approx(dp_d, abs=TOL)
        assert d.loc[("demographic_parity", method), "ratio"] == pytest.approx(dp_r, abs=TOL)
        assert d.loc[("equalized_odds", method), "difference"] == pytest.approx(eo_d, abs=TOL)
        assert d.loc[("equalized_odds", method), "ratio"] == pytest.approx(eo_r, abs=TOL)
        tpr = MetricFrame(metrics=true_positive_rate, y_true=yt, y_pred=yp, sensitive_features=s)
        assert d.loc[("equal_opportunity", method), "difference"] == pytest.approx(tpr.difference(method), abs=TOL)
        assert d.loc[("equal_opportunity", method), "ratio"] == pytest.approx(tpr.ratio(method), abs=TOL)
        prec = MetricFrame(metrics=METRICS["precision"], y_true=yt, y_pred=yp, sensitive_features=s)
        assert d.loc[("predictive_parity", method), "difference"] == pytest.approx(prec.difference(method), abs=TOL)


def test_intervals_bracket_the_point_estimates(audited) -> None:
    *_, audit = audited
    bg = audit.by_group
    for m in ("selection_rate", "true_positive_rate", "false_positive_rate", "precision"):
        ok = bg[m].notna()
        assert (bg.loc[ok, f"{m}_low"] <= bg.loc[ok, m] + 1e-9).mean() > 0.97
        assert (bg.loc[ok, f"{m}_high"] >= bg.loc[ok, m] - 1e-9).mean() > 0.97
        assert (bg.loc[ok, f"{m}_high"] - bg.loc[ok, f"{m}_low"] > 0).all()


def test_same_seed_same_audit_and_named_bit_generator() -> None:
    yt, yp, sf = _data(2_000, seed=1)
    a = audit_predictions(yt, yp, sf[["gender", "age_band"]], n_boot=100, random_state=5)
    b = audit_predictions(yt, yp, sf[["gender", "age_band"]], n_boot=100, random_state=5)
    c = audit_predictions(yt, yp, sf[["gender", "age_band"]], n_boot=100, random_state=6)
    pd.testing.assert_frame_equal(a.by_group, b.by_group)
    pd.testing.assert_frame_equal(a.disparities, b.disparities)
    # the groups' own intervals are exact (Clopper-Pearson): no resampling, so the seed does not move them
    rates = [col for col in a.by_group.columns if col.endswith(("_low", "_high"))]
    pd.testing.assert_frame_equal(a.by_group[rates], c.by_group[rates])
    # the gap intervals rest on the bootstrap's critical value: another seed moves them a little
    gaps = a.disparities["difference_high"], c.disparities["difference_high"]
    assert not np.allclose(*gaps, rtol=0, atol=1e-12)
    np.testing.assert_allclose(*gaps, atol=0.05)
