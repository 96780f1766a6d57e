"""DP models against scikit-learn at huge epsilon, and client-side predictions from JSON parameters.

Tolerances: at epsilon = 1e6 the logistic regression and the naive Bayes are the sklearn estimators on the same
design matrix up to noise of order 1/epsilon (coefficients within 1e-3, identical predictions); the linear
regression's predictions lie within 0.1% of the target's spread of sklearn's; diffprivlib's forest is built from
random splits (not CART), so its reference is the majority class of each leaf (see that test). The design the vault
fits includes its public anchor rows (one per class, or one for a regression: ``fitting.anchor_rows``), so the
references are fitted on the same rows; what the anchors change is measured against sklearn without them. The
vault fits on the households the public hold-out rule keeps in (``shared.holdout``; the others measure the model's
quality, ``tests/test_dp_quality.py``), so every reference is fitted on those (``_training``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.naive_bayes import GaussianNB
from test_dp_tables import engine_policy, households_frame, households_schema, persons_frame, persons_schema

from sandbox._private.shared.errors import QueryError
from sandbox._private.shared.holdout import held_out
from sandbox._private.shared.model_params import design_matrix, predict_from_params, predict_proba_from_params
from sandbox._private.shared.modelspec import ModelSpec
from sandbox._private.shared.policy import Policy
from sandbox._private.vault.dp.engine import DPEngine, FittedAnswer
from sandbox._private.vault.dp.fitting import anchor_rows
from sandbox._private.vault.dp.tabledata import TableData

FEATURES = ("household_type", "income", "arrears", "n_children")
ENGINE = DPEngine(engine_policy())


@pytest.fixture(scope="module")
def hh() -> tuple[pd.DataFrame, TableData]:
    frame = households_frame(4_000, seed=5)
    return frame, TableData.from_frame(frame, households_schema())


def _anchored(fitted: FittedAnswer, table: TableData, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The design the vault fitted: the rows and its public anchor rows (after them)."""
    assert fitted.spec is not None
    X_a, y_a = anchor_rows(fitted.spec, table, fitted.public["preprocessing"])
    assert fitted.public["anchor_rows"] == len(y_a)
    return np.vstack([X, X_a]), np.concatenate([y, y_a.astype(y.dtype)])


