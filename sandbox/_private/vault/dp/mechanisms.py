"""Noise for the DP engine: diffprivlib mechanisms applied to whole vectors of cells, and a DP quantile.

Every mechanism here takes its sensitivity from the caller, who derives it from the public schema and the
policy (never from the rows). One diffprivlib mechanism object is made per vector and ``randomise`` is called per
cell; the number of cells is capped by ``policy.limits.max_groups``, so this loop is cheap, and all per-row work
stays in numpy. diffprivlib's mechanisms draw from ``secrets.SystemRandom`` when ``random_state`` is ``None``;
no seed is ever accepted (DESIGN invariant 9). ``PrivacyLeakWarning`` is raised as an error.

The ``sensitivity`` passed for a vector is its L1 sensitivity (pure epsilon-DP: Laplace for reals, geometric for
counts) or an upper bound on its L2 sensitivity (delta > 0: the analytic Gaussian mechanism). The engine passes
``k * c`` where one household touches at most ``k`` rows and one row moves the vector by at most ``c`` in L1; as
``L2 <= L1`` the same figure bounds both.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from diffprivlib.mechanisms import Exponential, GaussianAnalytic, Geometric, Laplace
from diffprivlib.utils import PrivacyLeakWarning

from sandbox._private.shared.errors import InternalError

__all__ = ["Noise", "no_privacy_leaks", "noisy_vector", "dp_quantile", "laplace_ci95", "geometric_ci95"]

_Z95 = 1.959963984540054
_RNG = secrets.SystemRandom()
_DIFFPRIVLIB_MAX_CANDIDATES = 50_000


@contextlib.contextmanager
def no_privacy_leaks() -> Iterator[None]:
    """Turn diffprivlib's PrivacyLeakWarning into an error inside the block."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrivacyLeakWarning)
        yield


@dataclass(frozen=True)
class Noise:
    """What noise was added to one vector.

    Attributes
    ----------
    mechanism : str
        diffprivlib class name (``Laplace``, ``Geometric``, ``GaussianAnalytic``, ``Exponential``).
    epsilon, delta : float
        Privacy loss of this vector.
    sensitivity : float
        L1 sensitivity (L2 for the Gaussian) for adding or removing one privacy unit.
    scale : float
        Laplace/geometric scale ``sensitivity / epsilon``, or the Gaussian's standard deviation.
    ci95 : float
        Half-width of an interval that holds the noise with probability >= 95%.
    """

    mechanism: str
    epsilon: float
    delta: float
    sensitivity: float
    scale: float
    ci95: float

    @property
    def std(self) -> float:
        """Standard deviation of the noise (Laplace: sqrt(2) * scale)."""
        return self.scale if self.mechanism == "GaussianAnalytic" else math.sqrt(2.0) * self.scale

    def to_dict(self) -> dict[str, float | str | None]:
        """Plain-JSON form (a scale without closed form, as for the exponential mechanism, is ``None``)."""
        return {
            "mechanism": self.mechanism,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "sensitivity": self.sensitivity,
            "scale": self.scale if math.isfinite(self.scale) else None,
            "ci95": self.ci95 if math.isfinite(self.ci95) else None,
        }


def laplace_ci95(scale: float) -> float:
    """Half-width t with P(|Laplace(scale)| > t) = 5%: ``scale * ln 20``."""
    return scale * math.log(20.0)


def geometric_ci95(epsilon: float, sensitivity: float) -> float:
    """Smallest whole t with P(|two-sided geometric| > t) <= 5%, alpha = exp(-epsilon / sensitivity).

    ``P(|X| > t) = 2 alpha^(t+1) / (1 + alpha)`` for the two-sided geometric distribution.
    """
    alpha = math.exp(-epsilon / sensitivity)
    if alpha <= 0.0:
        return 0.0
    need = math.log(0.05 * (1.0 + alpha) / 2.0) / math.log(alpha)
    return float(max(0, math.ceil(need) - 1))


