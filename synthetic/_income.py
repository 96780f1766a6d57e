"""Standardised disposable income, with the inequality of the Netherlands solved in (CBS Gini and P90/P10).

A poor household gets ``line * (1 - shortfall)`` (the shortfall is calibrated in the poverty figures), a
household below the line with a savings buffer ``line * (1 - gap)``. Every other household draws from a
lognormal whose median depends on the main earner's income source, education and the structural knob,
truncated to the line (so the density is continuous just above the line, with no gap). Three constants shape
it and are solved on the reference sample: ``level`` multiplies the medians (it sets the median income),
``spread`` multiplies the per-source log-sd (it sets P90/P10; P10 itself sits at the line, which
``targets.households_below_line`` places), and ``tail`` steepens the log income beyond :data:`TAIL_Z` standard
deviations (a heavier upper tail, which sets the Gini while moving the deciles little). They are solved jointly
by alternating one-dimensional solves.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, partial

import numpy as np

from sandbox import ScenarioError

from ._calibrate import solve_increasing
from ._normal import normal_cdf, normal_ppf

__all__ = ["INCOME_MEDIAN", "INCOME_SD", "TAIL_Z", "INCOME_CAP", "IncomeParts", "gini", "p90_p10", "solve_spread"]

# Median standardised income when not poor, and its log-sd before the solved spread, per income source
# (employment, self-employed, welfare, unemployment, disability, state pension, student; assumption after CBS 2022).
INCOME_MEDIAN = np.array([37_000, 36_000, 18_000, 24_000, 23_500, 28_000, 20_000], dtype=np.float64)
INCOME_SD = np.array([0.50, 0.90, 0.25, 0.35, 0.35, 0.45, 0.40])
#: Rank (as a normal quantile) above which the solved ``tail`` steepens the log income: the top ~7% of each
#: source's households above the line.
TAIL_Z = 1.5
#: Top code of the income column (its public upper bound).
INCOME_CAP = 250_000.0
_ROUNDS = 4


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative ``values`` (half the mean absolute difference over the mean)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    total = float(x.sum())
    if n == 0 or total <= 0.0:
        return float("nan")
    rank = 2.0 * np.arange(1, n + 1) - n - 1.0
    return float(rank @ x) / (n * total)


def p90_p10(values: np.ndarray) -> float:
    """Ratio of the 90th to the 10th percentile (numpy's linear interpolation)."""
    if np.asarray(values).size == 0:
        return float("nan")
    p10, p90 = np.quantile(values, (0.1, 0.9))
    return float(p90 / p10) if p10 > 0 else float("inf")


@dataclass(frozen=True)
class IncomeParts:
    """The pieces of each household's income that do not depend on the solved constants."""

    line: float
    fixed: np.ndarray  # below the line (poor, or with a savings buffer): income is fixed_income
    fixed_income: np.ndarray
    log_median: np.ndarray  # log median of the household's lognormal (source, education, structure)
    sd: np.ndarray  # per-source log-sd before the solved spread
    u: np.ndarray  # the household's uniform draw, turned into a normal above the truncation point

    @cached_property
    def beyond_tail(self) -> np.ndarray:
        """How far the household's rank (as a normal quantile) lies beyond :data:`TAIL_Z`; 0 below it.

        Only the top ranks can be beyond it (u > 0.93 holds every u > P(Z < 1.5) = 0.933), so only those are
        inverted.
        """
        out = np.zeros_like(self.u)
        top = self.u > 0.93
        out[top] = np.maximum(normal_ppf(np.minimum(self.u[top], 1.0 - 2.0**-53)) - TAIL_Z, 0.0)
        return out

    def income(self, level: float, spread: float, tail: float) -> np.ndarray:
        """Income (unrounded, top-coded) for the constants ``level``, ``spread`` and ``tail``."""
        sigma = spread * self.sd
        log_median = self.log_median + np.log(level)
        floor = normal_cdf((np.log(self.line) - log_median) / sigma)
        z = normal_ppf(np.clip(floor + self.u * (1.0 - floor), 1e-300, 1.0 - 2.0**-53))
        above = np.maximum(np.exp(log_median + sigma * z + tail * self.beyond_tail), self.line)
        return np.minimum(np.where(self.fixed, self.fixed_income, above), INCOME_CAP)


def _median(level: float, parts: IncomeParts, spread: float, tail: float) -> float:
    return float(np.median(parts.income(level, spread, tail)))


def _ratio(spread: float, parts: IncomeParts, level: float, tail: float) -> float:
    return p90_p10(parts.income(level, spread, tail))


def _gini(tail: float, parts: IncomeParts, level: float, spread: float) -> float:
    return gini(parts.income(level, spread, tail))


def solve_spread(parts: IncomeParts, median_target: float, ratio_target: float, gini_target: float) -> np.ndarray:
    """Solve ``(level, spread, tail)`` for the median, P90/P10 and Gini of the incomes.

    Raises
    ------
    ScenarioError
        When the targets cannot all be reached (the message gives what was reached).
    """
    level, spread, tail = 1.0, 1.0, 0.0
    for _ in range(_ROUNDS):
        f = partial(_median, parts=parts, spread=spread, tail=tail)
        level = solve_increasing(f, median_target, 0.5, 2.0, tol=0.5)
        f = partial(_ratio, parts=parts, level=level, tail=tail)
        spread = solve_increasing(f, ratio_target, 0.05, 6.0, tol=1e-5)
        f = partial(_gini, parts=parts, level=level, spread=spread)
        tail = solve_increasing(f, gini_target, -1.0, 3.0, tol=1e-6)
    incomes = parts.income(level, spread, tail)
    reached = (float(np.median(incomes)), p90_p10(incomes), gini(incomes))
    if (
        abs(reached[0] - median_target) > 0.005 * median_target
        or abs(reached[1] - ratio_target) > 0.005 * ratio_target
        or abs(reached[2] - gini_target) > 0.001
    ):
        raise ScenarioError(
            f"targets.income_median = {median_target}, income_p90_p10 = {ratio_target} and income_gini = "
            f"{gini_target} cannot all be reached with this scenario's poverty line and income sources: the "
            f"closest is median {reached[0]:.0f}, P90/P10 {reached[1]:.3f} and Gini {reached[2]:.3f}. Choose "
            "figures that fit together (CBS 2022: 31,600 euro, 3.13 and 0.285) and a line below the median."
        )
    return np.array([level, spread, tail])
