"""DP models fitted inside the vault with diffprivlib.models, and their export as public JSON parameters.

Every privacy-relevant bound comes from the public schema, never from the rows (DESIGN invariant 4), and
diffprivlib's PrivacyLeakWarning is an error:

- features are encoded by :func:`sandbox._private.shared.model_params.encode_arrays` into [0, 1] (one-hot categories,
  0/1 bools, min-max scaled numbers); each feature column contributes at most 1 to a row's squared L2 norm, so
  ``data_norm = sqrt(number of features)`` for the logistic regression and ``bounds = ([0]*d, [1]*d)`` for the
  naive Bayes and the forest;
- class labels come from the schema (category list, or False/True); the linear regression's ``bounds_y`` are
  the target's schema bounds;
- diffprivlib 0.6.6's ``LogisticRegression`` and ``GaussianNB`` take their classes from ``numpy.unique(y)``, so a
  class absent from the rows is absent from the model (a known limitation, listed in the report to reviewers); the
  forest gets the schema's classes.

diffprivlib's models draw their randomness from ``numpy.random.RandomState`` when no seed is given. The vault
therefore passes a fresh generator seeded with 128 bits from ``secrets`` for each fit: the analyst never chooses a
seed (invariant 9) and no two fits share a stream.

Models are fitted on one row per household (refused otherwise by :meth:`ModelSpec.check`); rows with a missing
feature or target are dropped, which still changes at most one row per household.
"""

from __future__ import annotations

import math
import secrets
import warnings
from typing import Any

import numpy as np
from diffprivlib import models as dp_models
from diffprivlib.accountant import BudgetAccountant

from sandbox._private.shared.errors import QueryError
from sandbox._private.shared.model_params import (
    encode_arrays,
    feature_names,
    predict_from_matrix,
    preprocessing_for,
    proba_from_matrix,
)
from sandbox._private.shared.modelspec import ModelSpec

from .mechanisms import no_privacy_leaks
from .tabledata import TableData

__all__ = ["fit_model", "model_rows", "predict_rows", "class_labels"]


def class_labels(spec: ModelSpec, table: TableData) -> list[Any]:
    """Public class labels of a classifier's target, in code order (schema categories, or False/True)."""
    return list(table.schema.group_keys(spec.target))


def model_rows(spec: ModelSpec, table: TableData) -> np.ndarray:
    """Rows whose target and features are all present."""
    keep = np.ones(table.n_rows, dtype=bool)
    for name in (spec.target, *spec.features):
        keep &= ~table.missing(name)
    return keep