def noisy_vector(
    true: np.ndarray, *, epsilon: float, delta: float, sensitivity: float, integer: bool
) -> tuple[np.ndarray, Noise]:
    """Add noise calibrated to ``sensitivity`` to every cell of ``true``.

    Parameters
    ----------
    true : ndarray
        Exact cell values (1-d).
    epsilon, delta : float
        Budget for the whole vector. ``delta == 0`` selects the geometric mechanism for ``integer`` vectors and
        the Laplace mechanism otherwise; ``delta > 0`` selects the analytic Gaussian mechanism.
    sensitivity : float
        L1 sensitivity of the whole vector (an upper bound on its L2 sensitivity for the Gaussian).
    integer : bool
        Whether the vector holds counts (the noisy result is then whole numbers).

    Returns
    -------
    noisy : ndarray of float64
    noise : Noise
    """
    with no_privacy_leaks():
        if delta > 0:
            mech = GaussianAnalytic(epsilon=epsilon, delta=delta, sensitivity=float(sensitivity))
            sigma = float(mech._scale)  # diffprivlib stores the calibrated standard deviation here
            noise = Noise("GaussianAnalytic", epsilon, delta, float(sensitivity), sigma, _Z95 * sigma)
            out = np.array([mech.randomise(float(v)) for v in true], dtype=np.float64)
            return (np.round(out) if integer else out), noise
        if integer:
            k = round(sensitivity)
            if k != sensitivity or k < 1:
                raise InternalError(f"geometric mechanism needs a whole sensitivity >= 1, got {sensitivity}.")
            geo = Geometric(epsilon=epsilon, sensitivity=k)
            noise = Noise("Geometric", epsilon, 0.0, float(k), k / epsilon, geometric_ci95(epsilon, k))
            out = np.array([geo.randomise(int(v)) for v in true], dtype=np.float64)
            return out, noise
        lap = Laplace(epsilon=epsilon, delta=0.0, sensitivity=float(sensitivity))
        scale = float(sensitivity) / epsilon
        noise = Noise("Laplace", epsilon, 0.0, float(sensitivity), scale, laplace_ci95(scale))
        out = np.array([lap.randomise(float(v)) for v in true], dtype=np.float64)
        return out, noise


def _secure_uniform() -> float:
    return _RNG.random()


def dp_quantile(values: np.ndarray, q: float, *, epsilon: float, bounds: tuple[float, float]) -> float:
    """Epsilon-DP ``q``-quantile of ``values`` (rows of one cell) by the exponential mechanism (Smith 2011).

    The output domain ``[lower, upper]`` is cut at the sorted, clipped values into ``n + 1`` intervals; interval
    ``i`` has utility ``-|i - q n|`` (sensitivity 1 for adding or removing one row) and is chosen with probability
    proportional to ``width * exp(epsilon * utility / 2)``; the output is uniform within it. This is the
    algorithm of ``diffprivlib.tools.quantile``, but (a) intervals of width 0 are removed from the candidates and
    ``log(width)`` is folded into the utility, so that a large epsilon on data with ties cannot make every
    probability underflow, and (b) every random number comes from ``secrets`` (diffprivlib's tool uses numpy's
    global generator). Up to 50,000 candidate intervals the choice is made by
    ``diffprivlib.mechanisms.Exponential``; above that by the same computation in numpy (a Python list of millions
    of utilities would take seconds).

    A unit contributing ``c`` rows changes the utility by at most ``c``; the caller divides epsilon by the
    per-unit row bound.
    """
    lo, hi = float(bounds[0]), float(bounds[1])
    if hi <= lo:
        return lo
    x = np.sort(np.clip(np.asarray(values, dtype=np.float64), lo, hi))
    n = x.size
    edges = np.concatenate(([lo], x, [hi]))
    widths = np.diff(edges)
    candidates = np.flatnonzero(widths > 0)  # zero-width intervals have probability 0
    # log(width) folded into the utility: exp(eps/2 * (u + 2/eps * log w)) = w * exp(eps/2 * u)
    score = -np.abs(candidates - q * n) + (2.0 / epsilon) * np.log(widths[candidates])
    if candidates.size <= _DIFFPRIVLIB_MAX_CANDIDATES:
        with no_privacy_leaks():
            mech = Exponential(epsilon=epsilon, sensitivity=1.0, utility=score.tolist(), candidates=candidates.tolist())
            idx = int(mech.randomise())
    else:
        logw = epsilon * (score - score.max()) / 2.0
        cum = np.cumsum(np.exp(logw))
        pick = int(np.searchsorted(cum, _secure_uniform() * cum[-1], side="right"))
        idx = int(candidates[min(pick, candidates.size - 1)])
    return float(edges[idx] + _secure_uniform() * widths[idx])
