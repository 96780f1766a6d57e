"""The persons table: every member of every household, consistent with the household row.

Position 0 is the main earner (copied from the household row), then the partner (couples), other adults
("other" households) and children. ``person_id = household_id * 10 + position``, so ids never depend on other
blocks. Children are younger than the main earner by at least 18 years and never the main earner.
"""

from __future__ import annotations

import numpy as np

from ._calibrate import draw_grouped, draw_index
from ._demography import OTHER_ADULT_SPAN, PARTNER_AGE_SD, adult_child_share
from ._households import PENSION_AGE, Ctx, language_probs, vec

__all__ = ["person_rows"]

ROLE_MAIN, ROLE_PARTNER, ROLE_CHILD, ROLE_OTHER = 0, 1, 2, 3
# Main earner's employment status per income source (employed, self_employed, unemployed, unable_to_work,
# retired, student, minor, other_inactive codes).
_EMPLOYMENT_OF_SOURCE = np.array([0, 1, 2, 2, 3, 4, 5], dtype=np.int8)
# Employment status of other adults below pension age, by role (assumption).
_EMPLOYMENT_PARTNER = vec([0.66, 0.07, 0.04, 0.05, 0.0, 0.02, 0.0, 0.16])
_EMPLOYMENT_ADULT_CHILD = vec([0.40, 0.01, 0.05, 0.01, 0.0, 0.53, 0.0, 0.0])
_EMPLOYMENT_OTHER = vec([0.50, 0.04, 0.08, 0.04, 0.0, 0.30, 0.0, 0.04])


