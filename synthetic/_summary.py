"""The calibration table: every CALIBRATION.md figure the generator targets, beside what it produced.

Tolerances are absolute and stated per figure; they are wide enough for sampling noise at 200,000 households
and tight enough that a broken stage fails (see tests/test_synthetic_calibration.py). Sources and years of every
target are in docs/calibration.md. All figures are of private households and the persons in them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from sandbox import NotFoundError

from ._income import gini, p90_p10
from ._population import Population
from ._scenario import HOUSEHOLD_SIZES, Scenario

__all__ = ["calibration_summary"]


@dataclass(frozen=True)
class _Data:
    households: pd.DataFrame
    person_age: np.ndarray
    person_household: np.ndarray
    signals_creditor: pd.Series
    scenario: Scenario


def _load_dir(path: Path) -> _Data:
    try:
        scenario = Scenario.from_mapping(json.loads((path / "scenario.json").read_text(encoding="utf-8")))
        cols = [
            "household_id",
            "municipality",
            "household_type",
            "n_adults",
            "n_children",
            "disposable_income",
            "poverty",
            "registered_problematic_debt",
            "applied_debt_assistance",
            "total_debt",
            "n_creditors",
        ]
        hh = pq.read_table(path / "households.parquet", columns=cols).to_pandas()
        persons = pq.read_table(path / "persons.parquet", columns=["household_id", "age"])
        signals = pq.read_table(path / "signals.parquet", columns=["creditor_type"]).to_pandas()
    except FileNotFoundError as exc:
        raise NotFoundError(
            f"{str(path)!r} is not a written population ({exc.filename} missing): "
            "give the --out directory of `sandbox synth`."
        ) from None
    return _Data(hh, persons["age"].to_numpy(), persons["household_id"].to_numpy(), signals["creditor_type"], scenario)


def _from_population(pop: Population) -> _Data:
    return _Data(
        pop.households,
        pop.persons["age"].to_numpy(),
        pop.persons["household_id"].to_numpy(),
        pop.signals["creditor_type"],
        pop.scenario,
    )


def _mean(values: np.ndarray) -> float:
    """Mean of ``values``, NaN (without a warning) when there are none."""
    return float(values.mean()) if values.size else float("nan")


def _person_poverty(d: _Data) -> tuple[float, float]:
    hh = d.households
    ids = hh["household_id"].to_numpy()
    poor = np.zeros(int(ids.max()) + 1, dtype=bool)
    poor[ids] = hh["poverty"].to_numpy()
    person_poor = poor[d.person_household]
    minors = d.person_age < 18
    return _mean(person_poor), _mean(person_poor[minors])


def _demography_rows(d: _Data) -> list[tuple[str, float, float, float]]:
    """Tabulate household sizes (CBS 37975) and ages of persons (minors, 67+) in private households."""
    t, hh = d.scenario.targets, d.households
    size = (hh["n_adults"].to_numpy() + hh["n_children"].to_numpy()).astype(np.int64)
    single = d.scenario.population.household_type["single"]
    rows = [
        ("persons per private household", t.persons_per_household, _mean(size), 0.03),
        ("one-person households", single, _mean(size == 1), 0.005),
    ]
    for key, size_mask in zip(HOUSEHOLD_SIZES, (size == 2, size == 3, size == 4, size >= 5), strict=True):
        label = "5 or more" if key == "5_plus" else key
        rows.append((f"households of {label} persons", (1.0 - single) * t.household_size[key], _mean(size_mask), 0.005))
    rows.append(("persons aged 0-17", t.minors_share, _mean(d.person_age < 18), 0.005))
    rows.append(("persons aged 67 or over", t.aged_67_plus_share, _mean(d.person_age >= 67), 0.005))
    return rows


def _income_rows(d: _Data) -> list[tuple[str, float, float, float]]:
    """Tabulate the distribution of standardised disposable income over households (83934NED, 83739NED)."""
    t = d.scenario.targets
    income = d.households["disposable_income"].to_numpy()
    median = float(np.median(income)) if income.size else float("nan")
    return [
        ("median standardised income (euro)", t.income_median, median, 0.02 * t.income_median),
        (
            "households below the poverty line, poor or not",
            t.households_below_line,
            _mean(income < t.poverty_line),
            0.006,
        ),
        ("P90/P10 of standardised income", t.income_p90_p10, p90_p10(income), 0.10),
        ("Gini of standardised income", t.income_gini, gini(income), 0.01),
    ]


def _rows(d: _Data) -> list[tuple[str, float, float, float]]:
    t, hh = d.scenario.targets, d.households
    persons = len(d.person_age)
    htype = hh["household_type"].astype(str)
    poor = hh["poverty"].to_numpy()
    line = t.poverty_line
    shortfall = 1.0 - hh["disposable_income"].to_numpy()[poor] / line
    reg = hh["registered_problematic_debt"].to_numpy()
    applied = hh["applied_debt_assistance"].to_numpy()
    person_poor, minor_poor = _person_poverty(d)
    shares = d.signals_creditor.astype(str).value_counts(normalize=True)
    signals_rate = len(d.signals_creditor) / max(persons, 1) / 12.0 * 1000.0
    rows = [
        *_demography_rows(d),
        *_income_rows(d),
        ("persons in poverty", 0.031, person_poor, 0.006),
        ("minors in poverty", 0.036, minor_poor, 0.008),
        ("households in poverty", t.poverty_households, float(poor.mean()), 0.004),
        (
            "single-parent households in poverty",
            t.poverty_by_household_type["single_parent"],
            _mean(poor[(htype == "single_parent").to_numpy()]),
            0.012,
        ),
        (
            "couples with children in poverty",
            t.poverty_by_household_type["couple_with_children"],
            _mean(poor[(htype == "couple_with_children").to_numpy()]),
            0.005,
        ),
        (
            "median income shortfall of the poor",
            t.poverty_shortfall_median,
            float(np.median(shortfall)) if shortfall.size else float("nan"),
            0.02,
        ),
        ("households with registered problematic debt", t.registered_problematic_debt, float(reg.mean()), 0.004),
        (
            "same, Rotterdam",
            t.registered_problematic_debt_rotterdam,
            _mean(reg[(hh["municipality"].astype(str) == "rotterdam").to_numpy()]),
            0.02,
        ),
        (
            "debt-assistance applications per year (scaled to NL)",
            float(t.debt_assistance_applications_per_year),
            float(applied.mean()) * t.households_reference,
            0.10 * t.debt_assistance_applications_per_year,
        ),
        (
            "average debt at intake (euro)",
            t.mean_debt_at_intake,
            _mean(hh["total_debt"].to_numpy()[applied]),
            0.10 * t.mean_debt_at_intake,
        ),
        ("creditors at intake", t.mean_creditors_at_intake, _mean(hh["n_creditors"].to_numpy()[applied]), 1.3),
        ("arrears signals per 1,000 residents per month", t.signals_per_1000_residents_per_month, signals_rate, 0.3),
    ]
    for creditor, share in t.signal_shares.items():
        rows.append((f"share of signals: {creditor}", share, float(shares.get(creditor, 0.0)), 0.03))
    return rows


def calibration_summary(population_or_dir: Population | str | Path) -> pd.DataFrame:
    """Tabulate the calibration of a population: target beside produced, with the tolerance of each figure.

    Parameters
    ----------
    population_or_dir : Population, str or Path
        An in-memory population or the directory written by :func:`write_population`.

    Returns
    -------
    pandas.DataFrame
        Columns ``indicator``, ``target``, ``produced``, ``tolerance`` and ``ok`` (``|produced - target| <=
        tolerance``).
    """
    if isinstance(population_or_dir, Population):
        data = _from_population(population_or_dir)
    else:
        data = _load_dir(Path(population_or_dir))
    table = pd.DataFrame(_rows(data), columns=["indicator", "target", "produced", "tolerance"])
    table["ok"] = (table["produced"] - table["target"]).abs() <= table["tolerance"]
    return table
