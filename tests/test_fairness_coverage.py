"""Coverage, false alarms and power of the audit's gap intervals, by simulation against the known truth.

Each study draws ``REPS`` independent audits of one facet of five groups at once (the statistical core of the audit
takes a leading axis of audits; :func:`test_the_audit_reports_the_intervals_of_the_core` shows that the audit's
numbers are the core's), so a thousand audits cost about a second. Truth: cell probabilities of each group.
Every test states its repetitions and the binomial range it accepts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sandbox import Policy
from sandbox.fairness import CountTable, FacetCounts, audit_from_counts, audit_predictions
from sandbox.fairness._private.bootstrap import make_rng, resample_counts
from sandbox.fairness._private.group_stats import facet_draws, marginal_intervals
from sandbox.fairness._private.metrics import DISPARITIES
from sandbox.fairness._private.simultaneous import critical_value, max_pair_t, pair_gap_interval
from sandbox.fairness._private.verdict import judge

REPS = 1000
N_BOOT = 250
ALPHA = 0.05
VAULT_NOISE = 7 / (0.75 * 0.5)  # the vault's Laplace scale: 7 facets, 75% of the default audit epsilon 0.5
MIN_SIZE = 10
BASE = 0.3  # share of positives (y_true = 1) in every group
POLICY = Policy.from_mapping(
    {"fairness": {"protected_attributes": ["g"], "intersections": [], "min_group_size": MIN_SIZE}}
)
LABELS = tuple((f"g{i}",) for i in range(5))
DESIGNS = {  # true positive and false positive rate of each of five groups
    "equal": ([0.6] * 5, [0.2] * 5),
    "one group 5 points lower": ([0.6] * 4 + [0.55], [0.2] * 5),
    "spread": ([0.45, 0.5, 0.55, 0.6, 0.65], [0.2, 0.2, 0.25, 0.2, 0.15]),
}
# A method that covers at its nominal 95% shows at least this share in REPS audits with probability 99.9%.
COVERAGE_FLOOR = stats.binom.ppf(0.001, REPS, 1 - ALPHA) / REPS  # 0.929 for 1000 audits


def cells(tpr: list[float], fpr: list[float]) -> np.ndarray:
    """Cell probabilities (TP, FP, FN, TN) per group."""
    t, f = np.asarray(tpr), np.asarray(fpr)
    return np.stack([BASE * t, (1 - BASE) * f, BASE * (1 - t), (1 - BASE) * (1 - f)], axis=-1)


def simulate(n: int, tpr: list[float], fpr: list[float], noise: float, reps: int, seed: int) -> dict[str, np.ndarray]:
    """``reps`` audits of five groups of ``n`` members each: equalized-odds gap, its interval and the truth.

    Released counts are noised, rounded and clipped at 0 as the vault does; the bootstrap resamples them as
    :func:`~sandbox.fairness._private.bootstrap.resample_counts` does (multinomial, then fresh noise).
    """
    rng = np.random.Generator(np.random.SFC64(seed))
    p = cells(tpr, fpr)
    counts = rng.multinomial(n, p, size=(reps, len(p))).astype(float)
    if noise > 0:
        counts = np.clip(np.rint(counts + rng.laplace(0.0, noise, counts.shape)), 0.0, None)
    flat = counts.reshape(reps, -1)
    total = flat.sum(axis=1)
    boot = rng.multinomial(total.astype(np.int64), flat / total[:, None], size=(N_BOOT, reps)).astype(float)
    boot = np.moveaxis(boot, 0, 1).reshape(reps, N_BOOT, len(p), 4)
    if noise > 0:
        boot = np.clip(np.rint(boot + rng.laplace(0.0, noise, boot.shape)), 0.0, None)
    rates = DISPARITIES["equalized_odds"]
    draws = facet_draws(counts, boot, counts.sum(axis=-1) >= MIN_SIZE, noise, rates)
    c = critical_value([max_pair_t(draws[r]) for r in rates], ALPHA)
    truth = {"true_positive_rate": np.asarray(tpr), "false_positive_rate": np.asarray(fpr)}
    out: dict[str, np.ndarray] = {}
    for r in rates:
        lo, hi = pair_gap_interval(draws[r], c)
        usable = draws[r].usable
        true_r, est_r = np.where(usable, truth[r], np.nan), np.where(usable, draws[r].p, np.nan)
        parts = {
            "low": lo,
            "high": hi,
            "truth": np.fmax.reduce(true_r, axis=-1) - np.fmin.reduce(true_r, axis=-1),
            "estimate": np.fmax.reduce(est_r, axis=-1) - np.fmin.reduce(est_r, axis=-1),
        }
        out = {k: np.fmax(out[k], v) if k in out else v for k, v in parts.items()}
    return out


def _study_id(n: int, design: str, noise: float) -> str:
    return f"{n} members, {design}, {f'noise b={noise:.3g}' if noise else 'exact'}"


CASES = [
    (n, d, b) for b in (0.0, VAULT_NOISE) for n in (30, 300, 30_000) for d in ("equal", "one group 5 points lower")
]
SLOW_CASES = [(n, "spread", b) for b in (0.0, VAULT_NOISE) for n in (30, 300, 30_000)]
SLOW_CASES += [(n, d, 2.0) for n in (30, 300, 30_000) for d in DESIGNS]  # noise and sampling of similar size


def _check_coverage(n: int, design: str, noise: float) -> None:
    res = simulate(n, *DESIGNS[design], noise, REPS, seed=n + round(noise * 10) + len(design))
    done = ~np.isnan(res["low"])  # audits with two usable groups (all, except where noise empties a tiny group)
    assert done.sum() >= 0.95 * REPS
    covered = (res["low"] <= res["truth"] + 1e-12) & (res["truth"] <= res["high"] + 1e-12)
    coverage = covered[done].mean()
    # Acceptance: at least 93% of REPS audits (the nominal 95% reaches this with probability 99.9%).
    assert coverage >= max(0.93, COVERAGE_FLOOR), (_study_id(n, design, noise), coverage)
    # intervals respect the range of a gap and bracket the observed gap
    low, high, est = res["low"][done], res["high"][done], res["estimate"][done]
    assert ((low >= 0) & (low <= est + 1e-12) & (est <= high + 1e-12) & (high <= 1)).all()


@pytest.mark.parametrize(("n", "design", "noise"), CASES, ids=[_study_id(*c) for c in CASES])
def test_gap_intervals_cover_for_equal_and_unequal_groups(n: int, design: str, noise: float) -> None:
    _check_coverage(n, design, noise)


@pytest.mark.slow  # 9 more studies of 1000 audits (~12 s)
@pytest.mark.parametrize(("n", "design", "noise"), SLOW_CASES, ids=[_study_id(*c) for c in SLOW_CASES])
def test_gap_intervals_cover_in_more_designs(n: int, design: str, noise: float) -> None:
    _check_coverage(n, design, noise)


FALSE_ALARM_REPS = 2000
# The observed rate of a test whose false-alarm rate is 5% stays below this in 99.9% of studies.
FALSE_ALARM_CEILING = stats.binom.ppf(0.999, FALSE_ALARM_REPS, ALPHA) / FALSE_ALARM_REPS  # 0.065


@pytest.mark.parametrize(("n", "noise"), [(300, 0.0), pytest.param(1_000, 0.0, marks=pytest.mark.slow), (1_000, 5.0)])
def test_fail_verdict_false_alarm_rate_with_equal_groups(n: int, noise: float) -> None:
    """Groups of 300 and 1,000 with equal error rates: the plug-in gap often exceeds the fail threshold 0.10."""
    res = simulate(n, *DESIGNS["equal"], noise, FALSE_ALARM_REPS, seed=90 + n)
    threshold = POLICY.fairness.thresholds["equalized_odds_difference"]
    verdicts = [
        judge("gap", float(d), float(lo), float(hi), threshold, ()).verdict.status
        for d, lo, hi in zip(res["estimate"], res["low"], res["high"], strict=True)
    ]
    fail = np.mean([v == "fail" for v in verdicts])
    significant = np.mean(res["low"] > 0)
    # Acceptance: both rates at most FALSE_ALARM_CEILING over 2000 audits (a 5% rate stays below it with
    # probability 99.9%); the plug-in gap exceeds the fail threshold in a good share, so the test is not vacuous.
    assert fail <= significant <= FALSE_ALARM_CEILING, (fail, significant)
    assert np.mean(res["estimate"] > threshold.fail) > 0.05


def test_the_audit_reports_the_intervals_of_the_core() -> None:
    """The engine's gap interval is the core's on the same resamples, and the groups' intervals are exact."""
    rng = np.random.default_rng(5)
    counts = rng.multinomial(400, cells(*DESIGNS["spread"]).ravel() / 5).reshape(5, 4).astype(float)
    counts = np.clip(np.rint(counts + rng.laplace(0, 3.0, counts.shape)), 0, None)
    table = CountTable((FacetCounts(("g",), LABELS, counts),), counts.sum(axis=0), 3.0)
    audit = audit_from_counts(table, policy=POLICY, n_boot=N_BOOT, random_state=11)
    gen = make_rng(11)
    overall_boot = resample_counts(table.overall[None, :], N_BOOT, gen, 3.0)  # the engine draws the overall first
    boot = resample_counts(counts, N_BOOT, gen, 3.0)
    rates = DISPARITIES["equalized_odds"]
    draws = facet_draws(counts, boot, counts.sum(axis=1) >= MIN_SIZE, 3.0, rates)
    c = critical_value([max_pair_t(draws[r]) for r in rates], ALPHA)
    low = max(float(pair_gap_interval(draws[r], c)[0]) for r in rates)
    high = max(float(pair_gap_interval(draws[r], c)[1]) for r in rates)
    row = audit.disparities.set_index(["metric", "reference"]).loc[("equalized_odds", "between_groups")]
    assert (row["difference_low"], row["difference_high"]) == pytest.approx((low, high), abs=1e-12)
    tpr = audit.by_group[audit.by_group["attribute"] == "g"]
    lo, hi = marginal_intervals(counts, boot, "true_positive_rate", 3.0, ALPHA)
    np.testing.assert_allclose(tpr["true_positive_rate_low"], lo, atol=1e-12)
    np.testing.assert_allclose(tpr["true_positive_rate_high"], hi, atol=1e-12)
    assert overall_boot.shape == (N_BOOT, 1, 4)


