"""Building blocks of the audit the vault releases: schema-complete counts, DP noise, suppression, DP proxy AUC.

The vault holds the rows; these functions turn them into what may leave:

* :func:`schema_facet_counts` counts ``[TP, FP, FN, TN]`` for **every** group the public schema allows (also empty
  ones), so the set of released groups never depends on the rows (DESIGN invariant 4);
* :func:`noisy_count_table` adds Laplace noise (diffprivlib) to every count and post-processes to non-negative
  integers. One household sits in exactly one group of each facet and in one of its four cells, so one facet's
  count vector has L1 sensitivity 1 and the ``G`` facets together have L1 sensitivity ``G``: the noise scale is
  ``G / epsilon``. The overall counts are the sum of the noisy counts of a facet without suppressed groups
  (post-processing, no extra budget). Groups whose TRUE count is below the disclosure minimum are marked
  suppressed;
* :func:`contingency_auc` is the one-feature AUC of a (noisy) feature-category x attribute-value table: the score of
  a household is the share of the attribute value among households with its feature category (in-sample, no
  cross-fitting: the table has only schema categories, so there is nothing to memorise).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .counts import CountTable, FacetCounts, cell_index
from .proxies import ProxyReport

__all__ = ["CodedAttribute", "FacetExact", "schema_facet_counts", "noisy_count_table", "contingency_auc", "proxy_table"]

#: Adds noise to a 1-d vector of exact counts with the given L1 sensitivity; returns (noisy, Laplace scale).
NoiseFn = Callable[[np.ndarray, float], tuple[np.ndarray, float]]


@dataclass(frozen=True)
class CodedAttribute:
    """A protected attribute as codes ``0..k-1`` (one per row) with the public label of each code."""

    name: str
    codes: np.ndarray
    labels: tuple[str, ...]


@dataclass(frozen=True)
class FacetExact:
    """Exact counts of every schema group of one facet (never released)."""

    attributes: tuple[str, ...]
    groups: tuple[tuple[str, ...], ...]
    counts: np.ndarray  # (G, 4) int64

    @property
    def units(self) -> np.ndarray:
        """True number of rows (households) per group."""
        return np.asarray(self.counts.sum(axis=1))


def schema_facet_counts(
    y_true: np.ndarray, y_pred: np.ndarray, attributes: Mapping[str, CodedAttribute], facets: Sequence[tuple[str, ...]]
) -> list[FacetExact]:
    """Count TP, FP, FN, TN per group of each facet over the full cross product of the schema's labels."""
    cell = cell_index(np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64))
    out = []
    for facet in facets:
        attrs = [attributes[a] for a in facet]
        shape = tuple(len(a.labels) for a in attrs)
        code = np.ravel_multi_index(tuple(a.codes for a in attrs), shape)
        n_groups = int(np.prod(shape))
        counts = np.bincount(code * 4 + cell, minlength=n_groups * 4).reshape(n_groups, 4)
        idx = np.unravel_index(np.arange(n_groups), shape)
        groups = tuple(tuple(a.labels[i[g]] for a, i in zip(attrs, idx, strict=True)) for g in range(n_groups))
        out.append(FacetExact(tuple(facet), groups, counts.astype(np.int64)))
    return out


