"""DP models fitted inside the vault with diffprivlib.models, and their export as public JSON parameters.

Every privacy-relevant bound comes from the public schema, never from the rows (DESIGN invariant 4), and
diffprivlib's PrivacyLeakWarning is an error:

- features are encoded by :func:`sandbox._private.shared.model_params.encode_arrays` into [0, 1] (one-hot categories,
  0/1 bools, min-max scaled numbers); each feature column contributes at most 1 to a row's squared L2 norm, so
  ``data_norm = sqrt(number of features)`` for the logistic regression and ``bounds = ([0]*d, [1]*d)`` for the
  naive Bayes and the forest;
- class labels come from the schema (category list, or False/True), never from the rows; the linear regression's
  ``bounds_y`` are the target's schema bounds.

What a fit shows must not depend on whether one household is in the data (DESIGN invariant 10): not its classes,
not its parameter shapes, not whether it succeeds. Two rules keep that:

- **anchor rows.** Every fit adds public rows to the design: one per schema class for a classifier (its features
  at the centre of the encoded space, the class's code as label), one for a regression (the target's schema
  midpoint as label). They come from the schema, so the model is still DP for the protected rows, and every class is
  present and no design is empty, whatever the data: diffprivlib 0.6.6's ``LogisticRegression`` takes its classes
  from ``numpy.unique(y)`` (a class only one household has made the fit fail without it, an error oracle) and no
  estimator accepts zero rows (a fit on a column that only one household fills in would fail without it). They move
  a model as ``n_classes`` more rows among ``n`` would (``tests/test_dp_models.py`` measures it against scikit-learn
  with and without them); the model carries ``anchor_rows``;
- **naive Bayes from noisy counts of every schema class.** diffprivlib 0.6.6's ``GaussianNB`` adds noise only to
  the classes present, so an absent class has an exact prior of 0, and it forces the noisy class counts to sum to
  the exact number of rows, so the released priors are fractions over that number. The vault fits it itself, with
  diffprivlib's own per-class mean and variance mechanisms: a geometric count per schema class (epsilon / 3,
  sensitivity 1, clipped at 1), and ``epsilon / 3`` each for the means and variances, as diffprivlib splits it.

diffprivlib's models draw their randomness from ``numpy.random.RandomState`` when no seed is given. The vault
therefore passes a fresh generator seeded with 128 bits from ``secrets`` for each fit: the analyst never chooses a
seed (invariant 9) and no two fits share a stream.

Models are fitted on one row per household (refused otherwise by :meth:`ModelSpec.check`); rows with a missing
feature or target are dropped, which still changes at most one row per household. The engine leaves out the
households the public hold-out rule keeps for the model's quality figures (:mod:`.quality`).
"""

from __future__ import annotations

import math
import secrets
import warnings
from typing import Any

import numpy as np
from diffprivlib import models as dp_models
from diffprivlib.accountant import BudgetAccountant
from sklearn.utils import check_random_state

from sandbox._private.shared.errors import InternalError
from sandbox._private.shared.model_params import (
    encode_arrays,
    feature_names,
    predict_from_matrix,
    preprocessing_for,
    proba_from_matrix,
)
from sandbox._private.shared.modelspec import ModelSpec

from .mechanisms import no_privacy_leaks, noisy_vector
from .tabledata import TableData

__all__ = ["fit_model", "model_rows", "predict_rows", "class_labels", "anchor_rows"]


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


