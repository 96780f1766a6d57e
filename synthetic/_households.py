"""Household stages of the generator: place, composition, main earner, skills, income source, poverty, income, housing.

Each stage reads and adds arrays in ``ctx.h`` (one entry per household, categories as ``int8`` codes in the
order of :mod:`synthetic._categories`). All randomness comes from ``ctx.rng``, the block's own generator; all
intercepts come from ``ctx.cal`` (see :mod:`synthetic._calibrate`): the children per household type
(:mod:`synthetic._demography`, for the CBS size distribution), the shift of the 67+ age band, the poverty
offsets, the share below the line with a savings buffer, and the shape of the income distribution
(:mod:`synthetic._income`, for the CBS median, P90/P10 and Gini). Numbers without a CALIBRATION.md or
docs/calibration.md source are assumptions, named as such in comments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sandbox import ScenarioError

from ._calibrate import Calibrator, bisect, draw_grouped, draw_index, draw_rows, sigmoid
from ._categories import codes
from ._demography import (
    AGE_EDGES,
    OLDEST_BAND_SKEW,
    OTHER_ADULTS,
    PENSION_AGE,
    band_table,
    children_table,
    old_age_shift,
)
from ._income import INCOME_CAP, INCOME_MEDIAN, INCOME_SD, IncomeParts, solve_spread
from ._scenario import Scenario

__all__ = ["Ctx", "household_stages", "source_effects", "AGE_EDGES", "PENSION_AGE", "LANGUAGE_BY_MIGRATION", "vec"]

INCOME_EDGES = np.array([15_000, 20_000, 25_000, 35_000, 50_000, 75_000])
# Log income shift of a low (-) and a high (+) education level (assumption; with the solved within-source spread
# it gives the CBS deciles, see docs/calibration.md).
_EDUCATION_INCOME = 0.15
# Urbanisation class per municipality (rows in municipality order); assumption after CBS 2023.
_URBANISATION = np.array(
    [
        [0.92, 0.08, 0.00, 0.00, 0.00],
        [0.85, 0.13, 0.02, 0.00, 0.00],
        [0.88, 0.12, 0.00, 0.00, 0.00],
        [0.70, 0.25, 0.05, 0.00, 0.00],
        [0.25, 0.40, 0.25, 0.08, 0.02],
        [0.05, 0.30, 0.35, 0.20, 0.10],
        [0.01, 0.10, 0.30, 0.34, 0.25],
        [0.00, 0.02, 0.18, 0.35, 0.45],
    ]
)
# Migration background of the main earner in the four largest cities (assumption after CBS 2023).
_MIGRATION_G4 = np.array([[0.45, 0.17, 0.38], [0.48, 0.10, 0.42], [0.48, 0.12, 0.40], [0.64, 0.10, 0.26]])
# Age band of the main earner per household type (assumption after CBS household statistics); the log-odds of the
# oldest band are shifted by a solved constant so that the persons aged 67+ meet targets.aged_67_plus_share.
_AGE_BAND = np.array(
    [
        [0.10, 0.17, 0.11, 0.13, 0.19, 0.30],
        [0.02, 0.12, 0.06, 0.10, 0.28, 0.42],
        [0.005, 0.14, 0.35, 0.35, 0.145, 0.01],
        [0.01, 0.12, 0.32, 0.38, 0.16, 0.01],
        [0.20, 0.20, 0.15, 0.15, 0.15, 0.15],
    ]
)
_FEMALE_MAIN = np.array([0.52, 0.30, 0.28, 0.82, 0.45])  # assumption
#: Dutch proficiency (fluent, good, moderate, limited) per migration background at proxy strength 1 (assumption).
LANGUAGE_BY_MIGRATION = np.array([[0.97, 0.03, 0.0, 0.0], [0.35, 0.35, 0.20, 0.10], [0.30, 0.30, 0.25, 0.15]])
# Log-odds of poverty per income source (assumption: welfare and students poorest).
_POVERTY_SOURCE = np.array([0.0, 1.0, 2.3, 1.5, 1.1, 0.0, 1.6])
# Log-odds, per income source, of a low income (below the line) WITH a year's savings buffer, which the CBS/SCP/
# Nibud method does not count as poor: self-employed with a weak year, students, pensioners without a full state
# pension; rarely welfare (asset test) or benefits (assumption).
_LOW_INCOME_SOURCE = np.array([0.0, 2.0, -3.0, -1.0, -1.0, 0.7, 2.5])


def vec(values: list[float] | tuple[float, ...]) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


@dataclass
class Ctx:
    """Working state of one block: its generator, scenario, calibrator and the columns built so far."""

    rng: np.random.Generator
    sc: Scenario
    cal: Calibrator
    n: int
    h: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def s(self) -> float:
        """Strength of structural disparities."""
        return self.sc.structural.strength

    @property
    def p(self) -> float:
        """Strength of the proxies."""
        return self.sc.proxies.strength


def _place(c: Ctx) -> None:
    pop = c.sc.population
    c.h["municipality"] = draw_index(c.rng, vec(list(pop.municipality.values())), c.n)
    c.h["urbanisation"] = draw_grouped(c.rng, _URBANISATION, c.h["municipality"])
    c.h["household_type"] = draw_index(c.rng, vec(list(pop.household_type.values())), c.n)


def _migration_table(c: Ctx) -> np.ndarray:
    """Per-municipality migration mix: the four cities as observed, the rest so the nation matches."""
    w = vec(list(c.sc.population.municipality.values()))
    national = vec(list(c.sc.population.migration_background.values()))
    rest = national - w[:4] @ _MIGRATION_G4
    rest = np.clip(rest / max(1e-9, 1.0 - w[:4].sum()), 1e-6, None)
    return np.vstack([_MIGRATION_G4, np.tile(rest / rest.sum(), (4, 1))])


def _main_earner(c: Ctx) -> None:
    h, hht = c.h, c.h["household_type"]

    def solve() -> float:
        persons = float((h["n_adults"] + h["n_children"]).sum())
        return old_age_shift(_AGE_BAND, hht, h["n_adults"], persons, c.sc.targets.aged_67_plus_share)

    shift = float(c.cal.constant("old_age_shift", solve)[0])
    band = draw_grouped(c.rng, band_table(_AGE_BAND, shift), hht)
    lo, hi = AGE_EDGES[band], AGE_EDGES[band + 1]
    u = c.rng.random(c.n)
    u = np.where(band == len(AGE_EDGES) - 2, u**OLDEST_BAND_SKEW, u)  # fewer of the very old
    c.h["age"] = (lo + np.floor(u * (hi - lo))).astype(np.int16)
    c.h["age_band"] = band
    c.h["gender"] = (c.rng.random(c.n) < _FEMALE_MAIN[hht]).astype(np.int8)
    c.h["migration_background"] = draw_grouped(c.rng, _migration_table(c), c.h["municipality"])
    age = c.h["age"]
    p_dis = np.where(age < 45, 0.06, np.where(age < PENSION_AGE, 0.12, 0.22))  # assumption
    c.h["disability"] = c.rng.random(c.n) < p_dis


def _composition(c: Ctx) -> None:
    """Children and adults per household: the size distribution and mean size of the scenario's targets."""
    hht = c.h["household_type"]
    children = c.cal.constant("children", lambda: children_table(c.sc).ravel()).reshape(5, -1)
    c.h["n_children"] = draw_grouped(c.rng, children, hht)
    other = 2 + draw_index(c.rng, OTHER_ADULTS, c.n)
    c.h["n_adults"] = np.select([hht <= 0, hht == 3, hht == 4], [1, 1, other], 2).astype(np.int8)


