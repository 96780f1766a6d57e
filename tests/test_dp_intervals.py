"""Coverage studies of the DP intervals: a 95% interval must hold the exact value in at least 95% of the noise draws.

Each study draws the noise of ``R`` independent releases of one cell at once (a vector of ``R`` equal cells, so the
study is vectorised), builds the intervals exactly as the engine does, and counts the misses of the exact value.

**Acceptance range.** If the coverage is at least 95%, the misses are at most ``Binomial(R, 0.05)``; the study
fails when they exceed that distribution's 99.99% quantile (``binom.ppf(0.9999, R, 0.05)``: 76 of R = 1000, 1115 of
R = 20,000), so a correct construction fails a study with probability below 1e-4. The negative controls show the
range has power: an interval shrunk to 40% of its width fails it, and so does the former normal approximation
(``1.96 x`` delta-method sd) at 10,000 rows, which covers about 93.8% (issue 13 measured 93.9%).

The studies include cells of 1, 3 and 10 rows, where the normal approximation does not hold, values at the public
bound (the worst case for a ratio), both privacy regimes (discrete Laplace, delta = 0; discrete Gaussian,
delta > 0) and epsilon 0.1 and 1. An end-to-end study runs the engine 200 times on a small table and checks every
cell's interval against pandas.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy.stats import binom
from test_dp_tables import engine_policy, households_frame, households_schema

from sandbox._private.shared.query import AggregateQuery
from sandbox._private.vault.dp.engine import DPEngine
from sandbox._private.vault.dp.intervals import Interval, mean_interval, noise_interval, variance_interval
from sandbox._private.vault.dp.mechanisms import noisy_vector
from sandbox._private.vault.dp.tabledata import TableData

R = 1_000
LO, HI = -5_000.0, 150_000.0
MID, RAD = (LO + HI) / 2, (HI - LO) / 2


def max_misses(reps: int, alpha: float = 0.05) -> int:
    """Largest number of misses accepted for a coverage of at least ``1 - alpha`` (99.99% binomial quantile)."""
    return int(binom.ppf(0.9999, reps, alpha))


def misses(ci: Interval, truth: float) -> int:
    return int(np.count_nonzero((ci.low > truth) | (ci.high < truth)))


def _values(n: int, shape: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if shape == "at_upper_bound":
        return np.full(n, HI)
    if shape == "at_lower_bound":
        return np.full(n, LO)
    return np.clip(rng.lognormal(10.3, 0.8, n) - 3_000, LO, HI)  # skewed incomes


def _noisy(true: float, eps: float, delta: float, sens: float, integer: bool, reps: int = R) -> tuple[Any, Any]:
    return noisy_vector(np.full(reps, true), epsilon=eps, delta=delta, sensitivity=sens, integer=integer)


def _mean_draws(x: np.ndarray, eps: float, delta: float, reps: int = R) -> tuple[Interval, np.ndarray, np.ndarray]:
    """The engine's mean on ``reps`` independent releases: interval, point estimate and delta-method sd."""
    n_cnt, c_noise = _noisy(float(x.size), eps / 2, delta / 2, 1.0, True, reps)
    n_sum, s_noise = _noisy(float((x - MID).sum()), eps / 2, delta / 2, RAD, False, reps)
    n = np.maximum(n_cnt, 1.0)
    mean = np.clip(MID + n_sum / n, LO, HI)
    sd = np.sqrt(s_noise.std**2 + (mean - MID) ** 2 * c_noise.std**2) / n
    return mean_interval(n_cnt, n_sum, c_noise, s_noise, (LO, HI)), mean, sd


CASES = [
    (1, "skewed", 1.0, 0.0),
    (3, "skewed", 1.0, 0.0),
    (10, "at_upper_bound", 1.0, 0.0),
    (10, "skewed", 0.1, 0.0),
    (30, "at_lower_bound", 1.0, 1e-7),
    (300, "skewed", 1.0, 0.0),
    (3_000, "skewed", 0.1, 1e-7),
    (30_000, "skewed", 1.0, 0.0),
]


@pytest.mark.parametrize(("n", "shape", "eps", "delta"), CASES)
def test_dp_mean_95_interval_covers_at_least_95_percent(n: int, shape: str, eps: float, delta: float) -> None:
    x = _values(n, shape, seed=n)
    ci, mean, _ = _mean_draws(x, eps, delta)
    missed = misses(ci, float(x.mean()))
    assert missed <= max_misses(R), f"mean of {n} rows ({shape}, eps {eps}, delta {delta}): {missed}/{R} missed"
    assert np.all((ci.low <= mean) & (mean <= ci.high))  # the released mean lies inside its interval
    assert np.all((ci.low >= LO) & (ci.high <= HI))


