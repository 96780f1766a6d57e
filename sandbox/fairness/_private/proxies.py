"""Direct and indirect distinction: forbidden features, and features that act as proxies of protected attributes.

A feature is a proxy when it predicts a protected attribute. We measure that with the AUC of a one-feature
classifier: the score of a row is the rate of each attribute value among training rows with the same feature value
(numeric features first cut into quantile bins), estimated by cross-fitting so that a feature with thousands of
categories (a postcode) is not rewarded for memorising them. Multi-valued attributes report the one-vs-rest macro
AUC and the largest one-vs-rest AUC with its group; the flag uses the largest, because a feature that singles out
one group (postcode areas where most residents have a non-European background) is a proxy for that group even
when it cannot tell the other groups apart. The plug-in mutual information (in bits) is reported next to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from sandbox._private.shared.errors import FairnessInputError, QueryError
from sandbox._private.shared.policy import Policy, load_policy

from .inputs import encode_sensitive

__all__ = ["ProxyReport", "proxy_check", "check_forbidden_features", "one_feature_auc"]


@dataclass(frozen=True)
class ProxyReport:
    """AUC and mutual information of each feature for each protected attribute; ``flagged`` above the threshold."""

    table: pd.DataFrame
    threshold: float
    protected_as_features: tuple[str, ...] = ()

    @property
    def flagged(self) -> list[tuple[str, str]]:
        """``(feature, attribute)`` pairs whose AUC exceeds the policy's ``proxy_auc_threshold``."""
        t = self.table[self.table["flagged"]]
        return list(zip(t["feature"], t["attribute"], strict=True))

    def __repr__(self) -> str:
        return f"ProxyReport(threshold={self.threshold}, flagged={self.flagged})"

    def _repr_html_(self) -> str:
        return str(self.table.to_html(index=False, float_format=lambda v: f"{v:.3f}"))


def _forbidden_match(feature: str, forbidden: Iterable[str]) -> str | None:
    name = feature.lower()
    for f in forbidden:
        f = f.lower()
        if name == f or name.startswith((f + "_", f + "=", f + ".")):
            return f
    return None


def check_forbidden_features(features: Iterable[str], policy: Policy | None = None) -> None:
    """Refuse a model that uses a feature the policy forbids (also one-hot columns such as ``nationality_NL``).

    Raises
    ------
    QueryError
        Naming the feature, the rule and the policy.
    """
    pol = policy if policy is not None else load_policy()
    hits = [(f, m) for f in features if (m := _forbidden_match(str(f), pol.forbidden_features)) is not None]
    if hits:
        desc = ", ".join(f"{f!r} (forbidden: {m!r})" for f, m in hits)
        raise QueryError(
            f"model uses forbidden feature(s) {desc} under policy {pol.name!r} (forbidden_features: "
            f"{list(pol.forbidden_features)}); remove them from the model's features"
        )


def _feature_codes(x: pd.Series, n_bins: int) -> np.ndarray:
    missing = x.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x) and x.nunique() > n_bins:
        v = x.to_numpy(dtype=np.float64, na_value=np.nan)
        edges = np.unique(np.nanquantile(v, np.linspace(0, 1, n_bins + 1)[1:-1]))
        codes = np.searchsorted(edges, np.nan_to_num(v), side="right").astype(np.int64)
    else:
        codes = pd.factorize(x, sort=True, use_na_sentinel=True)[0].astype(np.int64)
    return np.where(missing, codes.max(initial=0) + 1, codes)


def _fold_scores(c: np.ndarray, a: np.ndarray, n_levels: int, folds: np.ndarray, fold: int) -> np.ndarray:
    """Scores of the rows in ``fold``: the smoothed attribute rates of their feature value in the other folds."""
    k = int(c.max()) + 1
    tr, te = folds != fold, folds == fold
    table = np.bincount(c[tr] * n_levels + a[tr], minlength=k * n_levels).reshape(k, n_levels).astype(float)
    prior = (table.sum(axis=0) + 1.0) / (table.sum() + n_levels)
    rates = (table + prior) / (table.sum(axis=1, keepdims=True) + 1.0)
    return rates[c[te]]


