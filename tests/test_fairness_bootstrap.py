"""Bootstrap intervals: coverage of the true value at about the nominal rate, with and without DP noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sandbox import Policy
from sandbox.fairness import CountTable, FacetCounts, audit_from_counts
from sandbox.fairness._private.bootstrap import percentile_interval, resample_counts

REPS = 200
POLICY = Policy.from_mapping(
    {
        "fairness": {
            "protected_attributes": ["gender"],
            "intersections": [],
            "min_group_size": 10,
            "confidence_level": 0.95,
        }
    }
)
# Cell probabilities (TP, FP, FN, TN) of two groups; group "b" has the lower TPR.
P_TRUE = np.array([[0.14, 0.05, 0.06, 0.25], [0.09, 0.06, 0.08, 0.27]])
N_ROWS = 3_000
TRUE_TPR_B = P_TRUE[1, 0] / (P_TRUE[1, 0] + P_TRUE[1, 2])
TRUE_TPR_GAP = P_TRUE[0, 0] / (P_TRUE[0, 0] + P_TRUE[0, 2]) - TRUE_TPR_B
TRUE_SEL_A = (P_TRUE[0, 0] + P_TRUE[0, 1]) / P_TRUE[0].sum()


def _bounds(confidence: float = 0.95) -> tuple[float, float]:
    """A 99.9% range for the coverage of REPS intervals whose true coverage is ``confidence``."""
    lo, hi = stats.binom.ppf([0.0005, 0.9995], REPS, confidence)
    return lo / REPS, hi / REPS


def _coverage(noise_scale: float, tell_noise: bool, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    hits = {"tpr_b": 0, "tpr_gap": 0, "selection_a": 0}
    for rep in range(REPS):
        counts = rng.multinomial(N_ROWS, P_TRUE.ravel() / P_TRUE.sum()).reshape(2, 4).astype(float)
        if noise_scale:
            counts = np.clip(np.rint(counts + rng.laplace(0, noise_scale, counts.shape)), 0, None)
        table = CountTable((FacetCounts(("gender",), (("a",), ("b",)), counts),), counts.sum(axis=0))
        audit = audit_from_counts(
            table, noise_scale=noise_scale if tell_noise else 0.0, policy=POLICY, n_boot=400, random_state=rep
        )
        g = audit.by_group.set_index(["attribute", "group"])
        b, a = g.loc[("gender", "b")], g.loc[("gender", "a")]
        hits["tpr_b"] += b["true_positive_rate_low"] <= TRUE_TPR_B <= b["true_positive_rate_high"]
        hits["selection_a"] += a["selection_rate_low"] <= TRUE_SEL_A <= a["selection_rate_high"]
        d = audit.disparities.set_index(["metric", "reference"]).loc[("equal_opportunity", "between_groups")]
        assert (d["group_a"], d["group_b"]) == ("a", "b") or rep > 0  # the true order is found in practice
        hits["tpr_gap"] += d["difference_low"] <= TRUE_TPR_GAP <= d["difference_high"]
    return {k: v / REPS for k, v in hits.items()}


def test_intervals_cover_the_true_value_at_the_nominal_rate() -> None:
    lo, hi = _bounds()
    cov = _coverage(noise_scale=0.0, tell_noise=False, seed=1)
    for name, c in cov.items():
        assert lo <= c <= hi, (name, c, (lo, hi))


@pytest.mark.slow  # 400 audits (~30 s on a loaded machine)
def test_intervals_include_the_dp_noise_when_told_its_scale() -> None:
    lo, hi = _bounds()
    told = _coverage(noise_scale=15.0, tell_noise=True, seed=2)
    for name, c in told.items():
        assert lo <= c <= hi, (name, c, (lo, hi))
    # Ignoring the noise gives intervals that are too narrow: coverage falls clearly below nominal.
    ignored = _coverage(noise_scale=15.0, tell_noise=False, seed=2)
    assert ignored["tpr_b"] < lo and ignored["tpr_b"] < told["tpr_b"] - 0.05


def test_multinomial_resampling_has_the_moments_of_a_row_bootstrap() -> None:
    """Resampling N rows gives multinomial counts: mean N p, variance N p (1 - p), covariance -N p_i p_j."""
    counts = np.array([[300.0, 120, 80, 500], [50, 40, 60, 850]])
    n, p = counts.sum(), counts.ravel() / counts.sum()
    ours = resample_counts(counts, 20_000, np.random.Generator(np.random.SFC64(1))).reshape(20_000, 8)
    expected_cov = n * (np.diag(p) - np.outer(p, p))
    np.testing.assert_allclose(ours.mean(axis=0), n * p, atol=4 * np.sqrt(n * p / 20_000).max())
    # the sd of a sample variance from 20,000 draws is about var * sqrt(2 / 20,000) = 1% of var (var <= 430)
    np.testing.assert_allclose(np.cov(ours.T), expected_cov, atol=0.05 * expected_cov.max())


def test_laplace_noise_adds_its_variance_to_the_resamples() -> None:
    counts = np.array([[2_000.0, 2_000, 2_000, 2_000]])
    plain = resample_counts(counts, 20_000, np.random.Generator(np.random.SFC64(2)))
    noisy = resample_counts(counts, 20_000, np.random.Generator(np.random.SFC64(2)), noise_scale=10.0)
    # Laplace(b) has variance 2 b^2 = 200; the multinomial cell variance is 8000 * 1/4 * 3/4 = 1500
    assert noisy.var(axis=0).mean() - plain.var(axis=0).mean() == pytest.approx(200, rel=0.15)
    assert (noisy >= 0).all()


def test_percentile_interval_equals_numpy_nanquantile() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 7))
    x[rng.random(x.shape) < 0.2] = np.nan
    x[:, 6] = np.nan
    lo, hi, nan_share = percentile_interval(x, 0.9)
    with pytest.warns(RuntimeWarning, match="All-NaN slice"):
        ref = np.nanquantile(x, [0.05, 0.95], axis=0)
    np.testing.assert_allclose(lo, ref[0], atol=1e-12)
    np.testing.assert_allclose(hi, ref[1], atol=1e-12)
    assert nan_share[6] == 1.0 and np.isnan(lo[6])


def test_all_counts_zero_gives_undefined_not_a_crash() -> None:
    counts = pd.DataFrame(
        {"attribute": ["gender", "gender"], "group": ["a", "b"], "tp": [0, 5], "fp": [0, 5], "fn": [0, 5], "tn": [0, 5]}
    )
    audit = audit_from_counts(counts, policy=POLICY, n_boot=50, random_state=0)
    a = audit.by_group.set_index("group").loc["a"]
    assert a["count"] == 0 and np.isnan(a["selection_rate"]) and "selection_rate undefined: empty group" in a["note"]
    assert audit.verdict.status == "review"