def language_probs(strength: float, national: np.ndarray) -> np.ndarray:
    """Language-proficiency probabilities per migration background: the pooled mix at strength 0, by group at 1."""
    pooled = national @ LANGUAGE_BY_MIGRATION
    by_group = pooled + strength * (LANGUAGE_BY_MIGRATION - pooled)
    return np.clip(by_group, 0.0, None)


def _skills(c: Ctx) -> None:
    mig, age = c.h["migration_background"], c.h["age"]
    util = np.tile(np.log(vec([0.25, 0.38, 0.37])), (c.n, 1))
    util[:, 0] += c.s * np.select([mig == 2, mig == 1], [0.8, 0.1], 0.0) + 0.9 * (age >= PENSION_AGE)
    util[:, 2] += c.s * np.select([mig == 2, mig == 1], [-0.5, 0.1], 0.0) - 0.4 * (age >= PENSION_AGE)
    util[:, 1] += 0.7 * (age < 25)
    c.h["education_level"] = draw_rows(c.rng, np.exp(util))
    national = vec(list(c.sc.population.migration_background.values()))
    c.h["language_proficiency"] = draw_grouped(c.rng, language_probs(c.p, national), mig)
    shift = vec(list(c.sc.proxies.neighbourhood_shift_sd.values()))
    # Deprivation is higher in the four largest cities; that also ties it to migration, so it scales with the knob.
    z = c.p * (shift[mig] + 0.35 * (c.h["municipality"] < 4)) + c.rng.standard_normal(c.n)
    cuts = c.cal.quantiles("deprivation_cuts", z, (0.2, 0.4, 0.6, 0.8))
    c.h["neighbourhood_deprivation"] = np.searchsorted(cuts, z).astype(np.int8)


