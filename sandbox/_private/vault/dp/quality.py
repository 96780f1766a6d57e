"""A fitted model's quality figures, measured in the vault on held-out households and released as DP counts.

The fit trains on the households that :func:`sandbox._private.shared.holdout.held_out` keeps in (a public hash of
the household id; about 80%) and this module measures the RELEASED model (its public parameters, never the
estimator object) on the rows of the other households. The engine spends ``policy.models.quality_epsilon_share``
of the fit's epsilon here; one ledger charge covers fit and figures.

**Privacy.** The model is ``epsilon_fit``-DP. Given the released parameters, every vector below is a function of
the held-out rows alone, and one household (one row: models are fitted on household tables) falls in exactly one
cell of each count vector, so each vector has L1 sensitivity 1 (``(hi - lo)**2`` for the squared-error sum). By
adaptive sequential composition the pair (model, figures) is ``epsilon_fit + epsilon_quality``-DP, which is what
the ledger charges. A household added to the training side changes the figures only through the model, which is
already accounted for. What leaves, and in which shape, depends on the spec and the schema only:

- a binary classifier: with ``B = QUALITY_BINS`` equal-width bins ``(b/B, (b+1)/B]`` of the predicted probability of
  the positive (second) class (the first bin closed at 0), a noisy count per (true class, bin), ``2B`` cells with
  :data:`COUNT_SHARE` of the epsilon (discrete Laplace on the integers, :func:`.mechanisms.noisy_vector`), and a
  noisy sum of the predicted probability per bin (``B`` cells, sensitivity 1) with the rest. The raw noisy counts
  are released (they may be negative); figures clip where they need to. A row predicted
  positive (probability above 0.5, as ``predict``) is in an upper bin, so the confusion counts at threshold 0.5 are
  sums of bins: TP/FN the positives above/below 0.5, FP/TN the negatives. Accuracy, the AUC of the binned ROC,
  the calibration table (mean predicted probability against the observed positive rate per bin) and the expected
  calibration error are post-processing of these counts (clipped at 0). The binned AUC differs from the exact AUC
  of the same rows by at most ``binning_bound = 0.5 * sum_b P_b N_b / (P N)`` (a pair within one bin is counted
  as half a correctly ordered pair), which is released with it;
- a classifier with ``K > 2`` classes: the noisy ``K x K`` confusion matrix (true x predicted) with the whole
  epsilon, and accuracy from it (no AUC, no calibration);
- a linear regression: half the epsilon on the count of held-out rows, half on the sum of squared errors of the
  prediction clipped to the target's schema bounds ``[lo, hi]`` (each term at most ``(hi - lo)**2``), and the RMSE.

Every figure carries ``noise_sd``: the standard deviation of the figure when fresh Laplace noise of the released
scale is added to the released counts (:data:`N_DRAWS` draws; post-processing, a parametric bootstrap), and the
vectors' mechanisms are listed with their scales. A figure whose denominator is a noisy 0 is ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from sandbox._private.shared.holdout import HOLDOUT_MODULUS, HOLDOUT_RULE
from sandbox._private.shared.modelspec import ModelSpec

from .fitting import class_labels, predict_rows
from .mechanisms import Noise, noisy_vector
from .tabledata import TableData

__all__ = ["QUALITY_BINS", "COUNT_SHARE", "N_DRAWS", "measure_quality", "binary_figures", "binned_auc"]

#: Equal-width bins of the predicted probability (for the AUC and the calibration table).
QUALITY_BINS = 10
#: Share of the quality epsilon a binary classifier spends on the (true class, bin) counts; the rest on score sums.
COUNT_SHARE = 0.8
#: Draws of fresh noise behind each figure's ``noise_sd``.
N_DRAWS = 200


def _codes(values: np.ndarray, labels: list[Any]) -> np.ndarray:
    """Code of each label in ``labels`` order (labels are schema values: bools or category strings)."""
    arr = np.asarray(values, dtype=object)
    out = np.full(arr.shape[0], -1, dtype=np.int64)
    for i, lab in enumerate(labels):
        out[np.asarray(arr == lab, dtype=bool)] = i
    return out


def _bins(score: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Bin ``(b/B, (b+1)/B]`` of each score; a row predicted positive is in an upper bin, any other in a lower one."""
    b = np.clip(np.ceil(score * QUALITY_BINS).astype(np.int64) - 1, 0, QUALITY_BINS - 1)
    half = QUALITY_BINS // 2
    return np.where(positive, np.maximum(b, half), np.minimum(b, half - 1))


def binned_auc(neg: np.ndarray, pos: np.ndarray) -> tuple[float | None, float | None]:
    """AUC of the ROC through the bin edges, and the most it can differ from the exact AUC of the binned rows.

    ``neg``/``pos`` are the counts of negatives and positives per bin, lowest scores first.
    """
    n_neg, n_pos = float(neg.sum()), float(pos.sum())
    if n_neg <= 0 or n_pos <= 0:
        return None, None
    below = np.concatenate([[0.0], np.cumsum(neg)[:-1]])
    pairs = n_neg * n_pos
    return float(np.sum(pos * (below + 0.5 * neg)) / pairs), float(0.5 * np.sum(pos * neg) / pairs)