def _training(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows the vault fits on: households the public hold-out rule does not hold out."""
    return frame[~held_out(frame.household_id.to_numpy())].reset_index(drop=True)


def _vault_order(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame in TableData's row order (stably sorted by household)."""
    return frame.iloc[np.argsort(frame.household_id.to_numpy(), kind="stable")].reset_index(drop=True)


def test_logistic_regression_at_huge_epsilon_is_sklearns(hh: Any) -> None:
    frame, table = hh
    fitted = ENGINE.fit(ModelSpec("logistic_regression", "debt", FEATURES), table, 1e6)
    frame = _training(frame)
    X, y = design_matrix(fitted.public, frame), frame.debt.to_numpy()
    ref = LogisticRegression(C=1.0, max_iter=1000).fit(*_anchored(fitted, table, X, y.astype(int)))
    p = fitted.public["params"]
    assert np.allclose(p["coef"], ref.coef_, atol=1e-3)
    assert np.allclose(p["intercept"], ref.intercept_, atol=1e-3)
    assert np.array_equal(predict_from_params(fitted.public, frame), ref.predict(X).astype(bool))
    assert fitted.public["classes"] == [False, True]
    # what the two anchor rows change: the probabilities of sklearn without them, within 0.75 percentage points
    # (2 anchors among the 3,204 training rows; their pull shrinks as 1/n)
    plain = LogisticRegression(C=1.0, max_iter=1000).fit(X, y)
    moved = np.abs(predict_proba_from_params(fitted.public, frame)[:, 1] - plain.predict_proba(X)[:, 1])
    assert moved.max() < 0.0075, moved.max()


def test_gaussian_nb_at_huge_epsilon_is_sklearns(hh: Any) -> None:
    frame, table = hh
    fitted = ENGINE.fit(ModelSpec("gaussian_nb", "debt_level", FEATURES), table, 1e6)
    frame = _training(frame)
    X = design_matrix(fitted.public, frame)
    y = frame.debt_level.map({"none": 0, "low": 1, "high": 2}).to_numpy()
    ref = GaussianNB(var_smoothing=1e-9).fit(*_anchored(fitted, table, X, y))
    p = fitted.public["params"]
    assert np.allclose(p["theta"], ref.theta_, atol=1e-3)
    assert np.allclose(p["var"], ref.var_, atol=1e-3)
    assert np.allclose(p["class_prior"], ref.class_prior_, atol=1e-3)
    labels = np.array(["none", "low", "high"], dtype=object)
    assert np.array_equal(predict_from_params(fitted.public, frame), labels[ref.predict(X)])


def test_linear_regression_at_huge_epsilon_predicts_like_sklearn(hh: Any) -> None:
    frame, table = hh
    spec = ModelSpec("linear_regression", "income", ("household_type", "arrears", "n_children", "debt"))
    fitted = ENGINE.fit(spec, table, 1e6)
    frame = _training(frame)
    X = design_matrix(fitted.public, frame)
    ref = LinearRegression().fit(*_anchored(fitted, table, X, frame.income.to_numpy()))
    diff = np.abs(predict_from_params(fitted.public, frame) - ref.predict(X))
    assert diff.max() <= 1e-3 * frame.income.std()
    plain = LinearRegression().fit(X, frame.income)  # the one anchor row moves predictions by under 1% of the spread
    assert np.abs(ref.predict(X) - plain.predict(X)).max() <= 1e-2 * frame.income.std()


def test_random_forest_at_huge_epsilon_labels_each_leaf_with_its_majority_class(hh: Any) -> None:
    """diffprivlib's trees split at random (data-independent); only the leaf labels use the data.

    At huge epsilon the permute-and-flip choice of a leaf's label is the majority class of the training rows that
    reach it (each tree sees its own contiguous share of the rows). That exact reference is checked for every leaf
    with a unique majority; the forest's accuracy must also beat the majority-class rate.
    """
    frame, table = hh
    spec = ModelSpec("random_forest", "debt", FEATURES, params={"n_estimators": 10, "max_depth": 6})
    fitted = ENGINE.fit(spec, table, 1e6)
    ordered = _training(_vault_order(frame))
    X, y = _anchored(fitted, table, design_matrix(fitted.public, ordered), ordered.debt.to_numpy().astype(int))
    X32 = X.astype(np.float32)
    trees = fitted.public["params"]["trees"]
    share = (np.arange(len(y)) // (len(y) / len(trees))).astype(int)
    checked = 0
    for i, tree in enumerate(trees):
        leaves = _leaf_of(tree, X32[share == i])
        for leaf in np.unique(leaves):
            counts = np.bincount(y[share == i][leaves == leaf], minlength=2)
            if counts[0] != counts[1]:
                assert int(np.argmax(tree["value"][leaf])) == int(np.argmax(counts))
                checked += 1
    assert checked >= 3 * len(trees)  # typically ~9 leaves per tree hold rows with a clear majority
    y_true, y_pred, score = ENGINE.predict_in_vault(fitted, table)
    assert float(np.mean(y_true == y_pred)) > max(y.mean(), 1 - y.mean())
    assert score is not None and np.all((score >= 0) & (score <= 1))


def _leaf_of(tree: dict[str, Any], X32: np.ndarray) -> np.ndarray:
    left, right = np.asarray(tree["children_left"]), np.asarray(tree["children_right"])
    node = np.zeros(len(X32), dtype=int)
    while (left[node] >= 0).any():
        inner = left[node] >= 0
        go_left = X32[np.arange(len(X32)), np.asarray(tree["feature"])[node]] <= np.asarray(tree["threshold"])[node]
        node = np.where(inner, np.where(go_left, left[node], right[node]), node)
    return node


@pytest.mark.parametrize(
    ("estimator", "target", "params"),
    [
        ("logistic_regression", "debt", {}),
        ("logistic_regression", "debt_level", {"C": 0.5}),
        ("gaussian_nb", "debt", {}),
        ("random_forest", "debt_level", {"n_estimators": 5, "max_depth": 4}),
        ("linear_regression", "income", {}),
    ],
)
def test_client_predictions_from_json_equal_the_vault_model(hh: Any, estimator: str, target: str, params: Any) -> None:
    frame, table = hh
    features = tuple(f for f in FEATURES if f != target)
    fitted = ENGINE.fit(ModelSpec(estimator, target, features, params=params), table, 1.0)
    public = json.loads(json.dumps(fitted.public))  # what the client receives
    ordered = _vault_order(frame)
    y_true, y_pred, y_score = ENGINE.predict_in_vault(fitted, table)
    client = predict_from_params(public, ordered)
    if estimator == "linear_regression":
        assert np.allclose(client, y_pred, rtol=1e-9, atol=1e-6)
        assert y_score is None
        with pytest.raises(QueryError, match="has no predict_proba; use predict"):
            predict_proba_from_params(public, ordered)
        return
    assert np.array_equal(client, y_pred)
    X = design_matrix(public, ordered)
    assert np.allclose(predict_proba_from_params(public, ordered), fitted.model.predict_proba(X), atol=1e-9)
    assert np.array_equal(y_true, ordered[target].to_numpy().astype(object))
    # after a vault restart the estimator object is gone: predictions come from the parameters alone
    reloaded = FittedAnswer(public=public, private=fitted.private, spec=None, model=None)
    assert np.array_equal(ENGINE.predict_in_vault(reloaded, table)[1], y_pred)


def test_public_parameters_carry_preprocessing_from_the_schema_only(hh: Any) -> None:
    frame, table = hh
    fitted = ENGINE.fit(ModelSpec("logistic_regression", "debt", ("household_type", "income")), table, 1.0)
    pub = fitted.public
    assert pub["feature_names"] == [f"household_type={c}" for c in households_schema().group_keys("household_type")] + [
        "income"
    ]
    assert pub["preprocessing"][1] == {
        "column": "income",
        "kind": "float",
        "lower": 0.0,
        "upper": 200_000.0,
        "outputs": ["income"],
    }
    assert pub["mechanism"] == "diffprivlib.models.LogisticRegression" and pub["epsilon"] == 1.0
    assert fitted.private["n_rows"] == len(_training(frame))
    assert fitted.private["n_rows_heldout"] == len(frame) - len(_training(frame))
    text = json.dumps(pub)
    assert "household_id" not in text


def test_rows_with_missing_features_are_dropped_and_counted_privately(hh: Any) -> None:
    frame, table = hh
    fitted = ENGINE.fit(ModelSpec("gaussian_nb", "debt", ("savings", "arrears")), table, 1.0)
    train = _training(frame)
    assert fitted.private == {
        "n_rows": int(train.savings.notna().sum()),
        "n_rows_heldout": int(frame.savings.notna().sum() - train.savings.notna().sum()),
        "n_rows_dropped_missing": int(frame.savings.isna().sum()),
    }
    assert ENGINE.model_rows(fitted, table).sum() == fitted.private["n_rows"] + fitted.private["n_rows_heldout"]


def test_client_prediction_refuses_missing_values(hh: Any) -> None:
    frame, table = hh
    fitted = ENGINE.fit(ModelSpec("gaussian_nb", "debt", ("household_type", "savings")), table, 1.0)
    with pytest.raises(QueryError, match=r"'savings' has missing values; drop or fill those rows"):
        predict_from_params(fitted.public, frame)
    bad = frame.assign(household_type="castle")
    with pytest.raises(QueryError, match=r"outside the schema's categories; drop or fill"):
        predict_from_params(fitted.public, bad.dropna())


@pytest.mark.parametrize(
    ("spec", "table", "eps", "match"),
    [
        (
            ModelSpec("logistic_regression", "debt", ("nationality", "income")),
            "hh",
            1.0,
            r"Features \['nationality'\] are forbidden by the policy",
        ),
        (
            ModelSpec("logistic_regression", "employed", ("gender",)),
            "persons",
            1.0,
            r"allows 12 rows per household; fit on the household-level table",
        ),
        (ModelSpec("gaussian_nb", "income", ("arrears",)), "hh", 1.0, r"target 'income' is float; use a category"),
        (ModelSpec("linear_regression", "household_type", ("arrears",)), "hh", 1.0, r"needs a numeric target"),
        (ModelSpec("gaussian_nb", "debt", ("wealth",)), "hh", 1.0, r"no column 'wealth'"),
        (
            ModelSpec("gaussian_nb", "debt", ("arrears",)),
            "hh",
            3.0,
            r"epsilon=3 exceeds the policy's per-query maximum",
        ),
        (ModelSpec("gaussian_nb", "debt", ("arrears",)), "hh", float("nan"), r"finite and greater than 0"),
        (ModelSpec("gaussian_nb", "debt", ("arrears",)), "hh", 0.0, r"finite and greater than 0"),
    ],
)
def test_forbidden_or_malformed_fits_raise_query_error(
    hh: Any, spec: ModelSpec, table: str, eps: float, match: str
) -> None:
    data = hh[1] if table == "hh" else TableData.from_frame(persons_frame(50), persons_schema())
    with pytest.raises(QueryError, match=match):
        DPEngine(Policy()).fit(spec, data, eps)
    with pytest.raises(QueryError, match=match):
        DPEngine(Policy()).cost(spec, data.schema, epsilon=eps)


def test_cost_of_a_model_needs_epsilon() -> None:
    with pytest.raises(QueryError, match=r"needs epsilon; pass epsilon="):
        DPEngine(Policy()).cost(ModelSpec("gaussian_nb", "debt", ("arrears",)), households_schema())


def test_privacy_leak_warnings_are_errors_inside_the_engine() -> None:
    from diffprivlib.models import GaussianNB as DPGaussianNB
    from diffprivlib.utils import PrivacyLeakWarning

    from sandbox._private.vault.dp.mechanisms import no_privacy_leaks

    X, y = np.random.default_rng(0).random((50, 2)), np.arange(50) % 2
    with pytest.raises(PrivacyLeakWarning, match="Bounds have not been specified"), no_privacy_leaks():
        DPGaussianNB(epsilon=1.0).fit(X, y)  # bounds read from the data: refused