def _income_source(c: Ctx) -> None:
    h, n = c.h, c.n
    age, hht, mig = h["age"], h["household_type"], h["migration_background"]
    util = np.zeros((n, 7))
    util[:, 1] = np.log(0.11 / 0.74) + 0.3 * (age >= 45)
    util[:, 2] = (
        np.log(0.019 / 0.74)
        + c.s
        * (
            np.select([hht == 3, hht == 0], [1.3, 0.5], 0.0)
            + np.select([mig == 2, mig == 1], [1.0, 0.4], 0.0)
            + 0.6 * (h["language_proficiency"] == 3)
        )
        + 0.8 * (h["education_level"] == 0)
        + 0.7 * h["disability"]
        + 0.15 * h["neighbourhood_deprivation"]
    )
    util[:, 3] = np.log(0.025 / 0.74) + 0.3 * (h["education_level"] == 0) + c.s * 0.4 * (mig == 2)
    util[:, 4] = np.log(0.03 / 0.74) + 2.5 * h["disability"] + 0.6 * (age >= 45)
    young = (age < 30) & ((hht == 0) | (hht == 4))
    util[:, 6] = np.where(young, np.where(age < 25, np.log(0.6 / 0.4), np.log(0.1 / 0.9)), -np.inf)
    util[:, 5] = -np.inf
    pension = np.tile(np.log(vec([0.045, 0.015, 1e-9, 1e-9, 1e-9, 0.94, 1e-9])), (n, 1))
    util = np.where((age >= PENSION_AGE)[:, None], pension, util)
    h["income_source"] = draw_rows(c.rng, np.exp(util - util.max(axis=1, keepdims=True)))


def source_effects(c: Ctx, table: np.ndarray) -> np.ndarray:
    """Per-source effects with the age-bound sources (state pension, student) scaled by the structural knob.

    Those two sources exist only at some ages, so their effects are disparities by age band; with structural
    strength 0 they equal employment's, and the control scenario keeps age out of poverty and debt risk.
    """
    out = np.array(table, dtype=np.float64)
    out[[5, 6]] *= c.s
    return out


def _effective_type_targets(c: Ctx) -> np.ndarray:
    t = vec(list(c.sc.targets.poverty_by_household_type.values()))
    shares = vec(list(c.sc.population.household_type.values()))
    mean = float(shares @ t)
    return np.clip(mean + c.s * (t - mean), 1e-4, 0.99)


def _poverty(c: Ctx) -> None:
    h = c.h
    mig, age = h["migration_background"], h["age"]
    lp = (
        source_effects(c, _POVERTY_SOURCE)[h["income_source"]]
        + 0.12 * h["neighbourhood_deprivation"]
        + c.s * 0.45 * h["n_children"]
        + c.s
        * (
            np.select([mig == 2, mig == 1], [0.6, 0.3], 0.0)
            + 0.15 * h["gender"]
            + 0.3 * h["disability"]
            + 0.4 * (age < 25)
        )
    )
    b = c.cal.logit_offsets("poverty_by_type", lp, h["household_type"], _effective_type_targets(c))
    h["p_poverty"] = sigmoid(lp + b[h["household_type"]])
    h["poverty"] = c.rng.random(c.n) < h["p_poverty"]


