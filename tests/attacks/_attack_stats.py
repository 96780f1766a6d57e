"""Statistics for the attacks: Clopper-Pearson intervals, empirical ε audits, membership-inference advantage.

The empirical audit follows the standard recipe (Jagielski et al. 2020, "Auditing differentially private machine
learning"; Ding et al. 2018, "Detecting violations of differential privacy"): run the mechanism many times on
two neighbouring datasets D and D', pick a rejection set S (here a threshold test ``output > t`` or
``output < t``) on one half of the trials, and on the other half bound

    ε ≥ ln( P[M(D') ∈ S]_lower / P[M(D) ∈ S]_upper )

with one-sided Clopper-Pearson limits. Selecting S on held-out trials keeps the bound valid: for an ε-DP
mechanism it exceeds ε with probability at most 1 - confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "AuditResult",
    "clopper_pearson",
    "epsilon_lower_bound",
    "dp_advantage_bound",
    "loss_threshold_advantage",
]


def clopper_pearson(k: int, n: int, alpha: float) -> tuple[float, float]:
    """One-sided exact binomial limits: ``(lower, upper)`` each holding with probability ``1 - alpha``."""
    if not 0 <= k <= n or n == 0:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    lower = 0.0 if k == 0 else float(stats.beta.ppf(alpha, k, n - k + 1))
    upper = 1.0 if k == n else float(stats.beta.ppf(1 - alpha, k + 1, n - k))
    return lower, upper


@dataclass(frozen=True)
class AuditResult:
    """The outcome of one audit: the ε lower bound and the test that produced it."""

    epsilon_lb: float
    confidence: float
    threshold: float
    direction: str  # "D' above t" etc.
    hits_d: int
    hits_d1: int
    trials: int
    d1_numerator: bool

    def at_confidence(self, confidence: float) -> float:
        """The bound from the same held-out counts at another confidence level."""
        num, den = (self.hits_d1, self.hits_d) if self.d1_numerator else (self.hits_d, self.hits_d1)
        return _bound(num, den, self.trials, 1 - confidence)

    def __str__(self) -> str:
        return (
            f"ε ≥ {self.epsilon_lb:.3f} at {self.confidence:.0%} ({self.direction}, t={self.threshold:.4g}, "
            f"{self.hits_d1}/{self.trials} vs {self.hits_d}/{self.trials})"
        )


def _tests(candidates: np.ndarray) -> list[tuple[float, bool, bool]]:
    """Every (threshold, above?, D' is the numerator?) rejection set."""
    return [(float(t), above, d1_num) for t in candidates for above in (True, False) for d1_num in (True, False)]


def _hits(out: np.ndarray, t: float, above: bool) -> int:
    return int(np.count_nonzero(out > t) if above else np.count_nonzero(out < t))


def _bound(k_num: int, k_den: int, n: int, alpha: float) -> float:
    lo_num, _ = clopper_pearson(k_num, n, alpha / 2)
    _, hi_den = clopper_pearson(k_den, n, alpha / 2)
    if lo_num <= 0.0:
        return 0.0
    return max(0.0, math.log(lo_num / hi_den))


def epsilon_lower_bound(
    out_d: np.ndarray,
    out_d1: np.ndarray,
    confidence: float = 0.95,
    n_thresholds: int = 60,
    select_confidence: float = 0.999,
) -> AuditResult:
    """Lower-bound ε from outputs of a mechanism on neighbours D (``out_d``) and D' (``out_d1``).

    The first half of each sample selects the threshold test; the second half is used for the bound alone.
    """
    out_d, out_d1 = np.asarray(out_d, dtype=float), np.asarray(out_d1, dtype=float)
    n = min(len(out_d), len(out_d1)) // 2
    sel_d, est_d = out_d[:n], out_d[n : 2 * n]
    sel_d1, est_d1 = out_d1[:n], out_d1[n : 2 * n]
    pooled = np.concatenate([sel_d, sel_d1])
    candidates = np.unique(np.quantile(pooled, np.linspace(0.005, 0.995, n_thresholds)))
    alpha = 1 - confidence
    best = (-1.0, 0.0, True, True)
    for t, above, d1_num in _tests(candidates):
        num, den = (sel_d1, sel_d) if d1_num else (sel_d, sel_d1)
        # A strict level for the choice favours tests with many hits: less winner's curse on the held-out half.
        score = _bound(_hits(num, t, above), _hits(den, t, above), n, 1 - select_confidence)
        if score > best[0]:
            best = (score, t, above, d1_num)
    _, t, above, d1_num = best
    num, den = (est_d1, est_d) if d1_num else (est_d, est_d1)
    k_num, k_den = _hits(num, t, above), _hits(den, t, above)
    eps = _bound(k_num, k_den, n, alpha)
    side = "above" if above else "below"
    direction = f"{'D′' if d1_num else 'D'} {side} t over {'D' if d1_num else 'D′'}"
    k_d, k_d1 = (k_den, k_num) if d1_num else (k_num, k_den)
    return AuditResult(eps, confidence, t, direction, k_d, k_d1, n, d1_num)


def dp_advantage_bound(epsilon: float) -> float:
    """Largest membership advantage TPR - FPR any test can reach against an ε-DP training algorithm.

    Hypothesis-testing view of ε-DP (Kairouz et al. 2015): TPR ≤ e^ε·FPR and 1 - FPR ≤ e^ε·(1 - TPR); the
    largest TPR - FPR on that region is (e^ε - 1) / (e^ε + 1). Tighter than Yeom et al.'s e^ε - 1.
    """
    return math.expm1(epsilon) / (math.exp(epsilon) + 1)


def loss_threshold_advantage(
    cal_member: np.ndarray, cal_nonmember: np.ndarray, member: np.ndarray, nonmember: np.ndarray
) -> tuple[float, float]:
    """Loss-threshold membership attack (Yeom et al. 2018): "member" when the loss is below a threshold.

    The threshold is chosen on calibration losses (other models, trained on other samples: the attacker's
    shadow runs) to maximise TPR - FPR there, then applied to the target losses. Returns
    ``(advantage, threshold)`` where advantage = TPR - FPR on the target.
    """
    cands = np.unique(np.concatenate([cal_member, cal_nonmember]))
    tpr = (cal_member[None, :] <= cands[:, None]).mean(axis=1)
    fpr = (cal_nonmember[None, :] <= cands[:, None]).mean(axis=1)
    t = float(cands[int(np.argmax(tpr - fpr))])
    adv = float(np.mean(member <= t) - np.mean(nonmember <= t))
    return adv, t
