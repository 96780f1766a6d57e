"""Per-group building blocks of the audit's intervals: exact binomial bounds, Laplace noise, standard errors.

* :func:`clopper_pearson` – the exact binomial interval, used for every group rate of exact counts: its coverage
  is at least the nominal level at every group size and every rate, which the Wald or percentile-bootstrap
  intervals of a group of 30 are not.
* :func:`laplace_sum_quantile` – the exact quantile of ``|L_1 + ... + L_k|`` for ``k`` independent Laplace(``b``)
  draws (the DP noise of a count that sums ``k`` released cells), from the closed-form tail of a difference of two
  Gamma(``k``, ``b``) variables. It bounds the noise in a released group count.
* :func:`rate_parts` and :func:`rate_se` – a rate as ``a / (a + c)`` of summed confusion cells and its standard
  error with one success and one failure added (Agresti–Caffo), plus the variance the DP noise adds to it (delta
  method: a count of ``k`` cells carries noise of variance ``2 k b^2``). The added pseudo-counts keep the standard
  error of a group with a rate of 0 or 1 above 0, so a small group is never studentised by zero.

All functions are vectorised over any array shape.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from .metrics import RATES

__all__ = ["clopper_pearson", "laplace_sum_quantile", "rate_parts", "rate_se", "rate_se_at", "noise_sd"]
__all__ += ["count_interval"]


def clopper_pearson(x: np.ndarray, n: np.ndarray, alpha: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact two-sided ``1 - alpha`` interval for a binomial proportion with ``x`` successes of ``n``.

    Returns ``(low, high)``; where ``n`` is 0 (an undefined rate) both are NaN. ``alpha`` broadcasts.
    """
    x, n, alpha = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (x, n, alpha)))
    fail = n - x
    with np.errstate(invalid="ignore"):
        low = np.where(x > 0, special.betaincinv(np.maximum(x, 1e-300), fail + 1.0, alpha / 2.0), 0.0)
        high = np.where(fail > 0, special.betaincinv(x + 1.0, np.maximum(fail, 1e-300), 1.0 - alpha / 2.0), 1.0)
    empty = n <= 0
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


def _laplace_sum_tail(s: float, k: int) -> float:
    """``P(|L_1 + ... + L_k| > s)`` for iid Laplace(1).

    ``S = X - Y`` with ``X, Y`` iid Gamma(k, 1); integrating ``P(X > s + y)`` against the density of ``Y`` gives
    ``P(S > s) = e^-s / (k-1)! * sum_{i<k} sum_{m<=i} s^(i-m) (k-1+m)! / ((i-m)! m! 2^(k+m))`` for ``s >= 0``.
    """
    total = 0.0
    for i in range(k):
        for m in range(i + 1):
            total += (
                s ** (i - m) * math.factorial(k - 1 + m) / (math.factorial(i - m) * math.factorial(m) * 2 ** (k + m))
            )
    return 2.0 * math.exp(-s) * total / math.factorial(k - 1)


def laplace_sum_quantile(k: int, b: float, q: float) -> float:
    """Smallest ``t`` with ``P(|L_1 + ... + L_k| > t) <= q`` for ``k`` iid Laplace(``b``) draws (0 when ``b`` is 0)."""
    if b <= 0 or k <= 0:
        return 0.0
    if k == 1:
        return b * math.log(1.0 / q)
    lo, hi = 0.0, 1.0
    while _laplace_sum_tail(hi, k) > q:
        hi *= 2.0
    for _ in range(60):  # bisection to machine precision of the unit-scale quantile
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _laplace_sum_tail(mid, k) > q else (lo, mid)
    return b * hi


def rate_parts(counts: np.ndarray, rate: str) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Successes ``a`` and failures ``c`` of ``rate`` from counts ``(..., 4)``, with the number of cells in each."""
    num, den = RATES[rate]
    rest = tuple(i for i in den if i not in num)

    def cells(idx: tuple[int, ...]) -> np.ndarray:  # views added up: no copy of a (B, G, k) block
        out = np.asarray(counts[..., idx[0]], dtype=np.float64).copy()
        for i in idx[1:]:
            out += counts[..., i]
        return out

    return cells(num), cells(rest), len(num), len(rest)


def noise_sd(p: np.ndarray, n: np.ndarray, ka: int, kc: int, noise_scale: float) -> np.ndarray:
    """Return the sd that Laplace noise of scale ``b`` on ``ka`` success and ``kc`` failure cells adds to a rate.

    Delta method for ``a / (a + c)``: ``sqrt(2 b² (ka (1 - p)² + kc p²)) / n`` (``n`` plus 2, as in :func:`rate_se`).
    """
    if noise_scale <= 0:
        return np.zeros(np.shape(p))
    return np.sqrt(2.0 * noise_scale**2 * (ka * (1.0 - p) ** 2 + kc * p**2)) / (np.maximum(n, 0.0) + 2.0)


def rate_se_at(p: np.ndarray, n: np.ndarray, ka: int, kc: int, noise_scale: float) -> np.ndarray:
    """Return the standard error of a rate ``p`` on a denominator ``n`` (plus 2): sampling and DP noise."""
    m = np.maximum(n, 0.0) + 2.0
    return np.sqrt(p * (1.0 - p) / m + noise_sd(p, n, ka, kc, noise_scale) ** 2)


def rate_se(counts: np.ndarray, rate: str, noise_scale: float) -> np.ndarray:
    """Return the standard error of ``rate`` from counts ``(..., 4)`` (one success and one failure added)."""
    a, c, ka, kc = rate_parts(counts, rate)
    return rate_se_at((a + 1.0) / (a + c + 2.0), a + c, ka, kc, noise_scale)


def count_interval(count: np.ndarray, noise_scale: float, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Interval for the true number of rows behind a released group count (the sum of its four cells).

    Exact counts are known: the interval is the count itself. A DP count is off by the sum of four Laplace draws
    and four roundings; the interval holds the true count with probability at least ``1 - alpha`` (its upper end
    exactly; a cell clipped at 0 can only have lifted the released count, which the lower end treats as noise).
    """
    count = np.asarray(count, dtype=np.float64)
    if noise_scale <= 0:
        return count.copy(), count.copy()
    margin = laplace_sum_quantile(4, noise_scale, alpha) + 2.0
    return np.maximum(count - margin, 0.0), count + margin