@pytest.mark.parametrize(("n", "shape", "eps", "delta"), CASES)
def test_dp_variance_95_interval_covers_at_least_95_percent(n: int, shape: str, eps: float, delta: float) -> None:
    x = _values(n, shape, seed=n + 1)
    y = x - MID
    n_cnt, c = _noisy(float(n), eps / 3, delta / 3, 1.0, True)
    n_s1, s1 = _noisy(float(y.sum()), eps / 3, delta / 3, RAD, False)
    n_s2, s2 = _noisy(float((y * y - RAD * RAD / 2).sum()), eps / 3, delta / 3, RAD * RAD / 2, False)
    ci = variance_interval(n_cnt, n_s1, n_s2, (c, s1, s2), RAD)
    missed = misses(ci, float(x.var()))
    assert missed <= max_misses(R), f"variance of {n} rows ({shape}, eps {eps}, delta {delta}): {missed}/{R} missed"
    assert np.all((ci.low >= 0) & (ci.low <= ci.high) & (ci.high <= RAD * RAD))


def test_variance_interval_narrows_with_the_cell_size() -> None:
    """Not vacuous: at 30,000 rows the interval is a small part of the range [0, r^2] that always holds."""
    x = _values(30_000, "skewed", seed=3)
    y = x - MID
    n_cnt, c = _noisy(30_000.0, 1 / 3, 0.0, 1.0, True, 200)
    n_s1, s1 = _noisy(float(y.sum()), 1 / 3, 0.0, RAD, False, 200)
    n_s2, s2 = _noisy(float((y * y - RAD * RAD / 2).sum()), 1 / 3, 0.0, RAD * RAD / 2, False, 200)
    ci = variance_interval(n_cnt, n_s1, n_s2, (c, s1, s2), RAD)
    assert np.median(ci.high - ci.low) < 0.01 * RAD * RAD


@pytest.mark.parametrize(("eps", "delta"), [(1.0, 0.0), (0.1, 1e-7)])
def test_count_and_sum_intervals_cover_at_least_95_percent(eps: float, delta: float) -> None:
    x = _values(40, "skewed", seed=9)
    n_cnt, c = _noisy(40.0, eps, delta, 1.0, True)
    assert misses(noise_interval(n_cnt, c, count=True), 40.0) <= max_misses(R)
    total = float(x.sum())
    n_sum, s = _noisy(total, eps, delta, HI, False)
    assert misses(noise_interval(n_sum, s), total) <= max_misses(R)


def test_count_interval_is_the_exact_discrete_laplace_quantile() -> None:
    """The count's interval is tight: its half-width q has P(|Z| > q) <= 5% < P(|Z| > q - 1)."""
    _, noise = _noisy(5.0, 0.5, 0.0, 1.0, True, 1)
    a, q = math.exp(-0.5), noise.grid_quantile(0.05)
    assert 2 * a ** (q + 1) / (1 + a) <= 0.05 < 2 * a**q / (1 + a)


def test_the_acceptance_range_rejects_too_narrow_intervals() -> None:
    """Negative control: the same studies fail for an interval shrunk to 40% of its width, and for the former
    normal approximation at 10,000 rows (R = 20,000: 99.99% quantile 1115 misses)."""
    x = _values(10_000, "skewed", seed=4)
    truth = float(x.mean())
    ci, mean, sd = _mean_draws(x, 1.0, 0.0, reps=20_000)
    centre, half = (ci.low + ci.high) / 2, (ci.high - ci.low) / 2
    assert misses(ci, truth) <= max_misses(20_000)
    assert misses(Interval(centre - 0.4 * half, centre + 0.4 * half, 0.05), truth) > max_misses(20_000)
    old = Interval(mean - 1.959963984540054 * sd, mean + 1.959963984540054 * sd, 0.05)
    assert misses(old, truth) > max_misses(20_000)  # the interval of issue 13 covers about 93.8%


# -- end to end ---------------------------------------------------------------------------------------------------

REPS = 200


def test_engine_mean_and_variance_intervals_cover_pandas_over_200_runs() -> None:
    """200 engine runs of a grouped mean and variance on 60 households (cells of 0 to 10 households).

    Over 200 runs x 15 cells, a 95% interval misses at most ``binom.ppf(0.9999, n, 0.05)`` of the ``n`` runs of
    non-empty cells; the per-cell misses are pooled (every cell's interval holds with >= 95% on its own).
    """
    frame = households_frame(60, seed=21)
    table = TableData.from_frame(frame, households_schema())
    engine = DPEngine(engine_policy())
    by = ("household_type", "region")
    lo, hi = households_schema().column("income").bounds
    groups = frame.groupby(list(by), observed=True).income
    for kind, truth in (("mean", groups.mean()), ("variance", groups.var(ddof=0))):
        q = AggregateQuery("households", kind, "income", epsilon=1.0, by=by)
        missed = runs = 0
        for _ in range(REPS):
            for row in engine.answer(q, table).public["rows"]:
                key = (row["household_type"], row["region"])
                assert row["ci95_low"] <= row["value"] <= row["ci95_high"]
                assert row["ci95"] >= max(row["value"] - row["ci95_low"], row["ci95_high"] - row["value"])
                if key in truth.index:
                    runs += 1
                    missed += not (row["ci95_low"] <= truth[key] <= row["ci95_high"])
        assert runs >= 10 * REPS
        assert missed <= max_misses(runs), f"{kind}: {missed} of {runs} cell intervals missed the pandas value"
        assert truth.notna().all() and lo <= truth.min() and truth.max() <= (hi if kind == "mean" else (hi - lo) ** 2)