@pytest.mark.parametrize(("n", "noise"), [(300, 0.0), (3_000, 0.0), (30_000, 0.0), (3_000, 5.0), (30_000, VAULT_NOISE)])
def test_detectable_gap_is_detected_with_80_percent_power(n: int, noise: float) -> None:
    """One group's true positive rate lower by the reported detectable gap: the audit finds it 80% of the time."""
    expected = n * cells(*DESIGNS["equal"])
    table = CountTable((FacetCounts(("g",), LABELS, expected),), expected.sum(axis=0), noise)
    audit = audit_from_counts(table, policy=POLICY, n_boot=1000, random_state=1)
    gap = float(audit.by_group.set_index("group").loc["g4", "true_positive_rate_detectable_gap"])
    facet = audit.disparities.set_index(["metric", "reference"]).loc[("equalized_odds", "between_groups")]
    assert gap == pytest.approx(float(facet["detectable_gap"]))  # equal groups: every group's figure is the same
    res = simulate(n, [0.6] * 4 + [0.6 - gap], [0.2] * 5, noise, REPS, seed=3 + n)
    power = np.mean(res["low"] > 0)
    # Acceptance: 0.80 ± 0.04 (binomial 99.9% range of 1000 audits) ± 0.02 for the normal approximation the
    # figure rests on.
    assert 0.74 <= power <= 0.86, (gap, power)


