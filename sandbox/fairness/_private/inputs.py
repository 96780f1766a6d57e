"""Validation and encoding of the raw inputs of an audit: binary labels and protected attributes.

Every problem is a :class:`~sandbox.FairnessInputError` that states the numbers and names the fix; nothing here
returns NaN or guesses silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sandbox._private.shared.errors import FairnessInputError

__all__ = ["EncodedAttribute", "as_binary", "as_scores", "encode_sensitive"]

_MISSING_STRINGS = frozenset({"", "nan", "NaN", "None", "<NA>", "NA"})


@dataclass(frozen=True)
class EncodedAttribute:
    """One protected attribute as integer codes ``0..k-1`` and the label of each code."""

    name: str
    codes: np.ndarray
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.codes.ndim != 1:
            raise FairnessInputError(f"attribute {self.name!r} must be one-dimensional, got {self.codes.ndim} dims")


def _as_1d(name: str, values: Any) -> np.ndarray:
    if isinstance(values, pd.DataFrame):
        if values.shape[1] != 1:
            raise FairnessInputError(f"{name} must be one column, got a frame with {values.shape[1]} columns")
        values = values.iloc[:, 0]
    arr = np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise FairnessInputError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _is01(v: object) -> bool:
    if v is None or v is pd.NA or isinstance(v, str):
        return False
    try:
        return bool(v == 0 or v == 1)
    except (TypeError, ValueError):
        return False


def _integral(arr: np.ndarray) -> bool:
    return bool(np.all((arr == 0) | (arr == 1)))


def as_binary(name: str, values: Any, n: int | None = None) -> np.ndarray:
    """Return ``values`` as an int64 array of 0/1, or raise naming the offending values."""
    arr = _as_1d(name, values)
    if n is not None and arr.shape[0] != n:
        raise FairnessInputError(f"length mismatch: {name} has {arr.shape[0]} values, y_true has {n}")
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if arr.dtype.kind in "iuf":
        if arr.dtype.kind == "f" and np.isnan(arr).any():
            raise FairnessInputError(
                f"{name} has {int(np.isnan(arr).sum())} missing values; drop those rows or impute them first"
            )
        if arr.size == 0 or (arr.min() >= 0 and arr.max() <= 1 and (arr.dtype.kind != "f" or _integral(arr))):
            return arr.astype(np.int64)
        bad = (arr != 0) & (arr != 1)
        seen = np.unique(arr[bad])[:5].tolist()
    else:
        seen = sorted(repr(v) for v in pd.unique(pd.Series(arr, dtype=object)) if not _is01(v))[:5]
        if not seen:
            return np.asarray(arr, dtype=np.int64)
    raise FairnessInputError(
        f"{name} must be binary (0/1 or bool, 1 = positive), found other values such as {seen}; "
        "map the labels to 0/1 first (for scores use y_score=, for a threshold use y_score >= t)"
    )


def as_scores(values: Any, n: int) -> np.ndarray:
    """Return predicted probabilities as float64 in [0, 1], or raise."""
    arr = _as_1d("y_score", values)
    if arr.shape[0] != n:
        raise FairnessInputError(f"length mismatch: y_score has {arr.shape[0]} values, y_true has {n}")
    try:
        arr = arr.astype(np.float64)
    except (TypeError, ValueError):
        raise FairnessInputError("y_score must be numeric probabilities in [0, 1]") from None
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise FairnessInputError(
            f"y_score must be finite probabilities in [0, 1]; got range [{np.nanmin(arr):g}, {np.nanmax(arr):g}] "
            f"with {int((~np.isfinite(arr)).sum())} non-finite values; use predict_proba(X)[:, 1]"
        )
    return arr


def _columns(sensitive_features: Any) -> dict[str, Any]:
    if isinstance(sensitive_features, pd.DataFrame):
        return {str(c): sensitive_features[c] for c in sensitive_features.columns}
    if isinstance(sensitive_features, pd.Series):
        if sensitive_features.name is None:
            raise FairnessInputError("a sensitive-feature Series needs a name (the attribute, e.g. 'gender')")
        return {str(sensitive_features.name): sensitive_features}
    if isinstance(sensitive_features, Mapping):
        return {str(k): v for k, v in sensitive_features.items()}
    if hasattr(sensitive_features, "to_pandas"):  # polars DataFrame
        return _columns(sensitive_features.to_pandas())
    raise FairnessInputError(
        "sensitive_features must be a DataFrame, a named Series or a mapping {attribute: values}, "
        f"got {type(sensitive_features).__name__}"
    )


def _encode_one(name: str, values: Any, n: int) -> EncodedAttribute:
    series = values if isinstance(values, pd.Series) else pd.Series(_as_1d(name, values))
    if len(series) != n:
        raise FairnessInputError(
            f"length mismatch: sensitive feature {name!r} has {len(series)} values, y_true has {n}"
        )
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy().astype(np.int64)
        uniques = [str(c) for c in series.cat.categories]
    else:
        raw, idx = pd.factorize(series, sort=True, use_na_sentinel=True)
        codes, uniques = raw.astype(np.int64), [str(u) for u in idx]
    missing = int((codes < 0).sum())
    blank = [i for i, u in enumerate(uniques) if u.strip() in _MISSING_STRINGS]
    if blank:
        missing += int(np.isin(codes, blank).sum())
    if missing:
        raise FairnessInputError(
            f"sensitive feature {name!r} has {missing} missing values of {n}; an audit cannot place those rows in a "
            "group. Fill them with an explicit category (e.g. 'unknown') so they are audited as a group of their own"
        )
    return EncodedAttribute(name, codes, tuple(uniques))


def encode_sensitive(sensitive_features: Any, n: int) -> dict[str, EncodedAttribute]:
    """Encode each protected attribute as integer codes; raise on missing values or length mismatch."""
    cols = _columns(sensitive_features)
    if not cols:
        raise FairnessInputError("sensitive_features has no columns; give at least one protected attribute")
    return {name: _encode_one(name, values, n) for name, values in cols.items()}
