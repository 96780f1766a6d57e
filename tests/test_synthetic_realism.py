"""The realism solvers of the generator: household sizes, the normal functions, inequality measures, bad targets.

The population-level figures (sizes, ages, income distribution on 200,000 households) are in
tests/test_synthetic_calibration.py; here are the pieces, each against a reference: scipy for the normal
functions, the definition for the Gini coefficient, exact arithmetic for the children tables.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.special import ndtr, ndtri

from sandbox import ScenarioError
from synthetic import Scenario, generate_population, load_scenario
from synthetic._demography import MAX_CHILDREN, OTHER_ADULTS, children_table, expected_old_share, old_age_shift
from synthetic._income import gini, p90_p10
from synthetic._normal import normal_cdf, normal_ppf
from synthetic._scenario import HOUSEHOLD_SIZES


def _scenario(**targets: Any) -> Scenario:
    base = load_scenario("default")
    return base.replace(targets={**base.targets.model_dump(), **targets})


def test_normal_cdf_and_inverse_match_scipy() -> None:
    x = np.linspace(-8.0, 8.0, 20_001)
    assert np.abs(normal_cdf(x) - ndtr(x)).max() < 2e-7
    p = np.concatenate(
        [np.logspace(-300, -1, 3_000), np.linspace(0.01, 0.99, 3_000), 1.0 - np.logspace(-15, -1, 3_000)]
    )
    assert np.abs(normal_ppf(p) / ndtri(p) - 1.0).max() < 2e-9
    assert normal_ppf(np.array([0.5]))[0] == 0.0


def test_gini_is_half_the_relative_mean_absolute_difference() -> None:
    rng = np.random.Generator(np.random.SFC64(7))
    x = rng.lognormal(10.0, 0.6, 700)
    brute = np.abs(x[:, None] - x[None, :]).sum() / (2.0 * x.size**2 * x.mean())
    assert gini(x) == pytest.approx(brute, rel=1e-12, abs=0)
    assert gini(np.full(50, 3.0)) == pytest.approx(0.0, abs=1e-15)
    assert np.isnan(gini(np.zeros(3))) and np.isnan(gini(np.array([])))
    # Exponential incomes have Gini 1/2; 10^6 draws have a standard error near 0.0004, so 0.003 is > 7 sigma.
    assert gini(rng.exponential(1.0, 1_000_000)) == pytest.approx(0.5, abs=0.003)


def test_p90_p10_is_the_ratio_of_the_deciles() -> None:
    x = np.arange(1.0, 1_002.0)  # 1..1001: P10 = 101, P90 = 901 exactly
    assert p90_p10(x) == pytest.approx(901.0 / 101.0, rel=1e-12)
    assert np.isnan(p90_p10(np.array([])))


def _implied(sc: Scenario, table: np.ndarray) -> tuple[np.ndarray, float]:
    """Shares of households with 1..4 and 5+ persons, and the mean size, implied by type shares and children."""
    w = np.array(list(sc.population.household_type.values()))
    dist = np.zeros(16)
    kids = np.arange(MAX_CHILDREN + 1)
    for t, adults in enumerate((1, 2, 2, 1)):
        np.add.at(dist, adults + kids, w[t] * table[t])
    np.add.at(dist, np.arange(2, 5), w[4] * OTHER_ADULTS)
    return np.array([*dist[1:5], dist[5:].sum()]), float(dist @ np.arange(16))


@pytest.mark.parametrize(
    "changes",
    [
        {},
        # CBS 37975 on 1 January 2020: 7,997,800 households, 2,610,601 / 938,515 / 961,314 / 407,592 multi-person
        # of 2, 3, 4, 5+ persons; 17.15M persons in private households (mean 2.14).
        {"household_size": {"2": 0.5308, "3": 0.1908, "4": 0.1955, "5_plus": 0.0829}, "persons_per_household": 2.14},
    ],
)
def test_children_tables_reproduce_the_size_targets_exactly(changes: dict[str, Any]) -> None:
    sc = _scenario(**changes)
    table = children_table(sc)
    assert table.shape == (5, MAX_CHILDREN + 1) and (table >= 0).all()
    np.testing.assert_allclose(table.sum(axis=1), 1.0, atol=1e-12)
    assert (table[[0, 1, 4], 1:] == 0).all() and (table[[2, 3], 0] == 0).all()  # who has children, by definition
    sizes, mean = _implied(sc, table)
    single = sc.population.household_type["single"]
    wanted = [single, *((1 - single) * np.array([sc.targets.household_size[k] for k in HOUSEHOLD_SIZES]))]
    np.testing.assert_allclose(sizes, wanted, atol=1e-12)
    assert mean == pytest.approx(sc.targets.persons_per_household, abs=1e-12)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"household_size": {"2": 0.90, "3": 0.05, "4": 0.03, "5_plus": 0.02}}, r"single parents with one child"),
        ({"persons_per_household": 3.5}, r"couples with 4 or 5 children"),
    ],
)
def test_impossible_size_targets_name_the_fields_and_fix(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=rf"targets\.household_size and targets\.persons_per_household.*{message}"):
        generate_population(100, seed=1, scenario=_scenario(**changes))


def test_household_size_shares_are_validated() -> None:
    with pytest.raises(ScenarioError, match=r"targets\.household_size.*shares sum to 1\.1"):
        _scenario(household_size={"2": 0.6, "3": 0.2, "4": 0.2, "5_plus": 0.1})
    with pytest.raises(ScenarioError, match=r"targets\.household_size.*unknown category \['6'\]"):
        _scenario(household_size={"2": 0.5, "3": 0.2, "4": 0.2, "5_plus": 0.1, "6": 0.0})


def test_unreachable_income_targets_name_them() -> None:
    with pytest.raises(ScenarioError, match=r"income_gini = 0\.6 cannot all be reached.*closest is median"):
        generate_population(100, seed=1, scenario=_scenario(income_gini=0.6))


def test_fewer_below_the_line_than_poor_is_refused() -> None:
    with pytest.raises(ScenarioError, match=r"households_below_line = 0\.02 is below the share of poor households"):
        generate_population(100, seed=1, scenario=_scenario(households_below_line=0.02))


def test_old_age_shift_reaches_its_target_and_is_monotone() -> None:
    table = np.full((5, 6), 1.0 / 6.0)
    hht = np.repeat(np.arange(5), 1_000)
    adults = np.where(hht == 4, 3, np.where(np.isin(hht, (1, 2)), 2, 1))
    persons = float(adults.sum() + 1_000)  # as if 1,000 children
    shifts = [old_age_shift(table, hht, adults, persons, t) for t in (0.10, 0.15, 0.20)]
    assert shifts[0] < shifts[1] < shifts[2]
    for shift, t in zip(shifts, (0.10, 0.15, 0.20), strict=True):
        assert expected_old_share(shift, table, hht, adults, persons) == pytest.approx(t, abs=1e-8)
    assert old_age_shift(table, hht, adults, persons, 0.99) == pytest.approx(10.0, abs=1e-6)  # clipped at the bound
