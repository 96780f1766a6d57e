"""The standard normal CDF and its inverse in numpy alone, so that solved constants depend on the pinned numpy.

``normal_cdf`` is Abramowitz and Stegun's formula 7.1.26 for erf (absolute error below 1e-7); ``normal_ppf`` is
P. J. Acklam's rational approximation (relative error below 1.2e-9). Both are checked against scipy in
tests/test_synthetic_realism.py; scipy itself is not pinned, so the generator does not call it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["normal_cdf", "normal_ppf"]

_ERF = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
      -3.066479806614716e01, 2.506628277459239e00)  # fmt: skip
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
      -1.328068155288572e01)  # fmt: skip
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
      4.374664141464968e00, 2.938163982698783e00)  # fmt: skip
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
_P_LOW = 0.02425


def _poly(coefs: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    out = np.full_like(x, coefs[0])
    for c in coefs[1:]:
        out = out * x + c
    return out


def normal_cdf(x: np.ndarray | float) -> np.ndarray:
    """P(Z <= x) for a standard normal Z."""
    x = np.asarray(x, dtype=np.float64)
    y = np.abs(x) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * y)
    erf = 1.0 - t * _poly(_ERF[::-1], t) * np.exp(-y * y)
    return 0.5 * (1.0 + np.sign(x) * erf)


def _lower_tail(p: np.ndarray) -> np.ndarray:
    q = np.sqrt(-2.0 * np.log(p))
    return _poly(_C, q) / (_poly(_D, q) * q + 1.0)


def normal_ppf(p: np.ndarray | float) -> np.ndarray:
    """Return the ``x`` with ``P(Z <= x) = p`` for ``p`` in (0, 1)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.empty_like(p)
    low, high = p < _P_LOW, p > 1.0 - _P_LOW
    mid = ~(low | high)
    q = p[mid] - 0.5
    r = q * q
    out[mid] = _poly(_A, r) * q / (_poly(_B, r) * r + 1.0)
    out[low] = _lower_tail(p[low])
    out[high] = -_lower_tail(1.0 - p[high])
    return out
