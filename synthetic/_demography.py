"""Demography of private households: the number of children per household type, and the age constants.

The shares of one-person, couple, family, single-parent and other households come from the scenario
(``population.household_type``); the number of persons in the multi-person ones is solved here so that the
population has the size distribution and the mean size of ``targets`` (CBS 37975 and 37620, see
docs/calibration.md). Two age figures are solved in the stages that draw the ages: the share of persons aged 67
or over (through the main earner's age band, :func:`old_age_shift`) and the share of minors (through the share
of adult children living at home, :func:`adult_child_share`). Everything is arithmetic on the scenario or
expected values on the reference sample, so the constants depend on the scenario only.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from sandbox import ScenarioError

from ._calibrate import bisect
from ._normal import normal_cdf
from ._scenario import HOUSEHOLD_SIZES, Scenario

__all__ = [
    "PENSION_AGE",
    "AGE_EDGES",
    "OLDEST_BAND_SKEW",
    "PARTNER_AGE_SD",
    "OTHER_ADULT_SPAN",
    "MAX_CHILDREN",
    "children_table",
    "old_age_shift",
    "expected_old_share",
    "adult_child_share",
    "band_table",
]

PENSION_AGE = 67
AGE_EDGES = np.array([18, 25, 35, 45, 55, PENSION_AGE, 96])
#: The main earner's age in the oldest band is ``67 + floor(u ** OLDEST_BAND_SKEW * 29)``: fewer of the very old.
OLDEST_BAND_SKEW = 1.6
#: A partner's age is the main earner's plus ``round(PARTNER_AGE_SD * z)`` (assumption).
PARTNER_AGE_SD = 3.5
#: An other adult member is 18 to ``main earner's age + OTHER_ADULT_SPAN - 1`` years old, uniformly (assumption).
OTHER_ADULT_SPAN = 10
MAX_CHILDREN = 5
_COUPLE, _COUPLE_WITH_CHILDREN, _SINGLE_PARENT, _OTHER = 1, 2, 3, 4
# Adults (2, 3, 4) of "other" multi-person households; by the CBS definition these have no children (assumption).
OTHER_ADULTS = np.array([0.75, 0.18, 0.07])
# Single parents with 2, 3, 4, 5 children, as shares of those with 2 or more (assumption).
_SINGLE_PARENT_TAIL = np.array([0.70, 0.22, 0.06, 0.02])
# Couples with 3, 4, 5 children are (1 - w, 0.75 w, 0.25 w) of those with 3 or more; w is solved from the mean.
_LARGE_SPLIT = np.array([0.75, 0.25])


def _infeasible(what: str, value: float) -> ScenarioError:
    return ScenarioError(
        f"targets.household_size and targets.persons_per_household cannot be met with population.household_type: "
        f"{what} would be {value:.4f}, outside 0 to 1. Give size shares and a mean size that the household types "
        "can produce (the shipped ones are CBS 2024, see synthetic/scenarios/default.yaml)."
    )


def _share(what: str, value: float) -> float:
    if not -1e-9 <= value <= 1.0 + 1e-9:
        raise _infeasible(what, value)
    return float(min(max(value, 0.0), 1.0))


def children_table(sc: Scenario) -> np.ndarray:
    """Children (0..5) per household type that give the scenario's household size distribution and mean size.

    One-person households and couples have no children and "other" households none by definition; the share of
    single parents with one child is solved from the share of two-person households, and the shares of couples
    with one, two and three or more children from the three-, four- and five-plus-person shares. The split of
    couples with three or more children into 3, 4 and 5 is solved from the mean size.

    Returns
    -------
    numpy.ndarray
        Shape ``(5, 6)``: row = household type, column = number of children.

    Raises
    ------
    ScenarioError
        When the size targets cannot be met with the household-type shares.
    """
    w = np.array(list(sc.population.household_type.values()))
    t = sc.targets
    size = (1.0 - w[0]) * np.array([t.household_size[k] for k in HOUSEHOLD_SIZES])  # shares of all households
    table = np.zeros((5, MAX_CHILDREN + 1))
    table[0, 0] = table[_COUPLE, 0] = table[_OTHER, 0] = 1.0
    other = w[_OTHER] * OTHER_ADULTS  # "other" households of 2, 3, 4 persons
    sp, cwc = max(w[_SINGLE_PARENT], 1e-12), max(w[_COUPLE_WITH_CHILDREN], 1e-12)
    one = _share("the share of single parents with one child", (size[0] - w[_COUPLE] - other[0]) / sp)
    table[_SINGLE_PARENT, 1] = one
    table[_SINGLE_PARENT, 2:] = (1.0 - one) * _SINGLE_PARENT_TAIL
    c1 = _share("the share of couples with one child", (size[1] - w[_SINGLE_PARENT] * table[3, 2] - other[1]) / cwc)
    c2 = _share("the share of couples with two children", (size[2] - w[_SINGLE_PARENT] * table[3, 3] - other[2]) / cwc)
    c3 = _share("the share of couples with three or more children", 1.0 - c1 - c2)
    table[_COUPLE_WITH_CHILDREN, 1:3] = (c1, c2)
    # Persons per household without the couples' 4th and 5th child, then the share w that gives the mean.
    sizes = np.arange(MAX_CHILDREN + 1)
    adults = np.array([1.0, 2.0, 2.0, 1.0, float(OTHER_ADULTS @ np.arange(2, 5))])
    table[_COUPLE_WITH_CHILDREN, 3] = c3
    base = float(w @ (adults + table @ sizes))
    extra = c3 * float(_LARGE_SPLIT @ np.array([1.0, 2.0]))  # persons added per unit of w, per family
    split = _share(
        "the share of couples with 4 or 5 children among those with 3 or more",
        (t.persons_per_household - base) / max(w[_COUPLE_WITH_CHILDREN] * extra, 1e-12),
    )
    table[_COUPLE_WITH_CHILDREN, 3:] = c3 * np.array([1.0 - split, *(split * _LARGE_SPLIT)])
    return table


def band_table(table: np.ndarray, shift: float) -> np.ndarray:
    """Return the age-band table with the log-odds of the oldest band (67+) shifted by ``shift``, normalised."""
    out = np.array(table, dtype=np.float64)
    out[:, -1] *= np.exp(shift)
    return out / out.sum(axis=1, keepdims=True)


def _band_ages(band: int) -> tuple[np.ndarray, np.ndarray]:
    """Ages of a main earner in ``band`` and their probabilities (as the main-earner stage draws them)."""
    lo, hi = int(AGE_EDGES[band]), int(AGE_EDGES[band + 1])
    k = np.arange(hi - lo + 1) / (hi - lo)
    cum = k ** (1.0 / OLDEST_BAND_SKEW) if band == len(AGE_EDGES) - 2 else k
    return np.arange(lo, hi).astype(np.float64), np.diff(cum)


def _old_members_per_band() -> tuple[np.ndarray, np.ndarray]:
    """Per age band of the main earner: P(a partner is 67+) and P(an other adult member is 67+)."""
    partner, other = [], []
    for band in range(len(AGE_EDGES) - 1):
        age, p = _band_ages(band)
        partner.append(p @ normal_cdf((age - (PENSION_AGE - 0.5)) / PARTNER_AGE_SD))
        span = np.maximum(age - 18 + OTHER_ADULT_SPAN, 1.0)
        other.append(p @ (np.maximum(span - (PENSION_AGE - 18), 0.0) / span))
    return np.array(partner), np.array(other)


def _expected_old(shift: float, table: np.ndarray, hht: np.ndarray, per_band: np.ndarray, persons: float) -> float:
    return float((band_table(table, shift)[hht] * per_band).sum()) / persons


def _old_per_band(hht: np.ndarray, n_adults: np.ndarray) -> np.ndarray:
    """Per household and age band of its main earner: the expected number of its members aged 67+.

    The main earner (oldest band), a partner (couples) and other adult members ("other" households), with the age
    rules of the persons stage; children are never 67+.
    """
    partner, other = _old_members_per_band()
    oldest = np.zeros(len(AGE_EDGES) - 1)
    oldest[-1] = 1.0
    couple = np.isin(hht, (_COUPLE, _COUPLE_WITH_CHILDREN)).astype(np.float64)
    others = np.where(hht == _OTHER, n_adults.astype(np.float64) - 1.0, 0.0)
    return oldest + couple[:, None] * partner + others[:, None] * other


def expected_old_share(shift: float, table: np.ndarray, hht: np.ndarray, n_adults: np.ndarray, persons: float) -> float:
    """Return the expected share of persons aged 67+ when the oldest band's log-odds are shifted by ``shift``."""
    return _expected_old(shift, table, hht, _old_per_band(hht, n_adults), persons)


def old_age_shift(table: np.ndarray, hht: np.ndarray, n_adults: np.ndarray, persons: float, target: float) -> float:
    """Shift of the oldest band's log-odds so that the expected share of persons aged 67+ equals ``target``."""
    f = partial(_expected_old, table=table, hht=hht, per_band=_old_per_band(hht, n_adults), persons=persons)
    return bisect(f, target, -10.0, 10.0)


def adult_child_share(children: int, eligible: int, persons: int, target: float) -> float:
    """Share of the children old enough to be adults (parent 36+) who are adults, for ``target`` minors.

    Minors are the children who are not adults: ``children - share * eligible = target * persons``; the share
    is clipped to 0..1 (the summary shows the miss when the composition cannot reach the target).
    """
    if eligible <= 0:
        return 0.0
    return float(np.clip((children - target * persons) / eligible, 0.0, 1.0))
