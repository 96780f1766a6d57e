"""Confidence intervals for DP answers that hold at least their nominal level, by construction.

The coverage is of the cell's *exact* value (computed on the protected rows), over the DP noise. Each interval is
built from exact tail quantiles of the discrete noise (:meth:`Noise.grid_quantile`) plus the grid rounding, so it
needs no normal approximation and holds for every cell size:

- **count, sum** (one noisy component): ``value -/+ half_width(alpha)``; a count's lower end is clipped at 0.
- **mean** = ``mid + S / N`` with the noisy count ``N`` and the noisy centred sum ``S``: each component's interval
  at level ``1 - alpha/2`` (exact quantiles), so both hold at once with probability ``>= 1 - alpha`` (union bound);
  the interval is the range of ``mid + S / N`` over that box (with ``N >= 1``: a non-empty cell), intersected with
  the public bounds, where every exact mean lies.
- **variance** = ``r**2/2 + S2 u - S1**2 u**2`` with ``u = 1 / N``: three components at ``1 - alpha/3``; the range
  over the box is found in closed form (for fixed ``u`` the extremes sit at a corner in ``S2`` and at the smallest
  or largest ``|S1|``; in ``u`` the function is a concave quadratic, so its maximum is at the vertex or an end and
  its minimum at an end), intersected with ``[0, r**2]``.

Interval arithmetic over a box that holds with probability ``>= 1 - alpha`` is conservative: the coverage is at
least ``1 - alpha`` whatever the true values (tests/test_dp_intervals.py measures it). The intervals are
post-processing of the noisy values and public parameters only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .mechanisms import Noise

__all__ = ["Interval", "noise_interval", "mean_interval", "variance_interval"]


@dataclass(frozen=True)
class Interval:
    """Lower and upper ends per cell (``alpha`` is the nominal miss rate, 0.05 for a 95% interval)."""

    low: np.ndarray
    high: np.ndarray
    alpha: float

    def half_width(self, value: np.ndarray) -> np.ndarray:
        """Symmetric half-width around ``value`` that contains the whole interval (for ``ci95`` of old clients)."""
        return np.maximum(np.asarray(value) - self.low, self.high - np.asarray(value))


def _box(noisy: np.ndarray, noise: Noise, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    h = noise.half_width(alpha)
    return noisy - h, noisy + h


def noise_interval(noisy: np.ndarray, noise: Noise, alpha: float = 0.05, *, count: bool = False) -> Interval:
    """Interval for a count or a sum (one noisy component); a count cannot be negative."""
    low, high = _box(np.asarray(noisy, dtype=np.float64), noise, alpha)
    if count:
        low = np.maximum(low, 0.0)
    return Interval(low, high, alpha)


def _count_box(n_cnt: np.ndarray, noise: Noise, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Box of the true count of a non-empty cell: ``[max(lower, 1), upper]``; ``ok`` is False where it is empty."""
    low, high = _box(np.asarray(n_cnt, dtype=np.float64), noise, alpha)
    low = np.maximum(low, 1.0)
    ok = high >= low
    return low, np.where(ok, high, low), ok


def _ratio_range(a: np.ndarray, b: np.ndarray, n1: np.ndarray, n2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Range of ``s / n`` over ``s in [a, b]``, ``n in [n1, n2]`` with ``0 < n1 <= n2``."""
    lo = np.where(a >= 0, a / n2, a / n1)
    hi = np.where(b >= 0, b / n1, b / n2)
    return lo, hi


def mean_interval(
    n_cnt: np.ndarray,
    n_sum: np.ndarray,
    c_noise: Noise,
    s_noise: Noise,
    bounds: tuple[float, float],
    alpha: float = 0.05,
) -> Interval:
    """Interval for ``mid + S / N`` (``S``: noisy sum of ``x - mid``); see the module docstring.

    Parameters
    ----------
    n_cnt, n_sum : ndarray
        Noisy counts and noisy centred sums per cell.
    c_noise, s_noise : Noise
        Their noise.
    bounds : (float, float)
        The column's public bounds; every exact mean lies in them.
    alpha : float
        Nominal miss rate, split evenly over the two components.
    """
    lo, hi = float(bounds[0]), float(bounds[1])
    mid, r = (lo + hi) / 2, (hi - lo) / 2
    n1, n2, ok = _count_box(n_cnt, c_noise, alpha / 2)
    a, b = _box(np.asarray(n_sum, dtype=np.float64), s_noise, alpha / 2)
    low, high = _ratio_range(a, b, n1, n2)
    low = np.where(ok, np.clip(low, -r, r), -r)
    high = np.where(ok, np.clip(high, -r, r), r)
    return Interval(mid + np.minimum(low, high), mid + np.maximum(low, high), alpha)


def variance_interval(
    n_cnt: np.ndarray,
    n_s1: np.ndarray,
    n_s2: np.ndarray,
    noises: tuple[Noise, Noise, Noise],
    r: float,
    alpha: float = 0.05,
) -> Interval:
    """Interval for the population variance ``r**2/2 + S2/N - (S1/N)**2``.

    ``S1`` is the noisy sum of ``y = x - mid`` and ``S2`` the noisy sum of ``y**2 - r**2/2`` (``r`` the public
    half-range); ``noises`` are those of the count, ``S1`` and ``S2``. Every exact variance lies in ``[0, r**2]``.
    """
    c_n, s1_n, s2_n = noises
    n1, n2, ok = _count_box(n_cnt, c_n, alpha / 3)
    a1, b1 = _box(np.asarray(n_s1, dtype=np.float64), s1_n, alpha / 3)
    a2, b2 = _box(np.asarray(n_s2, dtype=np.float64), s2_n, alpha / 3)
    u1, u2 = 1.0 / n2, 1.0 / n1
    base = r * r / 2
    small = np.where((a1 <= 0) & (b1 >= 0), 0.0, np.minimum(np.abs(a1), np.abs(b1)))
    large = np.maximum(np.abs(a1), np.abs(b1))

    def f(u: np.ndarray, s2: np.ndarray, s1: np.ndarray) -> np.ndarray:
        return np.asarray(base + s2 * u - s1 * s1 * u * u)

    # maximum: S2 at its top, |S1| at its smallest, u at the vertex of the concave quadratic (or an end)
    with np.errstate(divide="ignore", invalid="ignore"):
        vertex = np.where(small > 0, b2 / (2 * small * small), np.where(b2 > 0, u2, u1))
    u_star = np.clip(vertex, u1, u2)
    high = np.maximum.reduce([f(u1, b2, small), f(u2, b2, small), f(u_star, b2, small)])
    # minimum: S2 at its bottom, |S1| at its largest; a concave function of u is smallest at an end
    low = np.minimum(f(u1, a2, large), f(u2, a2, large))
    top = r * r
    low = np.where(ok, np.clip(low, 0.0, top), 0.0)
    high = np.where(ok, np.clip(high, 0.0, top), top)
    return Interval(low, high, alpha)
