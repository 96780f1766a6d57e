"""The DP model the membership attack targets: the engine's ``logistic_regression`` fit, used as an attacker would.

The table is a household table with ``n_cols`` categorical traits ``c0, c1, ...`` (categories ``k0, k1, ...``) and
a bool target ``debt``. :func:`fit_released_model` fits it with :meth:`DPEngine.fit` (in the vault: diffprivlib's
LogisticRegression, ``data_norm`` from the schema) and returns a predictor built from the model's *public*
parameters only (``predict_proba_from_params``): exactly what leaves the vault.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from sandbox._private.shared.model_params import predict_proba_from_params
from sandbox._private.shared.modelspec import ModelSpec
from sandbox._private.shared.policy import Policy
from sandbox._private.shared.schema import Column, TableSchema
from sandbox._private.vault.dp.engine import DPEngine
from sandbox._private.vault.dp.tabledata import TableData


def _schema(n_cols: int, n_cats: int) -> TableSchema:
    cats = tuple(f"k{j}" for j in range(n_cats))
    columns = [Column("household_id", "id", "id", "id", lower=1, upper=10_000_000)]
    columns += [Column(f"c{i}", "category", f"c{i}", f"c{i}", categories=cats) for i in range(n_cols)]
    columns.append(Column("debt", "bool", "schuld", "debt"))
    return TableSchema("mia", "mia", "mia", "household", "household_id", 1, tuple(columns))


def _frame(codes: np.ndarray, y: np.ndarray | None = None) -> pl.DataFrame:
    data: dict[str, object] = {f"c{i}": [f"k{v}" for v in codes[:, i]] for i in range(codes.shape[1])}
    if y is not None:
        data = {"household_id": np.arange(1, len(codes) + 1), **data, "debt": y.astype(bool)}
    return pl.DataFrame(data)


def fit_released_model(
    codes: np.ndarray, y: np.ndarray, *, epsilon: float, n_cats: int
) -> Callable[[np.ndarray], np.ndarray]:
    """Fit the engine's ε-DP logistic regression on ``codes`` (rows x traits) and ``y``; return P(debt | codes)."""
    n_cols = codes.shape[1]
    table = TableData.from_frame(_frame(codes, y), _schema(n_cols, n_cats))
    spec = ModelSpec("logistic_regression", target="debt", features=tuple(f"c{i}" for i in range(n_cols)))
    public = DPEngine(Policy()).fit(spec, table, epsilon).public
    true_col = [str(c) for c in public["classes"]].index("True")

    def predict(z: np.ndarray) -> np.ndarray:
        return np.asarray(predict_proba_from_params(public, _frame(z).to_pandas()))[:, true_col]

    return predict