def binary_figures(neg: np.ndarray, pos: np.ndarray, sums: np.ndarray) -> dict[str, Any]:
    """Accuracy, confusion counts, AUC and calibration from (noisy) per-bin counts and score sums (post-processing).

    The size, the accuracy and the confusion counts are sums of the raw noisy bins, clipped afterwards (clipping each
    bin first would add its noise's positive part to every sum); the AUC and the calibration use the bins clipped
    at 0.
    """
    half = QUALITY_BINS // 2

    def total_of(x: np.ndarray) -> float:
        return max(float(x.sum()), 0.0)

    tp, fn, fp, tn = total_of(pos[half:]), total_of(pos[:half]), total_of(neg[half:]), total_of(neg[:half])
    total = max(float(neg.sum() + pos.sum()), 0.0)
    correct = float(pos[half:].sum() + neg[:half].sum())
    neg, pos = np.clip(neg, 0.0, None), np.clip(pos, 0.0, None)
    binned = float(neg.sum() + pos.sum())
    auc, bound = binned_auc(neg, pos)
    rows, ece = [], 0.0
    for b in range(QUALITY_BINS):
        lo, hi = b / QUALITY_BINS, (b + 1) / QUALITY_BINS
        n = float(neg[b] + pos[b])
        mean = float(np.clip(sums[b] / n, lo, hi)) if n > 0 else None
        rate = float(pos[b] / n) if n > 0 else None
        if mean is not None and rate is not None:
            ece += n / binned * abs(rate - mean)
        rows.append({"lower": lo, "upper": hi, "n": n, "mean_predicted": mean, "observed_rate": rate})
    return {
        "n": total,
        "accuracy": float(np.clip(correct / total, 0.0, 1.0)) if total > 0 else None,
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
        "auc": auc,
        "auc_binning_bound": bound,
        "calibration": rows,
        "ece": ece if binned > 0 else None,
    }


def _sd(draws: list[float | None]) -> float | None:
    vals = [d for d in draws if d is not None]
    return float(np.std(vals, ddof=1)) if len(vals) > 1 else None


def _bootstrap_rng() -> np.random.Generator:
    """Fresh generator for the ``noise_sd`` draws (post-processing; never seeded by a client, invariant 9)."""
    return np.random.Generator(np.random.SFC64())


def _bootstrap(
    released: list[np.ndarray], noises: list[Noise], figures: Callable[..., dict[str, Any]], keys: tuple[str, ...]
) -> dict[str, float | None]:
    """Return the sd of each figure in ``keys`` under fresh Laplace noise of the released scales (post-processing)."""
    rng = _bootstrap_rng()
    draws: dict[str, list[float | None]] = {k: [] for k in keys}
    for _ in range(N_DRAWS):
        again = [v + rng.laplace(0.0, n.std / math.sqrt(2.0), v.shape) for v, n in zip(released, noises, strict=True)]
        out = figures(*again)
        for k in keys:
            draws[k].append(out[k])
    return {k: _sd(v) for k, v in draws.items()}


def _figure(value: float | None, sd: float | None, **extra: Any) -> dict[str, Any]:
    return {"value": value, "noise_sd": sd, **extra}


def _binary(y: np.ndarray, pred: np.ndarray, score: np.ndarray, eps: float) -> dict[str, Any]:
    bins = _bins(score, pred == 1)
    cells = np.bincount(y * QUALITY_BINS + bins, minlength=2 * QUALITY_BINS).astype(np.float64)
    sums = np.bincount(bins, weights=score, minlength=QUALITY_BINS)
    e_counts = eps * COUNT_SHARE
    counts, c_noise = noisy_vector(cells, epsilon=e_counts, delta=0.0, sensitivity=1, integer=True)
    noisy_sums, s_noise = noisy_vector(sums, epsilon=eps - e_counts, delta=0.0, sensitivity=1, integer=False)
    neg, pos = counts[:QUALITY_BINS], counts[QUALITY_BINS:]
    fig = binary_figures(neg, pos, noisy_sums)

    def again(c: np.ndarray, s: np.ndarray) -> dict[str, Any]:
        return binary_figures(c[:QUALITY_BINS], c[QUALITY_BINS:], s)

    sd = _bootstrap([counts, noisy_sums], [c_noise, s_noise], again, ("n", "accuracy", "auc", "ece"))
    return {
        "n_heldout": _figure(fig["n"], sd["n"]),
        "accuracy": _figure(fig["accuracy"], sd["accuracy"], threshold=0.5),
        "auc": _figure(fig["auc"], sd["auc"], binning_bound=fig["auc_binning_bound"]),
        "ece": _figure(fig["ece"], sd["ece"]),
        "calibration": fig["calibration"],
        "rmse": None,
        "counts": {
            "confusion": fig["confusion"],
            "negative_per_bin": neg.tolist(),
            "positive_per_bin": pos.tolist(),
            "score_sum_per_bin": noisy_sums.tolist(),
        },
        "noise": {"counts": c_noise.to_dict(), "score_sums": s_noise.to_dict()},
    }