def anchor_rows(spec: ModelSpec, table: TableData, steps: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Return the public rows every fit adds (module docstring): one per class, or one for a regression.

    Their features sit at the centre of the encoded space (``1/m`` in each of a category's ``m`` indicator columns,
    ``0.5`` for a bool or a scaled number), where one row moves a fit least.
    """
    parts = []
    for step in steps:
        if step["kind"] == "category":
            parts.append(np.full(len(step["outputs"]), 1.0 / len(step["categories"])))
        else:
            parts.append(np.full(len(step["outputs"]), 0.5))
    x = np.concatenate(parts) if parts else np.zeros(0)
    if spec.task == "classification":
        n = len(class_labels(spec, table))
        return np.tile(x, (n, 1)), np.arange(n, dtype=np.int64)
    lo, hi = table.schema.column(spec.target).bounds
    return x.reshape(1, -1), np.array([(float(lo) + float(hi)) / 2.0])


def _fit_gaussian_nb(model: Any, X: np.ndarray, y: np.ndarray, n_classes: int) -> Any:
    """Fit diffprivlib's GaussianNB over every schema class from noisy class counts (see the module docstring)."""
    d = X.shape[1]
    rng = check_random_state(model.random_state)
    model.bounds = model._check_bounds(model.bounds, shape=d)
    X = model._clip_to_bounds(X, model.bounds)
    exact = np.bincount(y, minlength=n_classes).astype(np.float64)
    noisy, _ = noisy_vector(exact, epsilon=model.epsilon / 3, delta=0.0, sensitivity=1, integer=True)
    counts = np.clip(noisy, 1.0, None)
    theta, var = np.zeros((n_classes, d)), np.zeros((n_classes, d))
    for i in range(n_classes):
        theta[i], var[i] = model._update_mean_variance(
            0, np.zeros(d), np.zeros(d), X[y == i], random_state=rng, n_noisy=int(counts[i])
        )
    model.epsilon_ = model.var_smoothing
    model.classes_ = np.arange(n_classes)
    model.n_features_in_ = d
    model.theta_, model.var_ = theta, var + model.epsilon_
    model.class_count_ = counts
    model.class_prior_ = counts / counts.sum()
    return model


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


def fit_model(
    spec: ModelSpec, table: TableData, epsilon: float, exclude: np.ndarray | None = None
) -> tuple[Any, dict[str, Any], int]:
    """Fit ``spec`` with ``epsilon``-DP; return the estimator, the public JSON parameters and the rows used.

    The caller (the engine) has already checked the spec against the schema and the policy. The design gets the
    public anchor rows (module docstring), so the classes and shapes of the result come from the schema alone and
    no fit fails for lack of rows or of a class. The row count returned excludes the anchors. ``exclude`` (one
    entry per row of ``table``) leaves rows out of the fit: the households the public hold-out rule keeps for the
    quality figures (:mod:`.quality`).
    """
    keep = model_rows(spec, table)
    if exclude is not None:
        keep &= ~exclude
    X, steps = _design(spec, table, keep)
    y = _target(spec, table, keep)
    X_a, y_a = anchor_rows(spec, table, steps)
    X_fit, y_fit = np.vstack([X, X_a]), np.concatenate([y, y_a.astype(y.dtype)])
    model = _estimator(spec, table, epsilon, X.shape[1])
    labels = class_labels(spec, table) if spec.task == "classification" else None
    with no_privacy_leaks():
        # diffprivlib 0.6.6 passes `iprint` to scipy's L-BFGS-B, which SciPy >= 1.15 deprecates: harmless here
        warnings.filterwarnings(
            "ignore", message="scipy.optimize: The `disp` and `iprint`", category=DeprecationWarning
        )
        if spec.estimator == "gaussian_nb":
            _fit_gaussian_nb(model, X_fit, y_fit, len(labels or ()))
        else:
            model.fit(X_fit, y_fit)
    if labels is not None and list(np.asarray(model.classes_).tolist()) != list(range(len(labels))):
        raise InternalError(f"{spec.estimator} has classes {model.classes_}, not the schema's {len(labels)} classes.")
    public = {
        "format": "sandbox.model/1",
        "estimator": spec.estimator,
        "spec": spec.to_dict(),
        "task": spec.task,
        "target": spec.target,
        "classes": labels,
        "feature_names": feature_names(steps),
        "preprocessing": steps,
        "params": _export(spec, model),
        "anchor_rows": int(y_a.size),
        "epsilon": epsilon,
        "delta": 0.0,
        "mechanism": f"diffprivlib.models.{spec.diffprivlib_class}",
    }
    return model, public, int(y.size)


def predict_rows(
    public: dict[str, Any], spec: ModelSpec, table: TableData, model: Any = None, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(y_true, y_pred, y_score)`` over :func:`model_rows`; from ``model`` if given, else from ``public``.

    ``rows`` (one entry per row of ``table``) restricts them further, e.g. to the held-out households.
    """
    keep = model_rows(spec, table)
    if rows is not None:
        keep &= rows
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
