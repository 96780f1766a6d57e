"""Bootstrap distributions of confusion counts, and percentile intervals.

Resampling works on the per-group confusion counts, never on rows and never by re-running metric functions: a
resample of a facet with ``N`` rows is one multinomial draw of ``N`` over its ``G x 4`` cells (all groups and all
resamples at once), which is exactly the distribution of the counts of a row bootstrap. When the counts carry DP
noise of Laplace scale ``b``, every resampled count gets fresh Laplace noise of the same scale and is rounded and
clipped at 0 as the release was, so the resamples carry sampling error and noise together.
"""

from __future__ import annotations

import numpy as np

from sandbox._private.shared.errors import FairnessInputError

__all__ = ["make_rng", "resample_counts", "percentile_interval"]


def make_rng(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """Return a generator on the named SFC64 bit generator (or the caller's generator, used as is)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is not None and (not isinstance(random_state, int | np.integer) or random_state < 0):
        raise FairnessInputError(f"random_state must be a non-negative int, a Generator or None, got {random_state!r}")
    return np.random.Generator(np.random.SFC64(random_state))


def resample_counts(counts: np.ndarray, n_boot: int, rng: np.random.Generator, noise_scale: float = 0.0) -> np.ndarray:
    """Bootstrap resamples of counts ``(G, 4)`` as an array ``(n_boot, G, 4)`` of float64.

    Parameters
    ----------
    counts : ndarray of shape (G, 4)
        Non-negative (possibly non-integer, DP-noised) counts; they are rounded to define the cell probabilities.
    n_boot : int
        Number of resamples.
    rng : Generator
        Source of randomness.
    noise_scale : float
        Laplace scale of the DP noise in ``counts``; 0 for exact counts.
    """
    flat = np.rint(np.asarray(counts, dtype=np.float64)).ravel()
    total = int(flat.sum())
    if total <= 0:
        draws = np.zeros((n_boot, flat.size), dtype=np.float64)
    else:
        draws = rng.multinomial(total, flat / total, size=n_boot).astype(np.float64)
    if noise_scale > 0:
        draws += rng.laplace(0.0, noise_scale, size=draws.shape)
        np.rint(draws, out=draws)
        np.clip(draws, 0.0, None, out=draws)
    return draws.reshape(n_boot, *np.shape(counts))


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile interval along axis 0, ignoring NaN resamples (a group that was empty in that resample).

    Returns ``(low, high, nan_share)``; where every resample is NaN, low and high are NaN. Vectorised over all
    columns at once (``np.nanquantile`` loops per column when NaN are present).
    """
    alpha = (1.0 - confidence) / 2.0
    s = np.sort(samples, axis=0)  # NaN sort last
    valid = (~np.isnan(s)).sum(axis=0)
    lows, highs = (_quantile_sorted(s, valid, q) for q in (alpha, 1.0 - alpha))
    return lows, highs, 1.0 - valid / max(samples.shape[0], 1)


def _quantile_sorted(s: np.ndarray, valid: np.ndarray, q: float) -> np.ndarray:
    pos = q * np.maximum(valid - 1, 0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(valid - 1, 0))
    frac = pos - lo
    a = np.take_along_axis(s, lo[None, ...], axis=0)[0]
    b = np.take_along_axis(s, hi[None, ...], axis=0)[0]
    out = a + (b - a) * frac
    return np.where(valid > 0, out, np.nan)