def _multiclass(y: np.ndarray, pred: np.ndarray, k: int, eps: float) -> dict[str, Any]:
    cells = np.bincount(y * k + pred, minlength=k * k).astype(np.float64)
    counts, noise = noisy_vector(cells, epsilon=eps, delta=0.0, sensitivity=1, integer=True)

    def figures(c: np.ndarray) -> dict[str, Any]:
        total, right = max(float(c.sum()), 0.0), max(float(np.trace(c.reshape(k, k))), 0.0)
        return {"n": total, "accuracy": min(right / total, 1.0) if total > 0 else None}

    fig, sd = figures(counts), _bootstrap([counts], [noise], figures, ("n", "accuracy"))
    return {
        "n_heldout": _figure(fig["n"], sd["n"]),
        "accuracy": _figure(fig["accuracy"], sd["accuracy"], threshold=None),
        "auc": None,
        "ece": None,
        "calibration": [],
        "rmse": None,
        "counts": {"confusion_matrix": counts.reshape(k, k).tolist()},
        "noise": {"counts": noise.to_dict()},
    }


def _regression(y: np.ndarray, pred: np.ndarray, bounds: tuple[float, float], eps: float) -> dict[str, Any]:
    lo, hi = float(bounds[0]), float(bounds[1])
    span2 = max((hi - lo) ** 2, 1e-300)
    residual = np.clip(pred, lo, hi) - np.clip(y, lo, hi)
    n, n_noise = noisy_vector(np.array([float(y.size)]), epsilon=eps / 2, delta=0.0, sensitivity=1, integer=True)
    sse, s_noise = noisy_vector(
        np.array([float(np.sum(residual**2))]), epsilon=eps / 2, delta=0.0, sensitivity=span2, integer=False
    )

    def figures(c: np.ndarray, s: np.ndarray) -> dict[str, Any]:
        count = max(float(c[0]), 0.0)
        if count <= 0:
            return {"n": 0.0, "rmse": None}
        return {"n": count, "rmse": math.sqrt(float(np.clip(s[0], 0.0, count * span2)) / count)}

    fig, sd = figures(n, sse), _bootstrap([n, sse], [n_noise, s_noise], figures, ("n", "rmse"))
    return {
        "n_heldout": _figure(fig["n"], sd["n"]),
        "accuracy": None,
        "auc": None,
        "ece": None,
        "calibration": [],
        "rmse": _figure(fig["rmse"], sd["rmse"], clip=[lo, hi]),
        "counts": {"n": float(max(n[0], 0.0)), "squared_error_sum": float(sse[0])},
        "noise": {"count": n_noise.to_dict(), "squared_error_sum": s_noise.to_dict()},
    }


def measure_quality(
    public: dict[str, Any], spec: ModelSpec, table: TableData, heldout: np.ndarray, epsilon: float
) -> dict[str, Any]:
    """Measure the released model ``public`` on the ``heldout`` rows of ``table``; return the public figures.

    Parameters
    ----------
    public : dict
        The model's public parameters (what leaves the vault); predictions are rebuilt from them.
    spec : ModelSpec
        The fitted spec.
    table : TableData
        The model's table (its relation's rows for a linked fit).
    heldout : ndarray of bool
        One entry per row of ``table``: the public hold-out rule applied to the row's household.
    epsilon : float
        Privacy loss of the figures (split as the module docstring says).
    """
    y_true, y_pred, score = predict_rows(public, spec, table, rows=heldout)
    if spec.task == "regression":
        body = _regression(np.asarray(y_true, float), y_pred, table.schema.column(spec.target).bounds, epsilon)
    else:
        labels = class_labels(spec, table)
        y, pred = _codes(y_true, labels), _codes(y_pred, labels)
        if len(labels) == 2:
            assert score is not None
            body = _binary(y, pred, np.asarray(score, dtype=np.float64), epsilon)
        else:
            body = _multiclass(y, pred, len(labels), epsilon)
    return {
        "format": "sandbox.quality/1",
        "split": {"rule": HOLDOUT_RULE, "modulus": HOLDOUT_MODULUS, "heldout": "household"},
        "epsilon": epsilon,
        "bins": QUALITY_BINS if spec.task == "classification" and len(class_labels(spec, table)) == 2 else 0,
        **body,
        "note": "DP figures on the held-out households (docs/analyst.md, 'Model quality'); noise_sd is the sd under "
        f"fresh noise of the released scales ({N_DRAWS} draws). The model was fitted on the other households only.",
    }