def noisy_count_table(
    exact: Sequence[FacetExact], epsilon: float, min_count: int, noise: NoiseFn
) -> tuple[CountTable, list[tuple[str, str]]]:
    """Noise every facet's counts (L1 sensitivity ``len(exact)`` in total), clip and round; mark small groups.

    Parameters
    ----------
    exact : sequence of FacetExact
        The exact counts of each facet.
    epsilon : float
        Privacy loss of the whole table.
    min_count : int
        Disclosure minimum: a group whose true count is below it is suppressed.
    noise : callable
        ``noise(vector, sensitivity) -> (noisy vector, Laplace scale)`` at ``epsilon`` (bound by the caller).

    Returns
    -------
    (CountTable, suppressed)
        The released table (``noise_scale`` set) and the ``(facet name, group label)`` pairs suppressed.
    """
    sensitivity = float(len(exact))
    facets, suppressed = [], []
    scale = 0.0
    for f in exact:
        noisy, scale = noise(f.counts.ravel().astype(np.float64), sensitivity)
        released = np.clip(np.rint(noisy), 0.0, None).reshape(f.counts.shape)
        small = f.units < min_count
        fc = FacetCounts(f.attributes, f.groups, released, small)
        suppressed += [(fc.name, lab) for lab, s in zip(fc.labels, small, strict=True) if s]
        facets.append(fc)
    # post-processing, no extra budget; a facet without suppressed groups, so the overall row minus the released
    # groups of that facet gives nothing away
    whole = next((f for f in facets if not f.suppressed.any()), facets[0])
    return CountTable(tuple(facets), whole.counts.sum(axis=0), scale), suppressed


def _ovr_auc(table: np.ndarray, v: int) -> float:
    pos = table[:, v]
    neg = table.sum(axis=1) - pos
    total = table.sum(axis=1)
    score = np.divide(pos, total, out=np.zeros_like(pos), where=total > 0)
    p, n = pos.sum(), neg.sum()
    if p <= 0 or n <= 0:
        return float("nan")
    order = np.argsort(score, kind="stable")
    s, pos_s, neg_s = score[order], pos[order], neg[order]
    # negatives with a strictly lower score, and with an equal score (ties count one half)
    uniq, inv = np.unique(s, return_inverse=True)
    neg_at = np.bincount(inv, weights=neg_s, minlength=uniq.size)
    below = np.concatenate([[0.0], np.cumsum(neg_at)[:-1]])
    return float((pos_s * (below[inv] + 0.5 * neg_at[inv])).sum() / (p * n))


def contingency_auc(table: np.ndarray) -> tuple[float, float, int]:
    """One-feature AUC from a ``(feature categories, attribute values)`` table of counts.

    Returns ``(macro, largest, code)`` like :func:`~.proxies.one_feature_auc`: the one-vs-rest macro AUC, the largest
    one-vs-rest AUC and the attribute code it belongs to (``-1`` when no value has both members and non-members).
    """
    t = np.clip(np.asarray(table, dtype=np.float64), 0.0, None)
    per = np.array([_ovr_auc(t, v) for v in range(t.shape[1])])
    if np.isnan(per).all():
        return float("nan"), float("nan"), -1
    k = int(np.nanargmax(per))
    return float(np.nanmean(per)), float(per[k]), k


def _mutual_information(table: np.ndarray) -> float:
    t = np.clip(np.asarray(table, dtype=np.float64), 0.0, None)
    total = t.sum()
    if total <= 0:
        return float("nan")
    joint = t / total
    outer = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log2(joint[nz] / outer[nz])).sum())


def proxy_table(
    tables: Mapping[tuple[str, str], np.ndarray], labels: Mapping[str, tuple[str, ...]], threshold: float
) -> ProxyReport:
    """Build the proxy report from noisy contingency tables keyed by ``(feature, attribute)``.

    Columns match :func:`~sandbox.fairness.proxy_check`: ``feature, attribute, auc_macro, auc, most_exposed_group,
    mutual_information_bits, flagged`` (``auc`` is the largest one-vs-rest AUC; flagged above ``threshold``).
    """
    rows = []
    for (feature, attr), t in tables.items():
        macro, top, code = contingency_auc(t)
        rows.append((feature, attr, macro, top, labels[attr][code] if code >= 0 else "", _mutual_information(t)))
    cols = ["feature", "attribute", "auc_macro", "auc", "most_exposed_group", "mutual_information_bits"]
    frame = pd.DataFrame(rows, columns=cols)
    frame["flagged"] = frame["auc"] > threshold
    return ProxyReport(frame, threshold)
