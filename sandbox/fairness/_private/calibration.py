"""Calibration by group: does a predicted probability of 0.3 mean a 30% rate in every group.

Per group: mean score, base rate, their difference (calibration in the large), and the expected calibration error
(ECE) over ten equal-width score bins. Intervals come from a multinomial bootstrap of the cells
``group x bin x label``, each resampled cell carrying its observed mean score (the within-bin spread of scores is
not resampled, which the report states).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .bootstrap import percentile_interval
from .inputs import EncodedAttribute
from .rules import FACET_SEP, AuditRules

__all__ = ["calibration_by_group", "N_BINS"]

N_BINS = 10


def _facet_codes(attrs: Sequence[EncodedAttribute]) -> tuple[np.ndarray, list[str]]:
    shape = tuple(len(a.labels) for a in attrs)
    code = np.ravel_multi_index(tuple(a.codes for a in attrs), shape)
    uniq, inverse = np.unique(code, return_inverse=True)
    idx = np.unravel_index(uniq, shape)
    labels = [FACET_SEP.join(a.labels[i[k]] for a, i in zip(attrs, idx, strict=True)) for k in range(uniq.size)]
    return inverse.ravel(), labels


def _summaries(n: np.ndarray, pos: np.ndarray, score: np.ndarray) -> dict[str, np.ndarray]:
    """``n, pos, score`` have shape (..., G, bins): cell counts, positives and score sums."""
    ng = n.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_score = np.where(ng > 0, score.sum(axis=-1) / ng, np.nan)
        base = np.where(ng > 0, pos.sum(axis=-1) / ng, np.nan)
        ece = np.where(ng > 0, np.abs(score - pos).sum(axis=-1) / ng, np.nan)
    return {"mean_score": mean_score, "base_rate": base, "calibration_difference": mean_score - base, "ece": ece}


def _one_facet(
    name: str,
    gcode: np.ndarray,
    labels: list[str],
    y: np.ndarray,
    s: np.ndarray,
    bins: np.ndarray,
    n_boot: int,
    rng: np.random.Generator,
    rules: AuditRules,
) -> pd.DataFrame:
    g = len(labels)
    cell = (gcode * N_BINS + bins) * 2 + y
    size = g * N_BINS * 2
    cnt = np.bincount(cell, minlength=size).astype(np.float64)
    ssum = np.bincount(cell, weights=s, minlength=size)
    cell_mean = np.divide(ssum, cnt, out=np.zeros(size), where=cnt > 0)
    boot = rng.multinomial(int(cnt.sum()), cnt / cnt.sum(), size=n_boot).astype(np.float64)
    shape = (g, N_BINS, 2)

    def split(c: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c3, s3 = c.reshape(*c.shape[:-1], *shape), (c * m).reshape(*c.shape[:-1], *shape)
        return c3.sum(axis=-1), c3[..., 1], s3.sum(axis=-1)

    point, dist = _summaries(*split(cnt, cell_mean)), _summaries(*split(boot, cell_mean))
    n = cnt.reshape(shape).sum(axis=(1, 2))
    data: dict[str, object] = {"attribute": name, "group": labels, "count": n}
    for k in point:
        low, high, _ = percentile_interval(dist[k], rules.confidence_level)
        data.update({k: point[k], f"{k}_low": low, f"{k}_high": high})
    data["note"] = [
        f"n = {x:.0f} is below min_group_size {rules.min_group_size}: verdict review"
        if x < rules.min_group_size
        else ""
        for x in n
    ]
    return pd.DataFrame(data)


def calibration_by_group(
    y: np.ndarray,
    score: np.ndarray,
    attrs: Mapping[str, EncodedAttribute],
    rules: AuditRules,
    n_boot: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Calibration summary per group of each facet (and overall), with bootstrap intervals."""
    bins = np.minimum((score * N_BINS).astype(np.int64), N_BINS - 1)
    frames = [
        _one_facet("overall", np.zeros(y.shape[0], dtype=np.int64), ["overall"], y, score, bins, n_boot, rng, rules)
    ]
    for facet in rules.facets:
        gcode, labels = _facet_codes([attrs[a] for a in facet])
        frames.append(_one_facet(FACET_SEP.join(facet), gcode, labels, y, score, bins, n_boot, rng, rules))
    return pd.concat(frames, ignore_index=True)
