"""Predictions from a fitted model's public JSON parameters alone (client side; no diffprivlib object needed).

The vault returns a fitted DP model as JSON (``format: sandbox.model/1``): the preprocessing (fixed by the public
schema), the feature names after one-hot encoding, the class labels and the estimator's parameters. This module
rebuilds the design matrix from a frame of dummy or public data and reproduces the estimator's ``predict`` and
``predict_proba``, so the analyst's kernel can use a model without ever holding the estimator object. The same
encoding is used inside the vault (:func:`encode_arrays`), and a test checks that both give equal predictions.

Preprocessing (``onehot+minmax``): a category column becomes one 0/1 column per schema category (schema order),
without the first category for the linear regression (its unregularised least squares with an intercept is
singular under full one-hot coding, and diffprivlib's noisy solution then swings wildly); a bool column one 0/1
column; an int/float column ``(clip(x, lower, upper) - lower) / (upper - lower)`` with the
schema bounds (0 if ``upper == lower``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import QueryError

if TYPE_CHECKING:
    from .modelspec import ModelSpec
    from .schema import TableSchema

__all__ = [
    "preprocessing_for",
    "feature_names",
    "encode_arrays",
    "design_matrix",
    "predict_from_params",
    "predict_proba_from_params",
    "predict_from_matrix",
    "proba_from_matrix",
]


def preprocessing_for(spec: ModelSpec, schema: TableSchema) -> list[dict[str, Any]]:
    """Return the public preprocessing steps of ``spec``'s features, from the schema only."""
    steps: list[dict[str, Any]] = []
    for name in spec.features:
        col = schema.column(name)
        if col.kind == "category":
            drop_first = spec.estimator == "linear_regression"
            outs = [f"{name}={c}" for c in col.categories[int(drop_first) :]]
            steps.append(
                {
                    "column": name,
                    "kind": "category",
                    "categories": list(col.categories),
                    "drop_first": drop_first,
                    "outputs": outs,
                }
            )
        elif col.kind == "bool":
            steps.append({"column": name, "kind": "bool", "outputs": [name]})
        else:
            lo, hi = col.bounds
            steps.append({"column": name, "kind": col.kind, "lower": lo, "upper": hi, "outputs": [name]})
    return steps


def feature_names(preprocessing: Sequence[Mapping[str, Any]]) -> list[str]:
    """Column names of the design matrix, in order."""
    return [out for step in preprocessing for out in step["outputs"]]