def _design(spec: ModelSpec, table: TableData, keep: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
    steps = preprocessing_for(spec, table.schema)
    arrays = {
        s["column"]: (table.codes[s["column"]] if s["column"] in table.codes else table.values[s["column"]])[keep]
        for s in steps
    }
    return encode_arrays(steps, arrays), steps


def _target(spec: ModelSpec, table: TableData, keep: np.ndarray) -> np.ndarray:
    if spec.task == "classification":
        return table.codes[spec.target][keep].astype(np.int64)
    return table.numeric(spec.target)[keep]


def _secure_random_state() -> np.random.RandomState:
    return np.random.RandomState(np.random.MT19937(np.random.SeedSequence(secrets.randbits(128))))


def _estimator(spec: ModelSpec, table: TableData, epsilon: float, d: int) -> Any:
    p = spec.resolved_params()
    common = {"epsilon": epsilon, "random_state": _secure_random_state(), "accountant": BudgetAccountant()}
    ones, zeros = np.ones(d), np.zeros(d)
    n_classes = len(class_labels(spec, table)) if spec.task == "classification" else 0
    if spec.estimator == "logistic_regression":
        # each of the len(features) blocks adds at most 1 to the squared norm; the margin absorbs rounding
        data_norm = math.sqrt(len(spec.features)) * (1 + 1e-9)
        return dp_models.LogisticRegression(data_norm=data_norm, **p, **common)
    if spec.estimator == "gaussian_nb":
        return dp_models.GaussianNB(bounds=(zeros, ones), **p, **common)
    if spec.estimator == "random_forest":
        return dp_models.RandomForestClassifier(bounds=(zeros, ones), classes=np.arange(n_classes), **p, **common)
    lo, hi = table.schema.column(spec.target).bounds
    return dp_models.LinearRegression(bounds_X=(zeros, ones), bounds_y=(lo, hi), **p, **common)


def _export(spec: ModelSpec, model: Any) -> dict[str, Any]:
    if spec.estimator == "logistic_regression":
        return {"coef": model.coef_.tolist(), "intercept": model.intercept_.tolist()}
    if spec.estimator == "gaussian_nb":
        return {"theta": model.theta_.tolist(), "var": model.var_.tolist(), "class_prior": model.class_prior_.tolist()}
    if spec.estimator == "random_forest":
        trees = []
        for est in model.estimators_:
            t = est.tree_
            trees.append(
                {
                    "children_left": t.children_left.tolist(),
                    "children_right": t.children_right.tolist(),
                    "feature": t.feature.tolist(),
                    "threshold": t.threshold.tolist(),
                    "value": t.value[:, 0, :].tolist(),
                }
            )
        return {"trees": trees}
    return {
        "coef": np.ravel(model.coef_).tolist(),
        "intercept": float(np.ravel(model.intercept_)[0]) if np.ndim(model.intercept_) else float(model.intercept_),
    }


def fit_model(spec: ModelSpec, table: TableData, epsilon: float) -> tuple[Any, dict[str, Any], int]:
    """Fit ``spec`` with ``epsilon``-DP; return the estimator, the public JSON parameters and the rows used.

    The caller (the engine) has already checked the spec against the schema and the policy.
    """
    keep = model_rows(spec, table)
    X, steps = _design(spec, table, keep)
    y = _target(spec, table, keep)
    if y.size == 0:
        raise QueryError(
            f"No rows of {table.schema.name!r} have all of {[spec.target, *spec.features]}; "
            "choose features that are filled in."
        )
    model = _estimator(spec, table, epsilon, X.shape[1])
    with no_privacy_leaks():
        # diffprivlib 0.6.6 passes `iprint` to scipy's L-BFGS-B, which SciPy >= 1.15 deprecates: harmless here
        warnings.filterwarnings(
            "ignore", message="scipy.optimize: The `disp` and `iprint`", category=DeprecationWarning
        )
        model.fit(X, y)
    labels = class_labels(spec, table) if spec.task == "classification" else None
    classes = None if labels is None else [labels[int(c)] for c in model.classes_]
    public = {
        "format": "sandbox.model/1",
        "estimator": spec.estimator,
        "spec": spec.to_dict(),
        "task": spec.task,
        "target": spec.target,
        "classes": classes,
        "feature_names": feature_names(steps),
        "preprocessing": steps,
        "params": _export(spec, model),
        "epsilon": epsilon,
        "delta": 0.0,
        "mechanism": f"diffprivlib.models.{spec.diffprivlib_class}",
    }
    return model, public, int(y.size)


def predict_rows(
    public: dict[str, Any], spec: ModelSpec, table: TableData, model: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(y_true, y_pred, y_score)`` over :func:`model_rows`; from ``model`` if given, else from ``public``."""
    keep = model_rows(spec, table)
    X, _ = _design(spec, table, keep)
    y_code = _target(spec, table, keep)
    if spec.task == "regression":
        y_pred = model.predict(X) if model is not None else predict_from_matrix(public, X)
        return y_code, np.asarray(y_pred, dtype=np.float64), None
    labels = np.asarray(class_labels(spec, table), dtype=object)
    y_true = labels[y_code]
    if model is not None:
        y_pred = labels[np.asarray(model.predict(X), dtype=np.int64)]
        proba = model.predict_proba(X)
    else:
        y_pred = predict_from_matrix(public, X)
        proba = proba_from_matrix(public, X)
    score = proba[:, 1] if proba.shape[1] == 2 else None
    return y_true, y_pred, score
