"""The analyst's result objects against scikit-learn and pandas: model attributes, values, budgets, marked frames.

References: a scikit-learn estimator given our ``coef_`` / ``intercept_`` / ``classes_`` must predict, give the
same probabilities and score as our model on the same dummy frame; at ε = 1e6 our coefficients are sklearn's fit
on the same design matrix (within 1e-3, the tolerance of tests/test_dp_models.py).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, r2_score
from test_dp_tables import engine_policy, households_frame, households_schema

from sandbox._private.kernel.budget import Budget
from sandbox._private.kernel.fitted import FittedModel
from sandbox._private.kernel.mime import DUMMY_ATTR, RESULT_ATTR, SANDBOX_RESULT_MIME
from sandbox._private.kernel.results import AuditResult, DPResult
from sandbox._private.kernel.studies.display import frame_display
from sandbox._private.kernel.studies.scrub import classify_output
from sandbox._private.shared.errors import QueryError, SandboxWarning
from sandbox._private.shared.holdout import held_out
from sandbox._private.shared.model_params import design_matrix
from sandbox._private.shared.modelspec import ModelSpec
from sandbox._private.shared.policy import default_policy_path
from sandbox._private.shared.verdict import Verdict
from sandbox._private.vault.dp.engine import DPEngine
from sandbox._private.vault.dp.fitting import anchor_rows
from sandbox._private.vault.dp.tabledata import TableData
from sandbox._private.vault.server import open_service

FEATURES = ("household_type", "income", "arrears", "n_children")
ENGINE = DPEngine(engine_policy())


def _payload(kind: str, values: dict[str, Any], query: dict[str, Any], epsilon: float = 1e6) -> dict[str, Any]:
    return {
        "id": "r_test",
        "sha256": "0" * 64,
        "dataset": "households",
        "version": 1,
        "kind": kind,
        "query": query,
        "epsilon": epsilon,
        "delta": 0.0,
        "mechanism": "test",
        "values": values,
    }


@pytest.fixture(scope="module")
def hh() -> tuple[pd.DataFrame, TableData]:
    frame = households_frame(4_000, seed=5)
    return frame, TableData.from_frame(frame, households_schema())


def _model(hh: tuple[pd.DataFrame, TableData], spec: ModelSpec) -> FittedModel:
    fitted = ENGINE.fit(spec, hh[1], 1e6)
    query = {"dataset": "households", "spec": spec.to_dict(), "epsilon": 1e6}
    return FittedModel.from_payload(_payload("model", fitted.public, query))


def test_logistic_regression_attributes_are_sklearns(hh: tuple[pd.DataFrame, TableData]) -> None:
    frame = hh[0]
    model = _model(hh, ModelSpec("logistic_regression", "debt", FEATURES))
    values = dict(model.to_dict()["values"])
    X, y = design_matrix(values, frame), frame.debt.to_numpy()
    # the vault adds its public anchor rows (one per class, at the centre of the encoded space): so does the reference
    X_a, y_a = anchor_rows(ModelSpec("logistic_regression", "debt", FEATURES), hh[1], values["preprocessing"])
    assert values["anchor_rows"] == len(y_a) == 2
    train = ~held_out(frame.household_id.to_numpy())  # the vault fits on the households not held out
    X_fit, y_fit = np.vstack([X[train], X_a]), np.concatenate([y[train], y_a == 1])
    fitted_ref = LogisticRegression(C=1.0, max_iter=1000).fit(X_fit, y_fit)
    assert np.allclose(model.coef_, fitted_ref.coef_, atol=1e-3)
    assert np.allclose(model.intercept_, fitted_ref.intercept_, atol=1e-3)
    # a sklearn estimator carrying our attributes predicts and scores as our model does
    ref = LogisticRegression()
    ref.coef_, ref.intercept_, ref.classes_ = model.coef_, np.asarray(model.intercept_), np.array([False, True])
    assert list(model.classes_) == [False, True]
    assert np.allclose(model.predict_proba(frame), ref.predict_proba(X), atol=1e-12)
    assert np.array_equal(model.predict(frame).astype(bool), ref.predict(X))
    assert model.score(frame) == pytest.approx(ref.score(X, y), abs=1e-12)
    assert model.score(frame, y) == pytest.approx(accuracy_score(y, ref.predict(X)), abs=1e-12)
    assert list(model.feature_names_in_) == list(FEATURES) and model.n_features_in_ == 4
    assert model.get_feature_names_out().shape == (X.shape[1],) == (model.coef_.shape[1],)


def test_linear_regression_attributes_and_r2_are_sklearns(hh: tuple[pd.DataFrame, TableData]) -> None:
    frame = hh[0]
    model = _model(hh, ModelSpec("linear_regression", "income", ("household_type", "arrears", "n_children")))
    X = design_matrix(dict(model.to_dict()["values"]), frame)
    ref = LinearRegression()
    ref.coef_, ref.intercept_ = model.coef_, model.intercept_
    assert isinstance(model.intercept_, float) and model.coef_.shape == (X.shape[1],)
    assert np.allclose(model.predict(frame), ref.predict(X), atol=1e-9)
    assert model.score(frame) == pytest.approx(r2_score(frame.income, ref.predict(X)), abs=1e-12)
    with pytest.raises(AttributeError, match="no classes_"):
        _ = model.classes_


def test_models_without_coefficients_say_where_their_parameters_are(hh: tuple[pd.DataFrame, TableData]) -> None:
    model = _model(hh, ModelSpec("gaussian_nb", "debt_level", FEATURES))
    with pytest.raises(AttributeError, match=r"linear models only; this is a gaussian_nb \(see \.params"):
        _ = model.coef_
    assert len(model.classes_) == model.predict_proba(hh[0]).shape[1]
    card = model._repr_html_()
    assert "gaussian_nb" in card and "debt_level" in card and "{" not in card  # a model card, not the JSON
    with pytest.raises(QueryError, match=r"pass y=\.\.\., or a frame with column 'debt_level'"):
        model.score(hh[0].drop(columns=["debt_level"]))


def test_model_card_is_compact_and_lists_the_largest_coefficients(hh: tuple[pd.DataFrame, TableData]) -> None:
    model = _model(hh, ModelSpec("logistic_regression", "debt", FEATURES))
    card = model._repr_html_()
    assert card.count("<tr>") <= 8 + 8 and len(card) < 3_000
    top = np.argmax(np.abs(model.coef_[0]))
    assert str(model.get_feature_names_out()[top]) in card


def _answer(rows: list[dict[str, Any]], by: list[str]) -> DPResult:
    values = {"columns": [*by, "value", "noise_scale", "ci95"], "rows": rows}
    return DPResult.from_payload(_payload("aggregate", values, {"kind": "mean", "column": "income", "by": by}, 1.0))


def test_an_ungrouped_answer_has_a_value_and_a_grouped_one_says_to_use_to_pandas() -> None:
    one = _answer([{"value": 1234.5, "noise_scale": 3.0, "ci95": 9.0}], [])
    assert one.value == 1234.5 and one.ci95 == 9.0
    grouped = _answer([{"g": "a", "value": 1.0, "noise_scale": 1, "ci95": 2}] * 2, ["g"])
    with pytest.raises(QueryError, match=r"2 cells \(grouped by \['g'\]\); \.value is for one ungrouped cell"):
        _ = grouped.value


def test_frames_from_results_and_dummy_frames_are_kept_by_the_save_guard() -> None:
    """A table built from a DP answer is displayed with the result marker; an untagged frame is refused."""
    frame = _answer([{"g": "a", "value": 1.0, "noise_scale": 1, "ci95": 2}] * 3, ["g"]).to_pandas()
    assert frame.attrs[RESULT_ATTR]["id"] == "r_test" and frame.head(2).attrs[RESULT_ATTR]["id"] == "r_test"
    bundle = frame_display(frame.head(2))
    assert bundle is not None and SANDBOX_RESULT_MIME in bundle
    assert classify_output({"output_type": "execute_result", "data": bundle}) is None
    plain = pd.DataFrame(frame.to_dict())  # the same numbers without the tag: refused
    assert frame_display(plain) is None
    html = plain._repr_html_()
    assert classify_output({"output_type": "execute_result", "data": {"text/html": html}}) is not None
    dummy = pd.DataFrame({"a": [1, 2, 3]})
    dummy.attrs[DUMMY_ATTR] = {"dataset": "households"}
    kept = frame_display(dummy.head(2))
    assert kept is not None and classify_output({"output_type": "display_data", "data": kept}) is None


def test_audit_tables_are_marked_frames() -> None:
    from sandbox.fairness import audit_predictions

    rng = np.random.default_rng(3)
    n = 600
    y = rng.random(n) < 0.3
    pred = y ^ (rng.random(n) < 0.2)
    audit = audit_predictions(y, pred, pd.DataFrame({"gender": rng.choice(["m", "v"], n)}))
    result = AuditResult.from_payload(_payload("audit", {**audit.to_dict(), "model_id": "r_m"}, {}, 0.5))
    for table in (result.disparities.head(), result.by_group):
        assert table.attrs[RESULT_ATTR]["kind"] == "audit" and frame_display(table) is not None


def test_budget_reads_well_and_still_reads_like_the_old_dict() -> None:
    payload = {
        "dataset": "households",
        "version": 2,
        "epsilon_total": 10.0,
        "epsilon_spent": 1.9499999999999993,
        "epsilon_remaining": 8.050000000000001,
        "delta_total": 1e-6,
        "delta_spent": 0.0,
        "delta_remaining": 1e-6,
        "answers": 7,
        "analyst": "ann",
        "analyst_epsilon_spent": 1.0,
        "analyst_epsilon_limit": 5.0,
        "population": "pop_1",
    }
    budget = Budget.from_payload(payload)
    assert repr(budget) == "Budget(households: ε spent 1.95 of 10, 8.05 left, yours 1 of 5; 7 answers)"
    assert budget["epsilon_remaining"] == 8.050000000000001 and dict(budget) == payload  # exact figures kept
    assert budget.analyst_epsilon_remaining == 4.0 and budget.population == "pop_1"
    assert "1.95" in budget._repr_html_() and "19%" in budget._repr_html_()


def test_verdict_shows_compactly() -> None:
    v = Verdict("review", ("gap 0.12 exceeds 0.10", "group x is small"))
    assert repr(v) == "Verdict('review', 2 reasons; see .reasons)" and str(v) == "review"
    assert v._repr_html_().count("<li>") == 2


def test_forbidden_features_are_refused_before_a_charge_and_cost_warns(small_population: Path, tmp_path: Path) -> None:
    """fit() refuses a forbidden feature with nothing charged; cost() of the same spec warns (spec + policy only)."""
    policy = tmp_path / "p.yaml"
    text = default_policy_path().read_text()
    assert "forbidden_features: [nationality]" in text
    forbid = "forbidden_features: [nationality, urbanisation]"
    policy.write_text(text.replace("forbidden_features: [nationality]", forbid))
    svc = open_service(tmp_path / "ws", policy=policy)
    svc.registry.add_population(small_population)
    svc.tokens.create("ann", "analyst")
    caller = svc.tokens.list()[0]
    spec = {"estimator": "logistic_regression", "target": "arrears", "features": ["income", "urbanisation"]}
    body = {"dataset": "households", "spec": spec, "epsilon": 0.5}
    with pytest.raises(QueryError, match=r"forbidden by the policy \(forbidden_features\)"):
        svc.fit(body, caller, None)
    assert svc.ledger.charges() == []
    cost = svc.fit_cost(body)
    assert cost["epsilon"] == 0.5 and any("fit() will refuse this spec" in w for w in cost["warnings"])


def test_cost_warns_about_protected_attributes_used_as_features() -> None:
    spec = ModelSpec("logistic_regression", "debt", FEATURES)
    warns = spec.policy_warnings(engine_policy())
    assert len(warns) == 1 and "household_type" in warns[0] and "direct distinction" in warns[0]
    assert spec.policy_refusals(engine_policy()) == []


def test_the_kernel_turns_vault_warnings_into_python_warnings() -> None:
    from sandbox._private.kernel.workspace import Dataset

    class _FakeTransport:
        url = "http://vault"

        def post(self, path: str, body: Any) -> Any:
            return {"epsilon": 0.5, "delta": 0.0, "warnings": ["fit() will refuse this spec: x"]}

    ds = Dataset(_FakeTransport(), "households")  # type: ignore[arg-type]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cost = ds.cost(ModelSpec("logistic_regression", "debt", ("income",)), epsilon=0.5)
    assert cost.warnings == ("fit() will refuse this spec: x",) and math.isclose(cost.epsilon, 0.5)
    assert [w.category for w in caught] == [SandboxWarning]
