"""Membership inference: can an attacker tell whether a household was in a model's training data?

The attack is the loss-threshold attack of Yeom et al. (2018): a record whose loss under the model is small was
probably a training member. The attacker calibrates the threshold on shadow runs (models trained on other
samples from the same population, as in Shokri et al.'s shadow-model attack) and attacks fresh target models.
Its advantage is TPR - FPR on the targets' members and non-members.

Against an ε-DP training algorithm no test can beat (e^ε - 1)/(e^ε + 1) (see ``dp_advantage_bound``); a
non-private logistic regression on few rows with many one-hot features memorises its training set and is
visibly more exposed. Both are trained on the same samples in every run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from ._attack_stats import dp_advantage_bound, loss_threshold_advantage
from ._dp_models import fit_released_model

N_COLS, N_CATS = 12, 8  # 96 one-hot features: room to overfit 60 training rows


def _population(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Households with N_COLS categorical traits (codes) and a label that depends on three of them."""
    cats = rng.integers(0, N_CATS, size=(n, N_COLS))
    logit = 1.5 * (cats[:, 0] < 3) - 1.0 * (cats[:, 1] >= 5) + 0.5 * (cats[:, 2] == 0) - 0.3
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return cats, y


def _one_hot(cats: np.ndarray) -> np.ndarray:
    x = np.zeros((len(cats), N_COLS * N_CATS))
    x[np.arange(len(cats))[:, None], np.arange(N_COLS) * N_CATS + cats] = 1.0
    return x


def _log_loss(p1: np.ndarray, y: np.ndarray) -> np.ndarray:
    p = np.where(y == 1, p1, 1 - p1)
    return -np.log(np.clip(p, 1e-15, 1.0))


Fit = Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]]


def _non_private(cats: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """scikit-learn's logistic regression, barely regularised, on the same one-hot encoding."""
    model = LogisticRegression(C=1e4, max_iter=5000).fit(_one_hot(cats), y)
    return lambda z: model.predict_proba(_one_hot(z))[:, 1]


def _dp(epsilon: float) -> Fit:
    """The engine's ε-DP logistic regression, attacked through its released (public) parameters."""
    return lambda cats, y: fit_released_model(cats, y, epsilon=epsilon, n_cats=N_CATS)


@dataclass(frozen=True)
class Outcome:
    advantage: float
    test_accuracy: float


def _attack(fit: Fit, runs: int, n: int, seed: int) -> Outcome:
    """Train ``runs`` models on fresh samples; calibrate on the first half, attack the second half."""
    rng = np.random.default_rng(seed)
    member, nonmember, correct = [], [], []
    for _ in range(runs):
        x, y = _population(rng, 2 * n)
        predict = fit(x[:n], y[:n])
        member.append(_log_loss(predict(x[:n]), y[:n]))
        nonmember.append(_log_loss(predict(x[n:]), y[n:]))
        correct.append(np.mean((predict(x[n:]) >= 0.5) == y[n:]))
    h = runs // 2
    adv, _ = loss_threshold_advantage(
        np.concatenate(member[:h]), np.concatenate(nonmember[:h]),
        np.concatenate(member[h:]), np.concatenate(nonmember[h:]),
    )  # fmt: skip
    return Outcome(adv, float(np.mean(correct)))


def _check(runs: int, n: int, epsilon: float, attack_figure: Callable[[str], None]) -> None:
    bound = dp_advantage_bound(epsilon)
    non_private = _attack(_non_private, runs, n, seed=7)
    dp = _attack(_dp(epsilon), runs, n, seed=7)
    # Sampling error of TPR - FPR over m members and m non-members is at most sqrt(2 * 0.25 / m).
    m = (runs - runs // 2) * n
    se = float(np.sqrt(0.5 / m))
    attack_figure(
        f"ε={epsilon:g}: DP advantage {dp.advantage:.3f} ≤ bound {bound:.3f}; non-private {non_private.advantage:.3f}"
        f" (±{2 * se:.3f}, {m}+{m} targets; test accuracy DP {dp.test_accuracy:.2f}, "
        f"non-private {non_private.test_accuracy:.2f})"
    )
    assert dp.advantage <= bound, f"DP model advantage {dp.advantage:.3f} exceeds the ε-DP bound {bound:.3f}"
    # The non-private model is visibly more exposed: above the DP bound by more than twice the sampling error.
    assert non_private.advantage > bound + 2 * se, (
        f"non-private advantage {non_private.advantage:.3f} is not clearly above the bound {bound:.3f}: the attack "
        "lacks power, so the DP result above proves nothing"
    )
    assert non_private.advantage > dp.advantage + 4 * se


@pytest.mark.attack("membership inference", defence="ε-DP model fit in the vault (engine logistic_regression)")
def test_loss_threshold_attack_dp_vs_non_private(attack_figure: Callable[[str], None]) -> None:
    _check(runs=20, n=60, epsilon=1.0, attack_figure=attack_figure)


@pytest.mark.slow
@pytest.mark.attack("membership inference", defence="ε-DP model fit in the vault (engine logistic_regression)")
@pytest.mark.parametrize("epsilon", [0.25, 0.5, 1.0])
def test_loss_threshold_attack_many_runs(epsilon: float, attack_figure: Callable[[str], None]) -> None:
    _check(runs=100, n=60, epsilon=epsilon, attack_figure=attack_figure)