@pytest.mark.parametrize(("n", "noise"), [(30, 0.0), (30, 2.0), (300, VAULT_NOISE), (30_000, VAULT_NOISE)])
def test_small_groups_own_intervals_cover_at_their_size(n: int, noise: float) -> None:
    """Each group's own 95% interval of its true positive rate, for groups of 30 (about 9 positives) and more."""
    rng = np.random.Generator(np.random.SFC64(n))
    p = cells(*DESIGNS["spread"])
    counts = rng.multinomial(n, p, size=(REPS, 5)).astype(float)
    if noise > 0:
        counts = np.clip(np.rint(counts + rng.laplace(0.0, noise, counts.shape)), 0.0, None)
    boot = np.stack([resample_counts(c, N_BOOT, rng, noise) for c in counts]) if noise > 0 else counts[:, None]
    lo, hi = marginal_intervals(counts, boot, "true_positive_rate", noise, ALPHA)
    truth = np.asarray(DESIGNS["spread"][0])
    defined = ~np.isnan(lo)
    hits, done = int(((lo <= truth) & (truth <= hi))[defined].sum()), int(defined.sum())
    # Acceptance: at least the binomial 99.9% floor of a 95% interval over the group-audits evaluated.
    floor = stats.binom.ppf(0.001, done, 1 - ALPHA) / done
    assert done >= 0.9 * 5 * REPS and hits / done >= floor, (hits / done, floor)
    assert ((lo[defined] >= 0) & (hi[defined] <= 1)).all()


@pytest.mark.slow  # 200 whole audits of three facets (~6 s)
def test_false_alarm_of_whole_audits_with_two_attributes_and_their_intersection() -> None:
    """End to end: 200 audits of predictions, equal error rates in every group of gender x migration background."""
    policy = Policy.from_mapping(
        {
            "fairness": {
                "protected_attributes": ["gender", "migration_background"],
                "intersections": [["gender", "migration_background"]],
            }
        }
    )
    rng = np.random.default_rng(21)
    n, reps, fails = 6_000, 200, 0
    for rep in range(reps):
        sf = pd.DataFrame({"gender": rng.choice(["m", "v"], n), "migration_background": rng.choice(["a", "b", "c"], n)})
        yt = rng.random(n) < BASE
        yp = np.where(yt, rng.random(n) < 0.6, rng.random(n) < 0.2)
        audit = audit_predictions(yt, yp, sf, policy=policy, n_boot=N_BOOT, random_state=rep)
        fails += audit.verdict.status == "fail"
    # Acceptance: at most the binomial 99.9% quantile of a 5% rate over 200 audits (20 of 200).
    assert fails <= stats.binom.ppf(0.999, reps, ALPHA), fails
