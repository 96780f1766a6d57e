"""Proxy check (against sklearn's AUC), forbidden features, and mitigation with before/after audits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from sandbox import FairnessInputError, Policy, QueryError
from sandbox.fairness import check_forbidden_features, mitigate, proxy_check

POLICY = Policy.from_mapping(
    {"fairness": {"protected_attributes": ["gender", "migration_background"], "intersections": []}}
)


def _population(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    mig = rng.choice(["nederland", "europa", "buiten_europa"], n, p=[0.7, 0.1, 0.2])
    sf = pd.DataFrame({"gender": rng.choice(["man", "vrouw"], n), "migration_background": mig})
    far = mig == "buiten_europa"
    X = pd.DataFrame(
        {
            "deprived_area": (rng.random(n) < np.where(far, 0.8, 0.15)).astype(int),
            "arrears": rng.poisson(np.where(far, 1.2, 0.6)),
            "noise": rng.normal(size=n),
        }
    )
    return X, sf


def test_binary_proxy_auc_equals_sklearn_auc_of_the_feature_per_fold() -> None:
    """For a binary feature the cross-fitted score is monotone in the feature, so each fold's AUC is sklearn's AUC
    of the raw feature on that fold; the reported AUC is their mean."""
    X, sf = _population(20_000, seed=1)
    far = (sf["migration_background"] == "buiten_europa").to_numpy()
    report = proxy_check(X[["deprived_area"]], {"gender": np.where(far, "vrouw", "man")}, policy=POLICY, random_state=7)
    row = report.table.iloc[0]
    folds = np.random.Generator(np.random.SFC64(7)).integers(0, 2, len(X))
    x, a = X["deprived_area"].to_numpy(), far  # 'vrouw' is the second code, as in the report
    expected = np.mean([roc_auc_score(a[folds == f], x[folds == f]) for f in (0, 1)])
    assert row["auc"] == pytest.approx(expected, abs=1e-12)
    assert row["flagged"] and report.flagged == [("deprived_area", "gender")]


def test_proxy_flags_only_real_proxies_and_names_the_exposed_group() -> None:
    X, sf = _population(20_000, seed=2)
    t = proxy_check(X, sf, policy=POLICY).table.set_index(["feature", "attribute"])
    assert t.loc[("deprived_area", "migration_background"), "flagged"]
    assert t.loc[("deprived_area", "migration_background"), "most_exposed_group"] == "buiten_europa"
    assert t.loc[("deprived_area", "migration_background"), "mutual_information_bits"] > 0.1
    assert abs(t.loc[("noise", "migration_background"), "auc"] - 0.5) < 0.03  # cross-fitting: no optimism
    assert not t.xs("gender", level="attribute")["flagged"].any()


def test_high_cardinality_noise_feature_is_not_a_proxy() -> None:
    rng = np.random.default_rng(3)
    n = 10_000
    X = pd.DataFrame({"postcode": rng.integers(1000, 9999, n).astype(str)})  # ~1 row per postcode
    sf = pd.DataFrame({"gender": rng.choice(["man", "vrouw"], n)})
    auc = proxy_check(X, sf, policy=POLICY).table["auc"].iloc[0]
    assert abs(auc - 0.5) < 0.03


def test_forbidden_features_are_refused_naming_feature_and_policy() -> None:
    check_forbidden_features(["income", "national_debt_share"])  # only the exact name or its one-hot columns
    with pytest.raises(QueryError, match=r"'Nationality' \(forbidden: 'nationality'\) under policy 'default'"):
        check_forbidden_features(["income", "Nationality"])
    pol = Policy.from_mapping({"forbidden_features": ["nationality", "religion"]})
    with pytest.raises(QueryError, match=r"'religion_islam' \(forbidden: 'religion'\)"):
        proxy_check(pd.DataFrame({"religion_islam": [0, 1]}), {"gender": ["m", "v"]}, policy=pol)


def _mitigation_data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    X, sf = _population(n, seed)
    rng = np.random.default_rng(seed + 100)
    logit = -1.2 + 0.9 * X["arrears"] + 1.2 * X["deprived_area"] + rng.normal(0, 0.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y, sf[["migration_background"]]


@pytest.mark.parametrize("method", ["threshold_optimizer", "exponentiated_gradient"])
def test_mitigation_narrows_the_decisive_gap_and_audits_both(method: str) -> None:
    X, y, sf = _mitigation_data(6_000, seed=4)
    Xt, yt, st = _mitigation_data(6_000, seed=5)
    res = mitigate(
        LogisticRegression(),
        X,
        y,
        sf,
        method=method,
        constraint="demographic_parity",
        X_test=Xt,
        y_test=yt,
        sensitive_test=st,
        policy=POLICY,
        n_boot=100,
        random_state=0,
    )

    def gap(audit) -> float:
        d = audit.disparities.set_index(["attribute", "metric", "reference"])
        return float(d.loc[("migration_background", "demographic_parity", "between_groups"), "difference"])

    assert gap(res.before) > 0.15
    assert gap(res.after) < gap(res.before) / 2
    # the 'before' audit is the audit of the plain estimator's predictions on the test rows
    plain = LogisticRegression().fit(X, y).predict(Xt)
    sel = res.before.by_group.set_index("attribute").loc["overall", "selection_rate"]
    assert sel == pytest.approx(plain.mean(), abs=1e-12)
    assert set(res.summary()["model"]) == {"before", "after"} and res.evaluated_on == "held-out rows"


def test_mitigation_default_constraint_follows_the_policy_and_bad_args_are_refused() -> None:
    X, y, sf = _mitigation_data(1_500, seed=6)
    res = mitigate(LogisticRegression(), X, y, sf, policy=POLICY, n_boot=50)
    assert res.constraint == "equalized_odds" and "training rows" in res.evaluated_on
    with pytest.raises(FairnessInputError, match=r"method must be one of .*got 'magic'"):
        mitigate(LogisticRegression(), X, y, sf, method="magic", policy=POLICY)
    with pytest.raises(FairnessInputError, match=r"X_test needs y_test and sensitive_test"):
        mitigate(LogisticRegression(), X, y, sf, X_test=X, policy=POLICY)
    with pytest.raises(QueryError, match=r"forbidden feature"):
        mitigate(LogisticRegression(), X.assign(nationality=1), y, sf, policy=POLICY)
