"""The grid noise of vault/dp/mechanisms.py: on the grid, calibrated, epsilon-indistinguishable on neighbours.

References: OpenDP 0.16's own privacy maps and zCDP conversion (the accounting), the exact discrete Laplace pmf
(the sampler, by a chi-square test), and neighbouring inputs in the style of diffprivlib's
``test_neighbours_prob`` (every event ``{output <= t}``, ``{output > t}`` within ``e^epsilon`` of its neighbour's
probability, plus a sampling tolerance; the negative control with half the sensitivity must fail the same check).
"""

from __future__ import annotations

import math

import numpy as np
import opendp.prelude as dp
import pytest
from scipy.stats import chisquare
from test_dp_neighbours import worst_violation

from sandbox._private.shared.errors import InternalError
from sandbox._private.vault.dp import mechanisms, opendp_calls
from sandbox._private.vault.dp.mechanisms import (
    GRID_BITS,
    dp_quantile,
    grid_exponent,
    noisy_vector,
    quantile_grid_exponent,
    zcdp_rho,
)

dp.enable_features("contrib")
RUNS = 20_000  # draws per side, one vector call each
TOL = 0.05  # sd of p_a - e^eps p_b is at most sqrt((1 + e^2) / 4 / RUNS) = 0.0102: TOL is 4.9 of them


def on_grid(values: np.ndarray, grid: float) -> bool:
    e = int(math.log2(grid))
    assert math.ldexp(1.0, e) == grid  # a power of two
    units = np.ldexp(values, -e)
    return bool(np.all(units == np.rint(units)))


@pytest.mark.parametrize(
    ("sens", "eps", "delta", "n", "scale"),
    [
        (1.0, 1.0, 0.0, 5, 1.0),
        (1_200_000.0, 1.0, 0.0, 24, 1e6),
        (1_200_000.0, 1e6, 0.0, 24, 1e12),  # huge epsilon: a grid far below the value's ulp is still exact
        (0.5, 1e-6, 0.0, 3, 1e3),  # tiny epsilon: noise of about 1e13 grid units, still exact integers
        (100.0, 1.0, 1e-7, 10, 1e4),
        (8 * 130_000.0, 0.5, 1e-8, 10_000, 1e9),
    ],
)
def test_outputs_lie_exactly_on_a_public_power_of_two_grid(
    sens: float, eps: float, delta: float, n: int, scale: float
) -> None:
    rng = np.random.default_rng(n)
    true = rng.normal(0, scale, n)
    out, noise = noisy_vector(true, epsilon=eps, delta=delta, sensitivity=sens, integer=False)
    e = int(math.log2(noise.grid))
    family = "DiscreteGaussian" if delta > 0 else "DiscreteLaplace"
    assert noise.mechanism == f"{family}(grid=2^{e})"
    assert on_grid(out, noise.grid)
    assert noise.rounding == noise.grid / 2
    noise_scale = sens / eps if delta == 0 else sens / math.sqrt(2 * zcdp_rho(eps, delta))
    spread = n if delta == 0 else math.sqrt(n)
    assert noise.grid <= min(sens, noise_scale) / (spread * 2**GRID_BITS) < 2 * noise.grid
    # the grid costs at most one part in 2^20 of noise
    assert noise_scale <= noise.scale <= noise_scale * (1 + 2.0 ** (1 - GRID_BITS))
    # public parameters only: other data, same grid and scale
    _, other = noisy_vector(true * 7 + 3, epsilon=eps, delta=delta, sensitivity=sens, integer=False)
    assert (other.mechanism, other.scale, other.grid_sensitivity) == (
        noise.mechanism,
        noise.scale,
        noise.grid_sensitivity,
    )


def test_integer_vectors_keep_whole_numbers_and_their_sensitivity() -> None:
    out, noise = noisy_vector(np.arange(50.0), epsilon=0.5, delta=0.0, sensitivity=3, integer=True)
    assert noise.mechanism == "DiscreteLaplace(grid=2^0)" and noise.rounding == 0.0
    assert noise.grid_sensitivity == 3 and noise.scale == pytest.approx(6.0)
    assert np.all(out == np.rint(out))
    g, gn = noisy_vector(np.arange(50.0), epsilon=1.0, delta=1e-7, sensitivity=2, integer=True)
    assert gn.mechanism == "DiscreteGaussian(grid=2^0)" and np.all(g == np.rint(g))
    with pytest.raises(InternalError, match="whole sensitivity"):
        noisy_vector(np.zeros(3), epsilon=1.0, delta=0.0, sensitivity=1.5, integer=True)
    with pytest.raises(InternalError, match="non-integers"):
        noisy_vector(np.array([0.5]), epsilon=1.0, delta=0.0, sensitivity=1, integer=True)


