"""Noise for the DP engine: exact integer samplers on a public grid, and a DP quantile on a public grid.

Every mechanism takes its sensitivity from the caller, who derives it from the public schema and the policy (never
from the rows). No seed is ever accepted (DESIGN invariant 9): OpenDP draws from the operating system's CSPRNG and
the quantile from :mod:`secrets`.

**Why a grid.** Textbook floating-point Laplace or Gaussian noise leaks the exact value through which doubles can be
output (Mironov 2012; Jin et al. 2022). Here no noise is ever a float. A vector is released as ``gamma * (R + Z)``:

- ``gamma = 2**e`` is a public power-of-two grid step chosen from the sensitivity, epsilon, delta and the vector's
  length only (:func:`grid_exponent`): ``gamma <= min(sensitivity, noise scale) / (cells * 2**GRID_BITS)``;
- ``R = rint(true / gamma)`` is each exact cell value rounded to the grid (dividing by a power of two is exact, so
  this is a function of the exact value alone), or the value itself when the vector holds integers (``gamma = 1``);
- ``Z`` is integer noise from OpenDP 0.16's exact samplers (``opendp.measurements.make_laplace`` /
  ``make_gaussian`` on ``i64`` vectors, which sample the discrete Laplace and the discrete Gaussian of Canonne,
  Kamath and Steinke 2020 in exact arithmetic). ``R + Z`` is summed in Python integers; converting that integer to
  a double and multiplying by ``gamma`` is post-processing of the integer, so every release lies on the grid
  (exactly, below 2**53 grid units; above that each double is a multiple of ``gamma`` anyway).

**Sensitivity in grid units.** Rounding moves each cell by less than half a step, so on neighbouring tables
``|R_c - R'_c| <= |x_c - x'_c| / gamma + 1`` per cell. Over the vector (``n`` cells; the rounding may differ in any
of them, as OpenDP assumes) the L1 sensitivity in grid units is ``ceil(sensitivity / gamma) + n`` and the L2 one
``ceil(sensitivity / gamma + sqrt(n))``; an integer vector keeps its own sensitivity. By the choice of ``gamma``
the rounding adds at most ``2**-GRID_BITS`` (one part in a million) to the noise.

**Accounting.** delta = 0: discrete Laplace with scale ``t = units / epsilon`` in grid units; ``P(Z=z) ~
exp(-|z|/t)`` gives ratio ``exp(units / t) = exp(epsilon)`` for a shift of ``units``: pure epsilon-DP (checked with
OpenDP's own privacy map). delta > 0: discrete Gaussian with ``sigma = units / sqrt(2 rho)``, which is rho-zCDP
for an L2 shift of ``units`` (CKS20: the Renyi divergence of two discrete Gaussians shifted by an integer vector
is at most that of the continuous ones, and a vector of independent ones adds up; OpenDP's privacy map for
``make_gaussian`` states the same); rho is the largest value whose conversion to (epsilon, delta) by CKS20's bound
``delta = exp((a-1)(a rho - epsilon)) (1 - 1/a)**a / (a-1)``, for some order ``a > 1`` (the bound OpenDP's
``make_zCDP_to_approxDP`` uses), meets the query's epsilon and delta. The ``sensitivity`` passed for a vector
is its L1 sensitivity (the engine passes ``k * c``, one household touching at most ``k`` rows each moving the
vector by at most ``c``); as ``L2 <= L1`` it also bounds the L2 sensitivity.

What remains: the exact cell values come from a floating-point sum (the engine's exact part); its rounding error
is not in the sensitivity (Casacuberta et al. 2022). The quantile's choice of interval uses double-precision
weights (see :func:`dp_quantile`). Models stay on diffprivlib's floating-point mechanisms (the design card).
"""

from __future__ import annotations

import contextlib
import math
import secrets
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import opendp.prelude as dp
from diffprivlib.utils import PrivacyLeakWarning
from scipy.special import ndtri

