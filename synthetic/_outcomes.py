"""Outcome stages of the generator: true debt, registration, signals, applications, debts and savings.

The true latent debt status goes to the ground truth only. The observed label ``registered_problematic_debt``
depends on the truth and, through ``label_bias``, on group membership beyond the truth.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from ._calibrate import bisect, sigmoid
from ._households import Ctx, source_effects, vec

__all__ = ["outcome_stages", "signal_rows", "CREDITORS_AMOUNT"]

# Log-odds of true problematic debt per income source (assumption after CBS/NVVK client profiles).
_DEBT_SOURCE = vec([0.0, 0.5, 1.2, 0.8, 0.6, -0.9, 0.2])
# Median and log-sd of one month's arrears per creditor type, euro (assumption).
CREDITORS_AMOUNT = (vec([290.0, 420.0, 1_150.0, 95.0]), vec([0.5, 0.6, 0.5, 0.5]))


def _label_uplift(c: Ctx) -> np.ndarray:
    """Extra log-odds of registration per household, beyond the truth (0 when label bias is off)."""
    h, up = c.h, c.sc.label_bias.uplift_log_odds
    mig = h["migration_background"]
    groups = {
        "buiten_europa": mig == 2,
        "europa": mig == 1,
        "welfare": h["income_source"] == 2,
        "single_parent": h["household_type"] == 3,
        "female": h["gender"] == 1,
        "disability": h["disability"],
    }
    total = np.zeros(c.n)
    for name, weight in up.items():
        total += weight * groups[name]
    return c.sc.label_bias.strength * total


def _registration_probs(c: Ctx) -> tuple[np.ndarray, np.ndarray]:
    lb = c.sc.label_bias
    uplift = _label_uplift(c)
    logit = np.log(np.clip(vec([lb.detection_rate, lb.false_registration_rate]), 1e-9, 1 - 1e-9))
    logit -= np.log1p(-np.clip(vec([lb.detection_rate, lb.false_registration_rate]), 1e-9, 1 - 1e-9))
    return sigmoid(logit[0] + uplift), sigmoid(logit[1] + uplift)


def _debt_lp(c: Ctx) -> np.ndarray:
    h = c.h
    mig, hht, age = h["migration_background"], h["household_type"], h["age"]
    rel = np.log(np.maximum(h["disposable_income"], 1_000.0) / 30_000.0)
    structural = (
        np.select([mig == 2, mig == 1], [0.45, 0.2], 0.0)
        + np.select([hht == 3, hht == 0], [0.6, 0.25], 0.0)
        + 0.35 * (age < 35)
        + 0.25 * h["disability"]
    )
    return (
        source_effects(c, _DEBT_SOURCE)[h["income_source"]]
        + 1.4 * h["poverty"]
        + 0.10 * h["neighbourhood_deprivation"]
        - 0.35 * rel
        + 0.3 * (h["housing"] < 2)
        + c.s * structural
    )


def _true_debt(c: Ctx) -> None:
    """Solve the intercept (all) and the Rotterdam offset so that *registered* debt meets both targets."""
    h, t = c.h, c.sc.targets
    lp, (d1, d0) = _debt_lp(c), _registration_probs(c)
    rot = h["municipality"] == 1

    def expected_registered(b: float, r: float, mask: np.ndarray | None) -> float:
        p = sigmoid(lp + b + r * rot)
        e = p * d1 + (1.0 - p) * d0
        return float(e.mean() if mask is None else e[mask].mean())

    def solve() -> np.ndarray:
        b, r = 0.0, 0.0
        for _ in range(3):
            b = bisect(partial(expected_registered, r=r, mask=None), t.registered_problematic_debt)
            r = bisect(partial(expected_registered, b, mask=rot), t.registered_problematic_debt_rotterdam, -10, 10)
        return vec([b, r])

    b, r = c.cal.constant("true_debt", solve)
    h["p_true_debt"] = sigmoid(lp + b + r * rot)
    h["true_problematic_debt"] = c.rng.random(c.n) < h["p_true_debt"]
    h["p_registered"] = np.where(h["true_problematic_debt"], d1, d0)
    h["registered_problematic_debt"] = c.rng.random(c.n) < h["p_registered"]


def _signals(c: Ctx) -> None:
    """Months with an arrears signal per creditor type (0..12); landlords only signal for renters."""
    h, t = c.h, c.sc.targets
    lam = np.exp(2.9 * h["true_problematic_debt"] + 0.7 * h["poverty"] + 0.3 * np.isin(h["income_source"], (2, 3)))
    eligible = np.ones((c.n, 4))
    eligible[:, 2] = h["housing"] < 2
    weight = lam[:, None] * eligible
    shares = vec(list(t.signal_shares.values()))

    def solve() -> np.ndarray:
        persons = (h["n_adults"] + h["n_children"]).mean()
        per_household_year = t.signals_per_1000_residents_per_month / 1000.0 * 12.0 * persons
        return per_household_year * shares / (12.0 * weight.mean(axis=0))

    k = c.cal.constant("signal_scale", solve)
    p_month = np.minimum(weight * k, 0.9)
    counts = c.rng.binomial(12, p_month).astype(np.int8)
    for j, name in enumerate(("arrears_health_insurance", "arrears_energy", "arrears_landlord", "arrears_water")):
        h[name] = counts[:, j]
    h["n_signals"] = counts.sum(axis=1).astype(np.int8)


def _application(c: Ctx) -> None:
    h, t = c.h, c.sc.targets
    lp = (
        3.0 * h["registered_problematic_debt"] + 1.2 * h["true_problematic_debt"] + 0.15 * np.minimum(h["n_signals"], 6)
    )
    rate = t.debt_assistance_applications_per_year / t.households_reference
    b = c.cal.constant("application", lambda: bisect(lambda x: float(sigmoid(lp + x).mean()), rate))
    h["applied_debt_assistance"] = c.rng.random(c.n) < sigmoid(lp + b)


def _debts(c: Ctx) -> None:
    """Debt and creditors: large for households in (or applying for) debt assistance, small consumer debts else."""
    h, t = c.h, c.sc.targets
    applied, true = h["applied_debt_assistance"], h["true_problematic_debt"]
    has_small = c.rng.random(c.n) < 0.30 + 0.1 * h["poverty"]  # consumer credit, student loans (assumption)
    heavy = np.flatnonzero(applied | true)
    light = np.flatnonzero(~(applied | true) & has_small)
    sd, extra = 0.85, t.mean_creditors_at_intake - 1.0
    debt = np.zeros(c.n)
    creditors = np.zeros(c.n, dtype=np.int64)
    mean = np.where(applied[heavy], t.mean_debt_at_intake, 0.7 * t.mean_debt_at_intake)
    debt[heavy] = mean * np.exp(sd * c.rng.standard_normal(heavy.size) - 0.5 * sd**2)
    debt[light] = 2_500.0 * np.exp(1.1 * c.rng.standard_normal(light.size))
    mean_extra = np.where(applied[heavy], extra, 0.5 * extra)
    creditors[heavy] = 1 + c.rng.negative_binomial(4, 4.0 / (4.0 + mean_extra))
    creditors[light] = 1 + c.rng.poisson(0.4, light.size)
    h["total_debt"] = np.clip(np.round(debt, 2), 0.0, 500_000.0)
    h["n_creditors"] = np.clip(creditors, 0, 60).astype(np.int8)


def _savings(c: Ctx) -> None:
    """Draw savings: thin when poor or in debt; a year of the line or more when below it but not poor.

    So ``poverty`` is exactly: income below the line and a buffer below one year of the line (CBS/SCP/Nibud).
    """
    h, line = c.h, c.sc.targets.poverty_line
    strained = h["poverty"] | h["true_problematic_debt"]
    ordinary = 0.3 * h["disposable_income"] * np.exp(1.1 * c.rng.standard_normal(c.n))
    thin = np.minimum(c.rng.exponential(300.0, c.n), 0.5 * line)
    buffer = line * (1.0 + c.rng.exponential(1.0, c.n))  # assumption: one to a few years of the line
    savings = np.where(h["low_income_buffered"], buffer, np.where(strained, thin, ordinary))
    h["savings_buffer"] = np.clip(np.round(savings, 2), 0.0, 500_000.0)


def outcome_stages(c: Ctx) -> None:
    """Run every outcome stage in order (after the household stages)."""
    for stage in (_true_debt, _signals, _application, _debts, _savings):
        stage(c)


def signal_rows(c: Ctx, household_id: np.ndarray) -> dict[str, np.ndarray]:
    """One row per (household, month, creditor type) with a signal, sorted by household, month, creditor."""
    h = c.h
    hids, months, creditors = [], [], []
    for j, name in enumerate(("arrears_health_insurance", "arrears_energy", "arrears_landlord", "arrears_water")):
        idx = np.flatnonzero(h[name])
        rank = np.argsort(np.argsort(c.rng.random((idx.size, 12)), axis=1), axis=1)
        rows, month0 = np.nonzero(rank < h[name][idx, None])
        hids.append(household_id[idx[rows]])
        months.append((month0 + 1).astype(np.int8))
        creditors.append(np.full(rows.size, j, dtype=np.int8))
    hid, month, cred = np.concatenate(hids), np.concatenate(months), np.concatenate(creditors)
    order = np.lexsort((cred, month, hid))
    hid, month, cred = hid[order], month[order], cred[order]
    median, sd = CREDITORS_AMOUNT
    amount = median[cred] * np.exp(sd[cred] * c.rng.standard_normal(hid.size))
    return {
        "household_id": hid,
        "month": month,
        "creditor_type": cred,
        "amount": np.clip(np.round(amount, 2), 0.0, 20_000.0),
    }
