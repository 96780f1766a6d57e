"""Statistical neighbouring-dataset tests: the engine's outputs on two tables that differ by one household.

For epsilon-DP, every event S must satisfy ``P[M(D) in S] <= e^epsilon * P[M(D') in S]`` (and vice versa). We run
the engine ``RUNS`` times on each table and check the events ``{output <= t}`` for thresholds ``t`` at the 2nd to
98th percentiles of the pooled outputs, allowing an absolute tolerance ``TOL`` for sampling error. The added
household is the worst case (value at the public bound, or more rows than the household bound), so the bound is
tight in the tails: at the tightest event the standard error of ``p_D - e^eps p_D'`` is at most 0.013, so
``TOL = 0.06`` is more than 4.5 standard errors. A mechanism calibrated to half the sensitivity fails the same check
(the negative control below), so the test can fail.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from test_dp_tables import (
    engine_policy,
    households_frame,
    households_schema,
    persons_frame,
    persons_schema,
)

from sandbox._private.shared.query import AggregateQuery
from sandbox._private.vault.dp.engine import DPEngine
from sandbox._private.vault.dp.mechanisms import noisy_vector
from sandbox._private.vault.dp.tabledata import TableData

RUNS = 5_000
TOL = 0.06
EPS = 1.0
ENGINE = DPEngine(engine_policy(eps_max=2.0))


def worst_violation(a: np.ndarray, b: np.ndarray, eps: float) -> float:
    """Largest ``P_a(S) - e^eps P_b(S) `` (either direction) over the events ``{x <= t}`` and ``{x > t}``."""
    pooled = np.concatenate([a, b])
    worst = -1.0
    for t in np.unique(np.quantile(pooled, np.linspace(0.02, 0.98, 25))):
        for x, y in ((a, b), (b, a)):
            for px, py in ((np.mean(x <= t), np.mean(y <= t)), (np.mean(x > t), np.mean(y > t))):
                worst = max(worst, float(px - math.exp(eps) * py))
    return worst


def _runs(query: AggregateQuery, table: TableData) -> np.ndarray:
    return np.array([ENGINE.answer(query, table).public["rows"][0]["value"] for _ in range(RUNS)], dtype=float)


def _households_pair() -> tuple[TableData, TableData]:
    base = households_frame(200, seed=11)
    extra = base.iloc[[0]].assign(household_id=99_999_999, income=200_000.0)  # at the public upper bound
    schema = households_schema()
    return TableData.from_frame(base, schema), TableData.from_frame(pd.concat([base, extra]), schema)


@pytest.fixture(scope="module")
def pair() -> tuple[TableData, TableData]:
    return _households_pair()


@pytest.mark.parametrize("kind", ["count", "sum", "mean"])
def test_household_level_outputs_are_epsilon_indistinguishable(pair: tuple[TableData, TableData], kind: str) -> None:
    query = AggregateQuery("households", kind, None if kind == "count" else "income", epsilon=EPS)
    d, d_plus = pair
    a, b = _runs(query, d), _runs(query, d_plus)
    assert a.mean() != pytest.approx(b.mean(), rel=1e-6)  # the two tables really differ in this output
    assert worst_violation(a, b, EPS) <= TOL


@pytest.mark.slow
def test_person_level_sum_bounds_a_large_household() -> None:
    """A household with 6 persons at the upper bound moves the sum by only k * upper (k = 3)."""
    base = persons_frame(100, seed=12)
    big = pd.DataFrame(
        {
            "household_id": 99_999_999,
            "person_id": np.arange(90_000_000, 90_000_006),
            "gender": "female",
            "age_band": "18-64",
            "income": 150_000.0,
            "employed": True,
        }
    )
    schema = persons_schema()
    d, d_plus = TableData.from_frame(base, schema), TableData.from_frame(pd.concat([base, big]), schema)
    query = AggregateQuery("persons", "sum", "income", epsilon=EPS)
    assert worst_violation(_runs(query, d), _runs(query, d_plus), EPS) <= TOL


@pytest.mark.parametrize(
    ("factor", "passes"),
    [(1.0, True), (0.5, False)],
)
def test_the_check_detects_a_mechanism_with_too_little_noise(factor: float, passes: bool) -> None:
    """Negative control: Laplace noise for half the true shift of 1,000 must fail the same check."""
    shift = 1_000.0

    def draw(value: float) -> Callable[[], float]:
        return lambda: float(
            noisy_vector(np.array([value]), epsilon=EPS, delta=0.0, sensitivity=shift * factor, integer=False)[0][0]
        )

    a = np.array([draw(0.0)() for _ in range(RUNS)])
    b = np.array([draw(shift)() for _ in range(RUNS)])
    assert (worst_violation(a, b, EPS) <= TOL) is passes