def _ovr_aucs(a: np.ndarray, scores: np.ndarray, n_levels: int) -> np.ndarray:
    """One-vs-rest AUC per attribute code (NaN for a code absent from, or alone in, these rows)."""
    out = np.full(n_levels, np.nan)
    for code in range(n_levels):
        hit = a == code
        if 0 < hit.sum() < hit.size:
            out[code] = roc_auc_score(hit, scores[:, code])
    return out


def one_feature_auc(c: np.ndarray, a: np.ndarray, n_levels: int, folds: np.ndarray) -> tuple[float, float, int]:
    """Cross-fitted AUC of predicting attribute codes ``a`` from feature codes ``c``: the mean over folds.

    Returns ``(macro, largest, code)``: the one-vs-rest macro AUC, the largest one-vs-rest AUC and the attribute
    code it belongs to (for a binary attribute: the AUC of the second code, and the same number twice).
    """
    per_fold = np.array(
        [_ovr_aucs(a[folds == f], _fold_scores(c, a, n_levels, folds, f), n_levels) for f in np.unique(folds)]
    )
    if np.isnan(per_fold).all():
        return float("nan"), float("nan"), -1
    per = _nanmean_cols(per_fold)
    if n_levels == 2:
        return float(per[1]), float(per[1]), 1
    k = int(np.nanargmax(per))
    return float(np.nanmean(per)), float(per[k]), k


def _nanmean_cols(x: np.ndarray) -> np.ndarray:
    valid = ~np.isnan(x)
    return np.divide(
        np.where(valid, x, 0).sum(axis=0), valid.sum(axis=0), out=np.full(x.shape[1], np.nan), where=valid.any(axis=0)
    )


def _mutual_information(c: np.ndarray, a: np.ndarray, n_levels: int) -> float:
    k = int(c.max()) + 1
    joint = np.bincount(c * n_levels + a, minlength=k * n_levels).reshape(k, n_levels) / c.shape[0]
    outer = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log2(joint[nz] / outer[nz])).sum())


def proxy_check(
    features: pd.DataFrame,
    sensitive_features: Any,
    *,
    policy: Policy | None = None,
    n_bins: int = 20,
    n_folds: int = 2,
    random_state: int = 0,
) -> ProxyReport:
    """How well each model feature predicts each protected attribute; flag those above the policy's threshold.

    Parameters
    ----------
    features : DataFrame
        The model's features, one row per unit (dummy or public data on the analyst's side).
    sensitive_features : DataFrame, named Series or mapping
        The protected attributes on the same rows.
    policy : Policy, optional
        Supplies ``fairness.proxy_auc_threshold`` and ``forbidden_features`` (default policy if ``None``).
    n_bins : int
        Quantile bins for numeric features.
    n_folds : int
        Cross-fitting folds (at least 2).
    random_state : int
        Seed of the fold assignment.

    Returns
    -------
    ProxyReport

    Raises
    ------
    QueryError
        If a feature is forbidden by the policy.
    FairnessInputError
        If the rows do not line up or a sensitive value is missing.
    """
    if not isinstance(features, pd.DataFrame):
        raise FairnessInputError(f"features must be a pandas DataFrame, got {type(features).__name__}")
    if n_folds < 2 or n_bins < 2:
        raise FairnessInputError(f"n_folds and n_bins must be at least 2, got {n_folds} and {n_bins}")
    pol = policy if policy is not None else load_policy()
    check_forbidden_features(features.columns, pol)
    attrs = encode_sensitive(sensitive_features, len(features))
    folds = np.random.Generator(np.random.SFC64(random_state)).integers(0, n_folds, len(features))
    rows = []
    for feat in features.columns:
        c = _feature_codes(features[feat], n_bins)
        for name, enc in attrs.items():
            macro, top, code = one_feature_auc(c, enc.codes, len(enc.labels), folds)
            mi = _mutual_information(c, enc.codes, len(enc.labels))
            rows.append((str(feat), name, macro, top, enc.labels[code] if code >= 0 else "", mi))
    cols = ["feature", "attribute", "auc_macro", "auc", "most_exposed_group", "mutual_information_bits"]
    table = pd.DataFrame(rows, columns=cols)
    thr = pol.fairness.proxy_auc_threshold
    table["flagged"] = table["auc"] > thr
    protected = tuple(str(f) for f in features.columns if str(f) in set(pol.fairness.protected_attributes))
    return ProxyReport(table, thr, protected)