def test_the_laplace_accounting_agrees_with_opendps_privacy_map() -> None:
    for sens, eps, n in [(1.0, 1.0, 1), (150_000.0, 0.25, 24), (3.0, 2.0, 10_000)]:
        _, noise = noisy_vector(np.zeros(n), epsilon=eps, delta=0.0, sensitivity=sens, integer=False)
        meas = dp.m.make_laplace(
            dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"), scale=noise.grid_scale
        )
        assert meas.map(int(noise.grid_sensitivity)) <= eps
        assert noise.grid_sensitivity >= math.ldexp(sens, -int(math.log2(noise.grid))) + n  # rounding allowance


@pytest.mark.parametrize(("eps", "delta"), [(1.0, 1e-7), (0.1, 1e-7), (2.0, 1e-8), (0.5, 1e-6)])
def test_zcdp_rho_converts_back_within_the_query_budget_by_opendp(eps: float, delta: float) -> None:
    """OpenDP's zCDP -> (epsilon, delta) conversion of our rho stays within epsilon and is tight (within 0.5%)."""
    rho = zcdp_rho(eps, delta)
    gauss = dp.m.make_gaussian(dp.atom_domain(T="i64"), dp.absolute_distance(T="i64"), scale=1 / math.sqrt(2 * rho))
    assert gauss.map(1) == pytest.approx(rho, rel=1e-9)
    profile = dp.c.make_zCDP_to_approxDP(gauss).map(1)
    assert eps * 0.995 <= profile.epsilon(delta) <= eps


def test_discrete_laplace_noise_has_the_exact_pmf() -> None:
    """Chi-square goodness of fit of 20,000 draws against P(Z = z) = (1 - a)/(1 + a) a^|z|, a = e^(-1/t)."""
    out, noise = noisy_vector(np.zeros(RUNS), epsilon=1.0, delta=0.0, sensitivity=2, integer=True)
    t = noise.grid_scale
    a = math.exp(-1 / t)
    support = np.arange(-12, 13)
    pmf = (1 - a) / (1 + a) * a ** np.abs(support)
    tail = (1 - pmf.sum()) / 2
    observed = np.array([np.sum(out < -12), *[np.sum(out == z) for z in support], np.sum(out > 12)])
    expected = RUNS * np.array([tail, *pmf, tail])
    assert chisquare(observed, expected).pvalue > 1e-4
    assert np.std(out) == pytest.approx(noise.std, rel=0.05)


@pytest.mark.parametrize(
    ("delta", "integer", "sens"),
    [(0.0, False, 1_000.0), (0.0, True, 1), (1e-7, False, 1_000.0), (1e-7, True, 2)],
)
def test_neighbouring_inputs_give_outputs_within_e_to_the_epsilon(delta: float, integer: bool, sens: float) -> None:
    """P[M(x) in S] <= e^eps P[M(x') in S] (+ delta) for neighbours x' = x + sensitivity, every threshold event."""
    eps = 1.0
    x = 7.0 if integer else 0.3
    a, _ = noisy_vector(np.full(RUNS, x), epsilon=eps, delta=delta, sensitivity=sens, integer=integer)
    b, _ = noisy_vector(np.full(RUNS, x + sens), epsilon=eps, delta=delta, sensitivity=sens, integer=integer)
    assert abs(a.mean() - b.mean()) > 0.3 * sens  # the neighbours really differ
    assert worst_violation(a, b, eps) <= TOL + delta
    # negative control: noise calibrated to a fraction of the shift (1/2; 1/8 for the Gaussian, whose loss at
    # moderate events is below epsilon) fails the same check
    factor = 8 if delta > 0 else 2
    low = 1 if integer else sens / factor
    c, _ = noisy_vector(np.full(RUNS, x), epsilon=eps, delta=delta, sensitivity=low, integer=integer)
    d, _ = noisy_vector(np.full(RUNS, x + factor * low), epsilon=eps, delta=delta, sensitivity=low, integer=integer)
    assert worst_violation(c, d, eps) > TOL + delta


def test_rounding_moves_neighbouring_vectors_by_at_most_the_grid_sensitivity() -> None:
    """For 2,000 random neighbour pairs (L1 distance <= sensitivity spread over the cells), rounded vectors differ
    by at most ``grid_sensitivity`` grid units: the bound the accounting uses."""
    rng = np.random.default_rng(3)
    sens, n = 1_000.0, 24
    e = grid_exponent(sens, 1.0, 0.0, n)
    _, noise = noisy_vector(np.zeros(n), epsilon=1.0, delta=0.0, sensitivity=sens, integer=False)
    x = rng.normal(0, 1e6, (2_000, n))
    step = rng.dirichlet(np.ones(n), 2_000) * sens * rng.choice([-1, 1], (2_000, n))
    diff = np.abs(np.rint(np.ldexp(x, -e)) - np.rint(np.ldexp(x + step, -e))).sum(axis=1)
    assert diff.max() <= noise.grid_sensitivity
    assert diff.max() > 0.99 * math.ldexp(sens, -e)  # the pairs do use the whole sensitivity