def _layout(c: Ctx) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(household row, position, role) of every person."""
    h = c.h
    size = (h["n_adults"] + h["n_children"]).astype(np.int64)
    row = np.repeat(np.arange(c.n), size)
    starts = np.cumsum(size) - size
    pos = np.arange(row.size) - starts[row]
    n_adults = h["n_adults"][row]
    couple = np.isin(h["household_type"][row], (1, 2))
    role = np.select(
        [pos == 0, (pos == 1) & couple, pos < n_adults], [ROLE_MAIN, ROLE_PARTNER, ROLE_OTHER], ROLE_CHILD
    ).astype(np.int8)
    return row, pos, role


def _ages(c: Ctx, row: np.ndarray, role: np.ndarray) -> np.ndarray:
    """Ages by role; a child is a minor or, when the main earner is 36 or over, an adult child living at home.

    The share of adult children among those who can be adults is solved on the reference sample so that the
    minors among all persons meet ``targets.minors_share``. Minors are 0 to 17 uniformly (bounded by the main
    earner's age minus 18), adult children 18 to 29, more often young (assumption).
    """
    m = row.size
    main_age = c.h["age"][row].astype(np.int64)
    partner = np.clip(main_age + np.round(PARTNER_AGE_SD * c.rng.standard_normal(m)), 18, 100)
    other = 18 + np.floor(c.rng.random(m) * np.maximum(main_age - 18 + OTHER_ADULT_SPAN, 1))
    max_child = np.clip(main_age - 18, 0, 29)
    child = role == ROLE_CHILD
    can_be_adult = child & (max_child >= 18)

    def solve() -> float:
        return adult_child_share(int(child.sum()), int(can_be_adult.sum()), m, c.sc.targets.minors_share)

    share = float(c.cal.constant("adult_child_share", solve)[0])
    adult = can_be_adult & (c.rng.random(m) < share)
    u = c.rng.random(m)
    minor_age = np.floor(u * (np.minimum(max_child, 17) + 1))
    adult_age = 18 + np.floor(u**2 * (max_child - 17))
    kid = np.where(adult, adult_age, minor_age)
    age = np.select([role == ROLE_MAIN, role == ROLE_PARTNER, role == ROLE_OTHER], [main_age, partner, other], kid)
    return np.clip(age, 0, 105).astype(np.int16)


def _employment(c: Ctx, row: np.ndarray, role: np.ndarray, age: np.ndarray) -> np.ndarray:
    # One draw per person from the table of its role (partner, child, other adult); main earner and age rules win.
    table = np.vstack([_EMPLOYMENT_PARTNER, _EMPLOYMENT_PARTNER, _EMPLOYMENT_ADULT_CHILD, _EMPLOYMENT_OTHER])
    drawn = draw_grouped(c.rng, table, role)
    status = np.select(
        [role == ROLE_MAIN, age >= PENSION_AGE, age < 18],
        [_EMPLOYMENT_OF_SOURCE[c.h["income_source"][row]], 4, 6],
        drawn,
    )
    return np.where((status == 5) & (age >= 30) & (role != ROLE_MAIN), 0, status).astype(np.int8)


def _education(c: Ctx, row: np.ndarray, role: np.ndarray, age: np.ndarray, mig: np.ndarray) -> np.ndarray:
    util = np.tile(np.log(vec([0.25, 0.38, 0.37])), (3, 1))
    util[2, 0] += c.s * 0.8  # buiten_europa
    drawn = draw_grouped(c.rng, np.exp(util), mig)
    edu = np.select([role == ROLE_MAIN, age < 15, age < 18], [c.h["education_level"][row], 3, 0], drawn)
    return edu.astype(np.int8)


def _migration(c: Ctx, row: np.ndarray, role: np.ndarray, national: np.ndarray) -> np.ndarray:
    """Give most members the main earner's background (children 92%, adults 85%; assumption), else national mix."""
    keep = (role == ROLE_MAIN) | (c.rng.random(row.size) < np.where(role == ROLE_CHILD, 0.92, 0.85))
    return np.where(keep, c.h["migration_background"][row], draw_index(c.rng, national, row.size)).astype(np.int8)


def _gender(c: Ctx, row: np.ndarray, role: np.ndarray) -> np.ndarray:
    main = c.h["gender"][row]
    partner = np.where(c.rng.random(row.size) < 0.95, 1 - main, main)  # mostly mixed-gender couples (assumption)
    others = (c.rng.random(row.size) < 0.5).astype(np.int8)
    return np.select([role == ROLE_MAIN, role == ROLE_PARTNER], [main, partner], others).astype(np.int8)


def _language(c: Ctx, row: np.ndarray, role: np.ndarray, age: np.ndarray, mig: np.ndarray) -> np.ndarray:
    """Adults by migration background (as strong as the proxy knob); minors mostly fluent (schooled here)."""
    national = vec(list(c.sc.population.migration_background.values()))
    adult = draw_grouped(c.rng, language_probs(c.p, national), mig)
    minor = np.where(c.rng.random(row.size) < 0.9, 0, 1)
    language = np.select([role == ROLE_MAIN, age < 18], [c.h["language_proficiency"][row], minor], adult)
    return language.astype(np.int8)


def _disability(c: Ctx, row: np.ndarray, role: np.ndarray, age: np.ndarray) -> np.ndarray:
    p = np.where(age < 18, 0.03, np.where(age < 45, 0.06, np.where(age < PENSION_AGE, 0.12, 0.22)))  # assumption
    return np.where(role == ROLE_MAIN, c.h["disability"][row], c.rng.random(row.size) < p).astype(bool)


def person_rows(c: Ctx, household_id: np.ndarray) -> dict[str, np.ndarray]:
    """Build the persons of the block's households, in household order then position."""
    row, pos, role = _layout(c)
    age = _ages(c, row, role)
    mig = _migration(c, row, role, vec(list(c.sc.population.migration_background.values())))
    return {
        "person_id": household_id[row] * 10 + pos,
        "household_id": household_id[row],
        "role": role,
        "gender": _gender(c, row, role),
        "age": age,
        "migration_background": mig,
        "education_level": _education(c, row, role, age, mig),
        "employment_status": _employment(c, row, role, age),
        "language_proficiency": _language(c, row, role, age, mig),
        "disability": _disability(c, row, role, age),
    }
