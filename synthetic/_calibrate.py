"""Solving the generator's intercepts so that the population meets its calibration targets.

The generator is written once, as a pipeline of stages. Each stage that must hit a target asks a
:class:`Calibrator` for its intercept. On a fixed reference sample (its own seed, independent of the user's) the
calibrator *solves* the intercept from the expected value of the stage (probabilities, not draws) and records it;
every block of the real population then *applies* the recorded values. The intercepts therefore depend on the
scenario only, never on the seed, worker count or chunk size, and changing a bias knob keeps the overall
figures calibrated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

import numpy as np

from sandbox import InternalError

_MULTINOMIAL_ROWS = 40_000  # rows of the reference sample used to solve multinomial intercepts

__all__ = ["Calibrator", "sigmoid", "bisect", "solve_increasing", "softmax", "draw_index", "draw_rows", "draw_grouped"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, numerically safe for large ``|x|``."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _mean_sigmoid(lp: np.ndarray, b: float) -> float:
    return float(sigmoid(lp + b).mean())


def bisect(f: Callable[[float], float], target: float, lo: float = -40.0, hi: float = 40.0) -> float:
    """Find ``x`` in ``[lo, hi]`` with ``f(x) = target`` for a non-decreasing ``f`` (32 halvings)."""
    for _ in range(32):
        mid = 0.5 * (lo + hi)
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def solve_increasing(
    f: Callable[[float], float], target: float, lo: float, hi: float, *, tol: float = 1e-7, steps: int = 60
) -> float:
    """Find ``x`` in ``[lo, hi]`` with ``f(x) = target`` for an increasing ``f`` (Illinois regula falsi).

    Converges in a handful of evaluations for smooth ``f`` (for costly ``f`` where :func:`bisect` needs 32);
    returns the nearer bound when the target lies outside ``[f(lo), f(hi)]``.
    """
    flo, fhi = f(lo) - target, f(hi) - target
    if flo >= 0.0:
        return lo
    if fhi <= 0.0:
        return hi
    side = 0
    x = lo
    for _ in range(steps):
        x = (lo * fhi - hi * flo) / (fhi - flo)
        fx = f(x) - target
        if abs(fx) <= tol or hi - lo <= tol * max(1.0, abs(x)):
            break
        if fx < 0.0:
            lo, flo = x, fx
            if side == -1:
                fhi *= 0.5
            side = -1
        else:
            hi, fhi = x, fx
            if side == 1:
                flo *= 0.5
            side = 1
    return x


class Calibrator:
    """Solves (on the reference sample) or applies (on real blocks) named calibration constants.

    Parameters
    ----------
    solved : mapping of str to array, optional
        Constants recorded by an earlier solving run. ``None`` starts a solving run.
    """

    def __init__(self, solved: Mapping[str, np.ndarray] | None = None) -> None:
        self.solving = solved is None
        self._values: dict[str, np.ndarray] = {} if solved is None else dict(solved)

    @property
    def values(self) -> dict[str, np.ndarray]:
        """The constants recorded so far (a copy)."""
        return dict(self._values)

    def _get(self, name: str) -> np.ndarray:
        try:
            return self._values[name]
        except KeyError:
            raise InternalError(f"calibration constant {name!r} was never solved") from None

    def constant(self, name: str, solve: Callable[[], np.ndarray | float]) -> np.ndarray:
        """Return the constant ``name``: ``solve()`` when solving (and recorded), else the recorded value."""
        if self.solving:
            self._values[name] = np.atleast_1d(np.asarray(solve(), dtype=np.float64))
        return self._get(name)

    def logit_offsets(self, name: str, lp: np.ndarray, groups: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Return per-group intercepts ``b[g]`` with ``mean(sigmoid(lp + b[g])) = targets[g]`` within group ``g``."""

        def solve() -> np.ndarray:
            out = np.zeros(len(targets))
            for g, t in enumerate(targets):
                sel = lp[groups == g]
                if sel.size:
                    out[g] = bisect(partial(_mean_sigmoid, sel), float(t))
            return out

        return self.constant(name, solve)

    def multinomial_intercepts(self, name: str, util: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Return intercepts per column of ``util`` so that mean softmax probabilities equal ``targets``."""

        def solve() -> np.ndarray:
            b = np.log(np.asarray(targets, dtype=np.float64) + 1e-12)
            sample = util[:_MULTINOMIAL_ROWS]
            for _ in range(40):
                p = softmax(sample + b).mean(axis=0)
                b = b + np.log((targets + 1e-12) / (p + 1e-12))
                b = b - b[-1]
            return b

        return self.constant(name, solve)

    def quantiles(self, name: str, x: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
        """Return the cut points of ``x`` at the quantiles ``qs`` (solved on the reference sample)."""
        return self.constant(name, lambda: np.quantile(x, qs))


def softmax(util: np.ndarray) -> np.ndarray:
    """Row-wise softmax of a utility matrix."""
    z = util - util.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def draw_index(rng: np.random.Generator, p: np.ndarray, n: int) -> np.ndarray:
    """``n`` draws of a category index with fixed probabilities ``p``."""
    cum = np.cumsum(p)
    return np.minimum(np.searchsorted(cum / cum[-1], rng.random(n), side="right"), len(p) - 1).astype(np.int8)


def draw_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One category index per row of a probability matrix (rows need not be normalised)."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None] * cum[:, -1:]
    return np.minimum((u >= cum).sum(axis=1), probs.shape[1] - 1).astype(np.int8)


def draw_grouped(rng: np.random.Generator, table: np.ndarray, group: np.ndarray) -> np.ndarray:
    """One category index per row, with probabilities ``table[group]`` (one searchsorted, no n-by-k matrix)."""
    g, k = table.shape
    cum = np.cumsum(table, axis=1)
    cum = cum / cum[:, -1:]
    flat = (np.arange(g)[:, None] + cum).ravel()
    offset = group.astype(np.int64)
    pos = np.searchsorted(flat, offset + rng.random(group.size), side="right") - offset * k
    return np.minimum(pos, k - 1).astype(np.int8)
