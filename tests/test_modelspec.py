"""ModelSpec and FitQuery: allow-list, parameter table, schema/policy checks, JSON round trip, canonical keys."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_dp_tables import households_schema

import sandbox as sb
from sandbox._private.shared.errors import QueryError
from sandbox._private.shared.modelspec import ESTIMATORS, FitQuery, ModelSpec
from sandbox._private.shared.policy import Policy

FEATURES = ["household_type", "income", "arrears", "n_children", "region", "savings"]


def test_public_name_and_design_example() -> None:
    spec = sb.ModelSpec("logistic_regression", target="debt", features=["income", "arrears"])
    assert spec.features == ("income", "arrears")
    assert spec.diffprivlib_class == "LogisticRegression" and spec.task == "classification"
    assert spec.resolved_params() == {"C": 1.0, "fit_intercept": True, "max_iter": 100, "tol": 1e-4}


def test_unknown_estimator_lists_the_allow_list() -> None:
    with pytest.raises(QueryError, match=r"Unknown estimator 'svm'; use one of: logistic_regression, gaussian_nb"):
        ModelSpec("svm", "debt", ("income",))


@pytest.mark.parametrize(
    ("estimator", "params", "match"),
    [
        (
            "logistic_regression",
            {"penalty": "l1"},
            r"Unknown parameter 'penalty' for logistic_regression; allowed parameters: C, fit_intercept, max_iter, tol",
        ),
        (
            "logistic_regression",
            {"C": -1},
            r"The 'C' parameter of logistic_regression must be a number in \(0, 1e\+06\]. Got -1 instead.",
        ),
        ("logistic_regression", {"max_iter": 2.5}, r"'max_iter' parameter .* whole number in \[1, 10000\]. Got 2.5"),
        (
            "random_forest",
            {"n_estimators": 0},
            r"'n_estimators' parameter of random_forest must be a whole number in \[1, 200\]",
        ),
        ("random_forest", {"max_depth": True}, r"'max_depth' .* Got True instead"),
        (
            "gaussian_nb",
            {"random_state": 1},
            r"Unknown parameter 'random_state' for gaussian_nb; allowed parameters: var_smoothing",
        ),
        ("linear_regression", {"fit_intercept": "yes"}, r"must be true or false"),
        ("linear_regression", {"epsilon": 5.0}, r"Unknown parameter 'epsilon'"),
    ],
)
def test_parameters_are_checked_against_the_table(estimator: str, params: dict[str, Any], match: str) -> None:
    with pytest.raises(QueryError, match=match):
        ModelSpec(estimator, "debt", ("income",), params=params)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(features=()), r"non-empty list of column names"),
        (dict(features=("income", "income")), r"lists a column twice"),
        (dict(features=("debt", "income")), r"target 'debt' is also listed as a feature"),
        (dict(preprocessing="standardise"), r"Unknown preprocessing 'standardise'; use one of: onehot\+minmax"),
    ],
)
def test_malformed_specs(kwargs: dict[str, Any], match: str) -> None:
    args = {"estimator": "gaussian_nb", "target": "debt", "features": ("income",), **kwargs}
    with pytest.raises(QueryError, match=match):
        ModelSpec(**args)


def test_check_against_schema_and_policy() -> None:
    schema, policy = households_schema(), Policy()
    ModelSpec("random_forest", "debt_level", ("household_type", "income")).check(schema, policy)
    with pytest.raises(QueryError, match=r"Features \['nationality'\] are forbidden by the policy"):
        ModelSpec("random_forest", "debt", ("nationality",)).check(schema, policy)
    with pytest.raises(QueryError, match=r"'household_id' is an id column"):
        ModelSpec("random_forest", "debt", ("household_id",)).check(schema, policy)


def test_params_are_immutable_and_spec_is_hashable() -> None:
    spec = ModelSpec("random_forest", "debt", ("income",), params={"n_estimators": 5})
    with pytest.raises(TypeError):
        spec.params["n_estimators"] = 500  # type: ignore[index]
    assert len({spec, ModelSpec("random_forest", "debt", ["income"], params={"n_estimators": 5})}) == 1  # type: ignore[arg-type]


def test_canonical_key_fills_defaults_but_keeps_feature_order() -> None:
    a = ModelSpec("random_forest", "debt", ("income", "arrears"))
    assert (
        a.canonical_key()
        == ModelSpec("random_forest", "debt", ("income", "arrears"), params={"n_estimators": 10}).canonical_key()
    )
    assert a.canonical_key() != ModelSpec("random_forest", "debt", ("arrears", "income")).canonical_key()
    assert (
        a.canonical_key()
        != ModelSpec("random_forest", "debt", ("income", "arrears"), params={"max_depth": 6}).canonical_key()
    )
    fa = FitQuery("households", a, 1.0)
    assert fa.canonical_key() == FitQuery("households", a, 1).canonical_key()
    assert fa.canonical_key() != FitQuery("households", a, 0.5).canonical_key()
    assert fa.canonical_key() != FitQuery("households_v2", a, 1.0).canonical_key()


@st.composite
def specs(draw: Any) -> ModelSpec:
    estimator = draw(st.sampled_from(sorted(ESTIMATORS)))
    table = ESTIMATORS[estimator][2]
    params = {}
    for name in draw(st.lists(st.sampled_from(sorted(table)), unique=True)):
        default = table[name].default
        if isinstance(default, bool):
            params[name] = draw(st.booleans())
        elif isinstance(default, int):
            params[name] = draw(st.integers(1, 15))
        else:
            params[name] = draw(st.floats(1e-6, 1.0))
    target = "income" if estimator == "linear_regression" else "debt"
    features = draw(st.lists(st.sampled_from(FEATURES), min_size=1, unique=True).filter(lambda f: target not in f))
    return ModelSpec(estimator, target, tuple(features), params=params)


@settings(max_examples=100, deadline=None)
@given(specs(), st.floats(1e-3, 2.0))
def test_json_round_trip(spec: ModelSpec, eps: float) -> None:
    back = ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec and back.canonical_key() == spec.canonical_key()
    fit = FitQuery("households", spec, eps)
    again = FitQuery.from_dict(json.loads(json.dumps(fit.to_dict())))
    assert again == fit and again.canonical_key() == fit.canonical_key()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (
            {"estimator": "gaussian_nb", "target": "debt", "features": ["income"], "code": "x"},
            r"unknown keys \['code'\]",
        ),
        ({"estimator": "gaussian_nb", "features": ["income"]}, r"missing \['target'\]"),
        ({"estimator": "gaussian_nb", "target": "debt", "features": "income"}, r"features must be a list"),
        ("gaussian_nb", r"must be a JSON object"),
    ],
)
def test_from_dict_refuses_malformed_json(data: Any, match: str) -> None:
    with pytest.raises(QueryError, match=match):
        ModelSpec.from_dict(data)


def test_fit_query_validates_epsilon_and_keys() -> None:
    spec = ModelSpec("gaussian_nb", "debt", ("income",))
    with pytest.raises(QueryError, match=r"finite and greater than 0"):
        FitQuery("households", spec, float("inf"))
    with pytest.raises(QueryError, match=r"unknown keys \['seed'\]"):
        FitQuery.from_dict({"dataset": "households", "spec": spec.to_dict(), "epsilon": 1.0, "seed": 1})