def test_quantile_outputs_lie_on_its_public_grid_inside_the_bounds() -> None:
    bounds = (-5_000.0, 150_000.0)
    e = quantile_grid_exponent(bounds)
    assert math.ldexp(1.0, e) <= (bounds[1] - bounds[0]) / 2**30 < math.ldexp(2.0, e)
    rng = np.random.default_rng(5)
    for values in (rng.lognormal(10, 0.8, 500), np.full(40, 33_333.3333), np.array([])):
        out = np.array([dp_quantile(values, 0.5, epsilon=1.0, bounds=bounds) for _ in range(50)])
        assert on_grid(out, math.ldexp(1.0, e))
        assert np.all((bounds[0] <= out) & (out <= bounds[1]))


def test_quantile_interval_choice_follows_the_exponential_mechanism() -> None:
    """Chi-square test of which gap between order statistics is chosen, against the exact probabilities
    ``m_i exp(eps u_i / 2)`` (``m_i`` grid points in gap ``i``) on data 0, 1, 2, 3 in [0, 4]."""
    values, eps, bounds = np.array([0.0, 1.0, 2.0, 3.0]), 1.0, (0.0, 4.0)
    e = quantile_grid_exponent(bounds)
    m = np.full(4, math.ldexp(1.0, -e))  # [0,1), [1,2), [2,3): 2^-e points each; [3,4] one more
    m[3] += 1
    util = -np.abs(np.arange(1, 5) - 0.5 * 4)  # gap i holds #{x <= y} = i + 1 (the gap [lo, 0) is empty)
    p = m * np.exp(eps * util / 2)
    p /= p.sum()
    draws = np.array([dp_quantile(values, 0.5, epsilon=eps, bounds=bounds) for _ in range(4_000)])
    observed = np.bincount(np.minimum(np.floor(draws), 3).astype(int), minlength=4)
    assert chisquare(observed, 4_000 * p).pvalue > 1e-4


def _reference_sampler(units: int, epsilon: float, delta: float) -> tuple[float, float]:
    """The samplers' scale search through OpenDP's Python wrappers (new domain and metric, ``Measurement.map``)."""
    if delta > 0:
        rho = zcdp_rho(epsilon, delta)
        s = units / math.sqrt(2.0 * rho)
        make = lambda s: dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T="i64")), dp.l2_distance(T="i64"), scale=s)  # noqa: E731
        while make(s).map(units) > rho:
            s = math.nextafter(s, math.inf)
        return s, make(s).map(units)
    t = units / epsilon
    make = lambda t: dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"), scale=t)  # noqa: E731
    while make(t).map(units) > epsilon:
        t = math.nextafter(t, math.inf)
    return t, make(t).map(units)


@pytest.mark.parametrize("delta", [0.0, 1e-7])
def test_the_lean_opendp_calls_give_the_wrappers_scale_and_privacy_map(delta: float) -> None:
    """Same scale (the nudged one) and the same privacy map as through OpenDP's wrappers, for many epsilons."""
    rng = np.random.default_rng(3)
    for units, eps in zip(rng.integers(1, 10**7, size=150), rng.uniform(1e-4, 4.0, size=150), strict=True):
        units, eps = int(units), float(eps)
        meas, s = mechanisms._gaussian_sampler(units, eps, delta) if delta else mechanisms._laplace_sampler(units, eps)
        want, want_map = _reference_sampler(units, eps, delta)
        assert s == want
        assert opendp_calls.privacy_map(meas, units) == want_map == meas.map(units)
        assert want_map <= (zcdp_rho(eps, delta) if delta else eps)


@pytest.mark.parametrize("n", [1, 5, 4096, 4097])
def test_the_lean_sample_is_the_measurements_release_on_zeros(n: int) -> None:
    """Whole numbers, one per cell, from the measurement itself: a scale-0-like measurement gives zeros exactly."""
    meas = dp.m.make_laplace(opendp_calls.VECTOR_I64, opendp_calls.L1_I64, scale=0.0)
    assert opendp_calls.sample_zeros(meas, n) == [0] * n == meas([0] * n)
    wide = dp.m.make_laplace(opendp_calls.VECTOR_I64, opendp_calls.L1_I64, scale=1e6)
    out = opendp_calls.sample_zeros(wide, n)
    assert len(out) == n and all(type(z) is int for z in out)
    if n > 1:
        assert len(set(out)) > 1  # fresh draws per cell


def test_small_cached_vectors_keep_the_exact_pmf() -> None:
    """The cached zero vector (a small answer's path): 4,000 calls of 5 cells fit the discrete Laplace pmf."""
    draws = np.concatenate(
        [noisy_vector(np.zeros(5), epsilon=1.0, delta=0.0, sensitivity=2, integer=True)[0] for _ in range(4000)]
    )
    _, noise = noisy_vector(np.zeros(5), epsilon=1.0, delta=0.0, sensitivity=2, integer=True)
    a = math.exp(-1 / noise.grid_scale)
    support = np.arange(-12, 13)
    pmf = (1 - a) / (1 + a) * a ** np.abs(support)
    tail = (1 - pmf.sum()) / 2
    observed = np.array([np.sum(draws < -12), *[np.sum(draws == z) for z in support], np.sum(draws > 12)])
    assert chisquare(observed, draws.size * np.array([tail, *pmf, tail])).pvalue > 1e-4
