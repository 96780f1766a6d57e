"""Synthetic Dutch population for the analysis sandbox: households, persons, arrears signals and outcomes.

A population of private households, calibrated to published CBS, NJi, NVVK and Divosa figures
(``CALIBRATION.md`` and ``docs/calibration.md``: household sizes, ages, income inequality), with bias mechanisms
(structural disparities, label bias, proxies) set by a validated scenario file. The same seed and scenario give
byte-identical Parquet output whatever the number of workers or the chunk size.
"""

from __future__ import annotations

from ._categories import CATEGORIES, CATEGORY_LABELS
from ._population import Population, generate_population, population_is_current, write_population
from ._scenario import SHIPPED_SCENARIOS, Scenario, load_scenario
from ._schemas import ground_truth_schema, population_schemas
from ._summary import calibration_summary

__all__ = [
    "Scenario",
    "load_scenario",
    "SHIPPED_SCENARIOS",
    "Population",
    "generate_population",
    "write_population",
    "population_is_current",
    "calibration_summary",
    "population_schemas",
    "ground_truth_schema",
    "CATEGORIES",
    "CATEGORY_LABELS",
]
