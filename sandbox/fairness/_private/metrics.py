"""Group metrics and disparities computed from confusion counts, vectorised over any leading axes.

The same functions give the point estimates (counts of shape ``(G, 4)``) and the bootstrap distribution (counts of
shape ``(B, G, 4)``), so an interval is always for exactly the number it is printed next to. A rate whose
denominator is zero is NaN here and carries a reason (:data:`UNDEFINED_REASON`); the audit never shows it without.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "RATES",
    "UNDEFINED_REASON",
    "DISPARITIES",
    "DISPARITY_RATES",
    "group_rates",
    "undefined_reasons",
    "Gap",
    "pick_gap",
    "ratio_to_overall",
]

# Column name -> (numerator cells, denominator cells); cells are TP 0, FP 1, FN 2, TN 3.
RATES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "base_rate": ((0, 2), (0, 1, 2, 3)),
    "selection_rate": ((0, 1), (0, 1, 2, 3)),
    "true_positive_rate": ((0,), (0, 2)),
    "false_positive_rate": ((1,), (1, 3)),
    "false_negative_rate": ((2,), (0, 2)),
    "precision": ((0,), (0, 1)),
    "accuracy": ((0, 3), (0, 1, 2, 3)),
}

UNDEFINED_REASON: dict[str, str] = {
    "base_rate": "empty group",
    "selection_rate": "empty group",
    "true_positive_rate": "no positives in y_true (TP + FN = 0)",
    "false_positive_rate": "no negatives in y_true (FP + TN = 0)",
    "false_negative_rate": "no positives in y_true (TP + FN = 0)",
    "precision": "no positive predictions (TP + FP = 0)",
    "accuracy": "empty group",
}

# Disparity -> the rates it compares. Equalized odds is the larger of the TPR and FPR gaps.
DISPARITIES: dict[str, tuple[str, ...]] = {
    "demographic_parity": ("selection_rate",),
    "equalized_odds": ("true_positive_rate", "false_positive_rate"),
    "equal_opportunity": ("true_positive_rate",),
    "predictive_parity": ("precision",),
}
DISPARITY_RATES = ("selection_rate", "true_positive_rate", "false_positive_rate", "precision")


def _sum(counts: np.ndarray, cells: tuple[int, ...]) -> np.ndarray:
    out = counts[..., cells[0]].copy()
    for c in cells[1:]:
        out += counts[..., c]
    return out


def group_rates(counts: np.ndarray) -> dict[str, np.ndarray]:
    """All rates of :data:`RATES` plus ``count`` from counts of shape ``(..., 4)``; NaN where undefined."""
    out = {"count": _sum(counts, (0, 1, 2, 3))}
    for name, (num, den) in RATES.items():
        d = _sum(counts, den)
        out[name] = np.divide(_sum(counts, num), d, out=np.full(d.shape, np.nan), where=d > 0)
    return out


def undefined_reasons(rates: dict[str, np.ndarray], g: int) -> list[str]:
    """Reasons why metrics of group ``g`` are undefined, e.g. ``'false_positive_rate undefined: no negatives'``."""
    return [f"{m} undefined: {UNDEFINED_REASON[m]}" for m in RATES if np.isnan(rates[m][g])]


@dataclass(frozen=True)
class Gap:
    """The largest gap of one rate within a facet, between two groups or between a group and the overall value.

    ``sign`` orients the bootstrap difference like the point estimate, so the interval of
    ``sign * (v[a] - v[b])`` is for the gap as observed and may include 0 when the gap is noise.
    """

    rate: str
    a: int
    b: int  # -1: the facet's overall value
    sign: float
    difference: float
    ratio: float
    ratio_group: int  # the group whose ratio (to b, or to overall) is the reported one


def _pair_between(v: np.ndarray, eligible: np.ndarray) -> tuple[int, int] | None:
    idx = np.flatnonzero(eligible & ~np.isnan(v))
    if idx.size < 2:
        return None
    return int(idx[np.argmax(v[idx])]), int(idx[np.argmin(v[idx])])


def _safe_ratio(lo: float, hi: float) -> float:
    return float(lo / hi) if hi > 0 else (1.0 if lo == hi else float("nan"))


def pick_gap(rate: str, v: np.ndarray, overall: float, eligible: np.ndarray, reference: str) -> Gap | None:
    """Find the gap that defines the disparity of ``rate``: best-off vs worst-off group, or farthest group vs overall.

    Differences and ratios follow fairlearn: ``max - min`` and ``min / max`` between groups; ``max |v - overall|``
    and ``min(min(v/o, o/v))`` to overall.
    """
    if reference == "between_groups":
        pair = _pair_between(v, eligible)
        if pair is None:
            return None
        hi, lo = pair
        return Gap(rate, hi, lo, 1.0, float(v[hi] - v[lo]), _safe_ratio(float(v[lo]), float(v[hi])), lo)
    idx = np.flatnonzero(eligible & ~np.isnan(v))
    if idx.size < 1 or np.isnan(overall):
        return None
    dev = v[idx] - overall
    far = int(idx[np.argmax(np.abs(dev))])
    ratios = ratio_to_overall(v[idx], overall)
    worst = int(idx[np.nanargmin(ratios)]) if not np.isnan(ratios).all() else far
    ratio = float(np.nanmin(ratios)) if not np.isnan(ratios).all() else float("nan")
    sign = 1.0 if v[far] >= overall else -1.0
    return Gap(rate, far, -1, sign, float(abs(v[far] - overall)), ratio, worst)


def ratio_to_overall(v: np.ndarray, overall: np.ndarray | float) -> np.ndarray:
    """``min(v / o, o / v)`` elementwise (1 where both are 0, NaN where only one is), broadcasting ``overall``."""
    v, o = np.broadcast_arrays(np.asarray(v, dtype=np.float64), np.asarray(overall, dtype=np.float64))
    lo, hi = np.minimum(v, o), np.maximum(v, o)
    out = np.divide(lo, hi, out=np.full(v.shape, np.nan), where=hi > 0)
    out[(hi == 0) & (lo == 0)] = 1.0
    return out