from sandbox._private.shared.errors import InternalError

from .opendp_calls import make_gaussian, make_laplace, privacy_map, sample_zeros

__all__ = [
    "GRID_BITS",
    "Noise",
    "no_privacy_leaks",
    "noisy_vector",
    "dp_quantile",
    "quantile_grid_exponent",
    "grid_exponent",
    "zcdp_rho",
    "laplace_ci95",
    "geometric_ci95",
]

GRID_BITS = 20
_QUANTILE_GRID_BITS = 30
_LEVEL95 = 0.05
_EXACT = 2**52  # below this, float64 holds every integer and its sums exactly
_RNG = secrets.SystemRandom()

dp.enable_features("contrib")


@contextlib.contextmanager
def no_privacy_leaks() -> Iterator[None]:
    """Turn diffprivlib's PrivacyLeakWarning into an error inside the block (the models still use diffprivlib)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrivacyLeakWarning)
        yield


def _pow2(e: int) -> str:
    return f"2^{e}"


@dataclass(frozen=True)
class Noise:
    """What noise was added to one vector.

    Attributes
    ----------
    mechanism : str
        The exact mechanism, as the ledger records it: ``DiscreteLaplace(grid=2^-3)``,
        ``DiscreteGaussian(grid=2^0)`` or ``Exponential(grid=2^-13)``.
    epsilon, delta : float
        Privacy loss of this vector.
    sensitivity : float
        L1 sensitivity (an L2 bound for the Gaussian) for adding or removing one privacy unit, in value units.
    scale : float
        Noise scale in value units: the discrete Laplace scale ``t * grid`` (``sensitivity / epsilon`` plus the
        rounding allowance) or the discrete Gaussian's ``sigma * grid``; NaN for the exponential mechanism.
    ci95 : float
        Half-width of an interval around a released cell that holds its exact value with probability >= 95%
        (noise quantile plus the grid rounding); NaN where there is no closed form.
    grid : float
        The grid step ``gamma``, a power of two; released values are whole multiples of it.
    grid_sensitivity, grid_scale : float
        Sensitivity and scale in grid units (what the sampler and the accounting use).
    rounding : float
        Largest distance between a cell's exact value and its grid value (``grid / 2``; 0 for integer vectors).
    """

    mechanism: str
    epsilon: float
    delta: float
    sensitivity: float
    scale: float
    ci95: float
    grid: float = 1.0
    grid_sensitivity: float = math.nan
    grid_scale: float = math.nan
    rounding: float = 0.0

    @property
    def family(self) -> str:
        """``DiscreteLaplace``, ``DiscreteGaussian`` or ``Exponential``."""
        return self.mechanism.split("(")[0]

    @property
    def std(self) -> float:
        """Standard deviation of the noise in value units (the discrete Gaussian's is at most sigma: CKS20)."""
        if self.family == "DiscreteLaplace":
            a = math.exp(-1.0 / self.grid_scale)
            return math.sqrt(2.0 * a) / -math.expm1(-1.0 / self.grid_scale) * self.grid
        return self.scale

    def grid_quantile(self, level: float) -> int:
        """Smallest whole ``q`` with ``P(|Z| > q) <= level`` for the noise ``Z`` in grid units."""
        if self.family == "DiscreteLaplace":
            return _laplace_quantile(self.grid_scale, level)
        if self.family == "DiscreteGaussian":
            return _gaussian_quantile(self.grid_scale, level)
        raise InternalError(f"{self.mechanism} has no closed-form noise quantile.")

    def half_width(self, level: float) -> float:
        """Half-width around a released cell that holds its exact value with probability >= ``1 - level``."""
        return self.grid_quantile(level) * self.grid + self.rounding

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (figures without closed form, as for the exponential mechanism, are ``None``)."""

        def finite(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "mechanism": self.mechanism,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "sensitivity": self.sensitivity,
            "scale": finite(self.scale),
            "ci95": finite(self.ci95),
            "grid": self.grid,
            "grid_sensitivity": finite(self.grid_sensitivity),
            "grid_scale": finite(self.grid_scale),
            "rounding": self.rounding,
            "sampler": _SAMPLERS[self.family],
        }


_SAMPLERS = {
    "DiscreteLaplace": "opendp 0.16 make_laplace on i64 (exact discrete Laplace); pure epsilon-DP",
    "DiscreteGaussian": "opendp 0.16 make_gaussian on i64 (exact discrete Gaussian, CKS20); rho-zCDP -> (eps, delta)",
    "Exponential": "exponential mechanism on a public grid; uniform integer from secrets.randbelow",
}


def _laplace_quantile(t: float, level: float) -> int:
    """``P(|Z| > q) = 2 a**(q+1) / (1 + a)`` for the discrete Laplace with ``a = exp(-1/t)``."""
    a = math.exp(-1.0 / t)
    if a <= 0.0:
        return 0
    q = max(0, math.ceil(math.log(level * (1.0 + a) / 2.0) / math.log(a)) - 1)
    while 2.0 * a ** (q + 1) / (1.0 + a) > level:  # guard against rounding in the logarithms
        q += 1
    return q


def _gaussian_quantile(sigma: float, level: float) -> int:
    """Bound ``P(|Z| > q) <= 2 P(Y >= q)`` for ``Y ~ N(0, sigma**2)`` (Poisson summation and a monotone tail).

    For the discrete Gaussian, the normaliser ``sum_z exp(-z**2 / (2 sigma**2)) >= sqrt(2 pi) sigma`` and
    ``sum_{z >= m} exp(-z**2 / (2 sigma**2)) <= integral from m - 1 to infinity``, so ``P(Z >= m) <= P(Y >= m - 1)``.
    """
    return max(0, math.ceil(sigma * float(ndtri(1.0 - level / 2.0)) * (1.0 + 1e-12)))


def laplace_ci95(scale: float) -> float:
    """Half-width t with P(|Laplace(scale)| > t) = 5%: ``scale * ln 20`` (continuous; kept for reference)."""
    return scale * math.log(20.0)


def geometric_ci95(epsilon: float, sensitivity: float) -> float:
    """Smallest whole t with P(|two-sided geometric| > t) <= 5%, alpha = exp(-epsilon / sensitivity)."""
    return float(_laplace_quantile(sensitivity / epsilon, _LEVEL95))


# -- accounting ---------------------------------------------------------------------------------------------------
_ALPHAS = 1.0 + np.logspace(-7, 7, 20_001)


@lru_cache(maxsize=256)
def zcdp_rho(epsilon: float, delta: float) -> float:
    """Largest rho such that rho-zCDP implies (epsilon, delta)-DP by CKS20's conversion, over a grid of orders.

    Any order ``a > 1`` gives a valid conversion, so the best order on a fine grid is a valid (slightly
    conservative) answer: ``rho = max_a (epsilon - c_a) / a`` with ``c_a = (a log(1 - 1/a) - log(a - 1) - log
    delta) / (a - 1)``.
    """
    if not (epsilon > 0 and 0 < delta < 1):
        raise InternalError(f"zCDP conversion needs epsilon > 0 and 0 < delta < 1, got {epsilon}, {delta}.")
    a = _ALPHAS
    c = (a * np.log1p(-1.0 / a) - np.log(a - 1.0) - math.log(delta)) / (a - 1.0)
    rho = float(np.max((epsilon - c) / a))
    if rho <= 0:
        raise InternalError(f"no rho > 0 meets epsilon={epsilon}, delta={delta}.")
    return rho * (1.0 - 1e-9)


def grid_exponent(sensitivity: float, epsilon: float, delta: float, cells: int) -> int:
    """Exponent ``e`` of the grid step ``2**e`` for a real vector of ``cells`` cells (public inputs only).

    ``2**e <= min(sensitivity, noise scale) / (spread * 2**GRID_BITS)``, with the noise scale ``sensitivity /
    epsilon`` (Laplace) or ``sensitivity / sqrt(2 rho)`` (Gaussian), and ``spread`` the rounding allowance per unit
    of sensitivity (``cells`` in L1, ``sqrt(cells)`` in L2).
    """
    if delta > 0:
        scale, spread = sensitivity / math.sqrt(2.0 * zcdp_rho(epsilon, delta)), math.sqrt(max(cells, 1))
    else:
        scale, spread = sensitivity / epsilon, float(max(cells, 1))
    target = min(sensitivity, scale) / (spread * 2.0**GRID_BITS)
    return max(math.frexp(target)[1] - 1, -1000)  # frexp: target = m * 2**x with 0.5 <= m < 1


@lru_cache(maxsize=256)
def _laplace_sampler(units: int, epsilon: float) -> tuple[dp.Measurement, float]:
    t = units / epsilon
    meas = make_laplace(t)
    while privacy_map(meas, units) > epsilon:  # OpenDP's map rounds up; nudge the scale until its accounting agrees
        t = math.nextafter(t, math.inf)
        meas = make_laplace(t)
    return meas, t


@lru_cache(maxsize=256)
def _gaussian_sampler(units: int, epsilon: float, delta: float) -> tuple[dp.Measurement, float]:
    rho = zcdp_rho(epsilon, delta)
    sigma = units / math.sqrt(2.0 * rho)
    meas = make_gaussian(sigma)
    while privacy_map(meas, units) > rho:
        sigma = math.nextafter(sigma, math.inf)
        meas = make_gaussian(sigma)
    return meas, sigma


def _release(units: np.ndarray, noise: list[int], e: int) -> np.ndarray:
    """``2**e * (units + noise)`` with the integer sum exact; float conversion after it is post-processing."""
    z = np.asarray(noise, dtype=np.float64) if noise else np.zeros(0)
    if units.size == 0 or (np.abs(units).max() < _EXACT and np.abs(z).max() < _EXACT):
        return np.ldexp(units + z, e)
    exact = [int(u) + int(n) for u, n in zip(units.tolist(), noise, strict=True)]
    return np.ldexp(np.array([float(v) for v in exact], dtype=np.float64), e)


def noisy_vector(
    true: np.ndarray, *, epsilon: float, delta: float, sensitivity: float, integer: bool
) -> tuple[np.ndarray, Noise]:
    """Release every cell of ``true`` on a public grid with exact integer noise (see the module docstring).

    Parameters
    ----------
    true : ndarray
        Exact cell values (1-d).
    epsilon, delta : float
        Budget for the whole vector. ``delta == 0``: discrete Laplace; ``delta > 0``: discrete Gaussian.
    sensitivity : float
        L1 sensitivity of the whole vector (an upper bound on its L2 sensitivity for the Gaussian).
    integer : bool
        Whether the vector holds counts: grid step 1, no rounding, whole-number results.

    Returns
    -------
    noisy : ndarray of float64
        Whole multiples of ``noise.grid``.
    noise : Noise
    """
    x = np.asarray(true, dtype=np.float64).ravel()
    n = int(x.size)
    if not (sensitivity > 0 and math.isfinite(sensitivity)):
        raise InternalError(f"noise needs a finite sensitivity > 0, got {sensitivity}.")
    if integer:
        k = round(sensitivity)
        if k != sensitivity or k < 1:
            raise InternalError(f"integer noise needs a whole sensitivity >= 1, got {sensitivity}.")
        if not np.array_equal(x, np.rint(x)):
            raise InternalError("integer noise was asked for a vector that holds non-integers.")
        e, units, units_sens, rounding = 0, x, int(k), 0.0
    else:
        e = grid_exponent(float(sensitivity), epsilon, delta, n)
        units = np.rint(np.ldexp(x, -e))
        extra = float(max(n, 1)) if delta == 0 else math.sqrt(max(n, 1))
        units_sens = math.ceil(math.ldexp(float(sensitivity), -e) + extra)
        rounding = math.ldexp(1.0, e - 1)
    if delta > 0:
        meas, s = _gaussian_sampler(units_sens, float(epsilon), float(delta))
        name = f"DiscreteGaussian(grid={_pow2(e)})"
    else:
        meas, s = _laplace_sampler(units_sens, float(epsilon))
        name = f"DiscreteLaplace(grid={_pow2(e)})"
    z = sample_zeros(meas, n) if n else []  # the measurement on zeros returns the noise itself; added below, exactly
    grid = math.ldexp(1.0, e)
    figures = (float(epsilon), float(delta), float(sensitivity), s * grid)
    ci95 = Noise(name, *figures, math.nan, grid, units_sens, s, rounding).half_width(_LEVEL95)
    return _release(units, list(z), e), Noise(name, *figures, ci95, grid, units_sens, s, rounding)


# -- quantile -----------------------------------------------------------------------------------------------------
def quantile_grid_exponent(bounds: tuple[float, float]) -> int:
    """Exponent of the quantile's public output grid: about ``(upper - lower) / 2**30``, a power of two."""
    width = float(bounds[1]) - float(bounds[0])
    return math.frexp(width)[1] - 1 - _QUANTILE_GRID_BITS if width > 0 else 0


def dp_quantile(values: np.ndarray, q: float, *, epsilon: float, bounds: tuple[float, float]) -> float:
    """Epsilon-DP ``q``-quantile of ``values`` (rows of one cell): the exponential mechanism on a public grid.

    The output is a grid point ``y = j * 2**e`` in ``[lower, upper]`` (:func:`quantile_grid_exponent`), chosen with
    probability proportional to ``exp(-epsilon |#{x <= y} - q n| / 2)``; the utility moves by at most 1 when one
    row is added or removed, so this is epsilon-DP. The grid points between consecutive sorted values share one
    utility, so the choice is made in two steps, as in Smith (2011): an interval between order statistics, with
    weight ``m_i * exp(epsilon u_i / 2)`` where ``m_i`` is its (exact, integer) number of grid points, then one of
    its grid points uniformly with :func:`secrets.randbelow`. No output bit depends on a data value.

    Floating-point exposure that remains: the interval weights are computed in double precision (relative error
    about 1e-15 of each weight; weights below ``2**-1074`` of the largest are 0) and the interval is drawn with a
    53-bit uniform. OpenDP samples this selection exactly (``make_quantile_score_candidates`` with
    ``make_noisy_max``), but it scores every candidate: 5 ms per cell at 4,097 candidates and 60 ms at 65,537
    (measured), against a grid of 2**30 points here, so it is not used.

    A unit contributing ``c`` rows changes the utility by at most ``c``; the caller divides epsilon by the
    per-unit row bound.
    """
    lo, hi = float(bounds[0]), float(bounds[1])
    if hi <= lo:
        return lo
    e = quantile_grid_exponent((lo, hi))
    x = np.sort(np.clip(np.asarray(values, dtype=np.float64), lo, hi))
    n = x.size
    # first grid index at or above each edge; the last interval also holds the point at the upper bound
    first = np.ceil(np.ldexp(np.concatenate(([lo], x)), -e))
    stop = np.concatenate((first[1:], [math.floor(math.ldexp(hi, -e)) + 1.0]))
    counts = stop - first
    candidates = np.flatnonzero(counts > 0)
    score = -np.abs(candidates - q * n) + (2.0 / epsilon) * np.log(counts[candidates])
    logw = epsilon * (score - score.max()) / 2.0
    cum = np.cumsum(np.exp(logw))
    pick = int(np.searchsorted(cum, _RNG.random() * cum[-1], side="right"))
    i = int(candidates[min(pick, candidates.size - 1)])
    j = int(first[i]) + secrets.randbelow(int(counts[i]))
    return math.ldexp(float(j), e)