def encode_arrays(preprocessing: Sequence[Mapping[str, Any]], arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """Design matrix from per-column arrays: int codes (schema order) for category/bool, floats for numbers.

    Codes must be valid (>= 0) and numbers not NaN; callers drop incomplete rows first.
    """
    blocks: list[np.ndarray] = []
    for step in preprocessing:
        a = np.asarray(arrays[step["column"]])
        if step["kind"] == "category":
            n_cat = len(step["categories"])
            block = np.zeros((a.size, n_cat))
            block[np.arange(a.size), a.astype(np.int64)] = 1.0
            if step.get("drop_first"):
                block = block[:, 1:]
        elif step["kind"] == "bool":
            block = a.astype(np.float64).reshape(-1, 1)
        else:
            lo, hi = float(step["lower"]), float(step["upper"])
            scaled = (np.clip(a.astype(np.float64), lo, hi) - lo) / (hi - lo) if hi > lo else np.zeros(a.size)
            block = scaled.reshape(-1, 1)
        blocks.append(block)
    return np.hstack(blocks) if blocks else np.zeros((0, 0))


def _frame_codes(step: Mapping[str, Any], values: Any) -> np.ndarray:
    name = step["column"]
    if step["kind"] == "category":
        index = {c: i for i, c in enumerate(step["categories"])}
        codes = np.array([index.get(v, -1) if isinstance(v, str) else -1 for v in values], dtype=np.int64)
        if (codes < 0).any():
            raise QueryError(
                f"Column {name!r} has {int((codes < 0).sum())} missing values or values outside the schema's "
                "categories; drop or fill those rows before predicting."
            )
        return codes
    arr = np.asarray(values, dtype=np.float64)
    if np.isnan(arr).any():
        raise QueryError(f"Column {name!r} has missing values; drop or fill those rows before predicting.")
    if step["kind"] == "bool" and not np.isin(arr, (0.0, 1.0)).all():
        raise QueryError(f"Column {name!r} is bool; use True/False (or 0/1) values.")
    return arr


def design_matrix(params: Mapping[str, Any], frame: Any) -> np.ndarray:
    """Return the design matrix of a pandas/polars frame (or mapping of columns) under the model's preprocessing."""
    steps = params["preprocessing"]
    missing = [s["column"] for s in steps if s["column"] not in frame]
    if missing:
        raise QueryError(f"The frame lacks feature columns {missing}; the model uses {[s['column'] for s in steps]}.")
    arrays = {s["column"]: _frame_codes(s, list(frame[s["column"]])) for s in steps}
    return encode_arrays(steps, arrays)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


def _logreg_proba(p: Mapping[str, Any], X: np.ndarray) -> np.ndarray:
    coef = np.asarray(p["coef"], dtype=np.float64)
    z = X @ coef.T + np.asarray(p["intercept"], dtype=np.float64)
    if coef.shape[0] == 1:  # binary: sklearn's _predict_proba_lr
        pos = _sigmoid(z[:, 0])
        return np.column_stack([1.0 - pos, pos])
    prob = _sigmoid(z)
    return prob / prob.sum(axis=1, keepdims=True)  # one-vs-rest, normalised as sklearn does


def _gnb_proba(p: Mapping[str, Any], X: np.ndarray) -> np.ndarray:
    theta, var = np.asarray(p["theta"]), np.asarray(p["var"])
    with np.errstate(divide="ignore"):
        log_prior = np.log(np.asarray(p["class_prior"]))
    jll = np.empty((X.shape[0], theta.shape[0]))
    for i in range(theta.shape[0]):
        n_ij = -0.5 * np.sum(np.log(2.0 * np.pi * var[i]))
        jll[:, i] = log_prior[i] + n_ij - 0.5 * np.sum((X - theta[i]) ** 2 / var[i], axis=1)
    jll -= jll.max(axis=1, keepdims=True)
    e = np.exp(jll)
    return e / e.sum(axis=1, keepdims=True)


def _tree_proba(tree: Mapping[str, Any], X32: np.ndarray) -> np.ndarray:
    left = np.asarray(tree["children_left"], dtype=np.int64)
    right = np.asarray(tree["children_right"], dtype=np.int64)
    feature = np.asarray(tree["feature"], dtype=np.int64)
    threshold = np.asarray(tree["threshold"], dtype=np.float64)
    value = np.asarray(tree["value"], dtype=np.float64)
    node = np.zeros(X32.shape[0], dtype=np.int64)
    rows = np.arange(X32.shape[0])
    for _ in range(left.size):
        internal = left[node] >= 0
        if not internal.any():
            break
        go_left = X32[rows, np.maximum(feature[node], 0)] <= threshold[node]
        node = np.where(internal, np.where(go_left, left[node], right[node]), node)
    proba = value[node]
    norm = proba.sum(axis=1, keepdims=True)
    norm[norm == 0.0] = 1.0
    return proba / norm


def _forest_proba(p: Mapping[str, Any], X: np.ndarray) -> np.ndarray:
    X32 = X.astype(np.float32)  # sklearn trees compare float32 features with the thresholds
    probas = [_tree_proba(t, X32) for t in p["trees"]]
    return np.mean(probas, axis=0)


_PROBA = {"logistic_regression": _logreg_proba, "gaussian_nb": _gnb_proba, "random_forest": _forest_proba}


def predict_proba_from_params(params: Mapping[str, Any], frame: Any) -> np.ndarray:
    """Class probabilities (columns in the order of ``params['classes']``) for each row of ``frame``.

    Raises
    ------
    QueryError
        For a regression model, or a frame without the feature columns or with missing values.
    """
    est = params["estimator"]
    if est not in _PROBA:
        raise QueryError(f"{est} is a regression model and has no predict_proba; use predict.")
    return proba_from_matrix(params, design_matrix(params, frame))


def proba_from_matrix(params: Mapping[str, Any], X: np.ndarray) -> np.ndarray:
    """Class probabilities from an already encoded design matrix (the vault's path)."""
    est = params["estimator"]
    if est not in _PROBA:
        raise QueryError(f"{est} is a regression model and has no predict_proba; use predict.")
    out: np.ndarray = _PROBA[est](params["params"], X)
    return out


def predict_from_params(params: Mapping[str, Any], frame: Any) -> np.ndarray:
    """Predictions for each row of ``frame``: class labels for classifiers, numbers for the linear regression."""
    X = design_matrix(params, frame)
    return predict_from_matrix(params, X)


def predict_from_matrix(params: Mapping[str, Any], X: np.ndarray) -> np.ndarray:
    """Predictions from an already encoded design matrix (the vault's path)."""
    est, p = params["estimator"], params["params"]
    if est == "linear_regression":
        out: np.ndarray = X @ np.asarray(p["coef"], dtype=np.float64) + float(p["intercept"])
        return out
    if est == "logistic_regression":
        coef = np.asarray(p["coef"], dtype=np.float64)
        z = X @ coef.T + np.asarray(p["intercept"], dtype=np.float64)
        idx = (z[:, 0] > 0).astype(np.int64) if coef.shape[0] == 1 else z.argmax(axis=1)
    else:
        idx = _PROBA[est](p, X).argmax(axis=1)
    classes = np.asarray(params["classes"], dtype=object)
    return classes[idx]