def _low_income(c: Ctx) -> None:
    """Households below the line that are not poor: they hold a savings buffer of a year (see ``_savings``).

    Their share is solved so that all households below the line (poor or buffered) meet
    ``targets.households_below_line`` (CBS: 10% of private households below 17,500 euro standardised in 2022).
    """
    h, t = c.h, c.sc.targets
    lp = _LOW_INCOME_SOURCE[h["income_source"]]
    not_poor = 1.0 - h["p_poverty"]

    def solve() -> float:
        wanted = t.households_below_line - float(h["p_poverty"].mean())
        if wanted <= 0.0:
            raise ScenarioError(
                f"targets.households_below_line = {t.households_below_line} is below the share of poor households "
                f"({float(h['p_poverty'].mean()):.4f}); every poor household is below the line: raise it."
            )
        return bisect(lambda b: float((not_poor * sigmoid(lp + b)).mean()), wanted)

    b = float(c.cal.constant("low_income", solve)[0])
    h["low_income_buffered"] = ~h["poverty"] & (c.rng.random(c.n) < sigmoid(lp + b))


def _income(c: Ctx) -> None:
    h, t = c.h, c.sc.targets
    src, line = h["income_source"], t.poverty_line
    shortfall = np.clip(t.poverty_shortfall_median * np.exp(0.55 * c.rng.standard_normal(c.n)), 0.003, 0.95)
    # Below the line with a buffer: most just below it, a few far below (exponential gap, mean a fifth of the line;
    # assumption), so the density of incomes runs on across the line as in the CBS deciles.
    low_gap = np.minimum(c.rng.exponential(0.2, c.n), 1.0)
    low = h["low_income_buffered"]
    edu = np.select(
        [h["education_level"] == 0, h["education_level"] == 2], [-_EDUCATION_INCOME, _EDUCATION_INCOME], 0.0
    )
    struct = c.s * (-0.08 * h["gender"] - 0.10 * (h["migration_background"] == 2))
    parts = IncomeParts(
        line=line,
        fixed=h["poverty"] | low,
        fixed_income=line * (1.0 - np.where(low, low_gap, shortfall)),
        log_median=np.log(INCOME_MEDIAN[src]) + edu + struct,
        sd=INCOME_SD[src],
        u=c.rng.random(c.n),
    )

    def solve() -> np.ndarray:
        return solve_spread(parts, t.income_median, t.income_p90_p10, t.income_gini)

    level, spread, tail = c.cal.constant("income_shape", solve)
    income = np.round(parts.income(level, spread, tail))
    income = np.where(parts.fixed, income, np.maximum(income, np.ceil(line)))  # never below the line by rounding
    h["disposable_income"] = np.clip(income, 0.0, INCOME_CAP)
    h["income_band"] = np.searchsorted(INCOME_EDGES, h["disposable_income"], side="right").astype(np.int8)


def _housing(c: Ctx) -> None:
    h = c.h
    g4 = h["municipality"] < 4
    rel = np.log(np.maximum(h["disposable_income"], 1_000.0) / 30_000.0)
    util = np.zeros((c.n, 3))
    util[:, 0] = -1.6 * rel + 0.5 * h["poverty"] + 0.3 * g4 + 0.4 * (h["income_source"] == 2)
    util[:, 1] = 1.2 * (h["age"] < 35) + 0.7 * g4
    util[:, 2] = 0.8 * (h["age"] >= 45) + 0.6 * (h["n_adults"] >= 2)
    target = vec(list(c.sc.population.housing.values()))
    b = c.cal.multinomial_intercepts("housing", util, target)
    h["housing"] = draw_rows(c.rng, np.exp(util + b - (util + b).max(axis=1, keepdims=True)))
    size = h["n_adults"] + h["n_children"]
    base = vec([620.0, 1_050.0, 950.0])[h["housing"]] + 140.0 * size + 0.06 * h["disposable_income"] / 12
    h["fixed_costs"] = np.clip(np.round(base * np.exp(0.18 * c.rng.standard_normal(c.n)), 2), 0.0, 6_000.0)


def household_stages(c: Ctx) -> None:
    """Run every household stage in order."""
    stages = (_place, _composition, _main_earner, _skills, _income_source, _poverty, _low_income, _income, _housing)
    for stage in stages:
        stage(c)


assert codes("income_source")[5] == "state_pension" and codes("household_type")[3] == "single_parent"
