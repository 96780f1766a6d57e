"""Neighbouring datasets for a join: D, and D plus one household that appears on both sides of the join.

The added household is in ``households`` (in poverty, income at the public upper bound) and has 7 persons in
``persons``, more than the household bound k = 3: in ``persons ⨝ households`` it adds k rows, each carrying its
household's income. Outputs of the engine on D and D' must satisfy ``P[M(D) in S] <= e^eps P[M(D') in S]`` for the
events ``{x <= t}`` and ``{x > t}`` (the harness of ``test_dp_neighbours``: RUNS draws per table, tolerance TOL,
more than 4.5 standard errors). The negative control calibrates the same shift as if the household added one row
(sensitivity M instead of k * M): the check must fail, so it can.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_dp_neighbours import EPS, RUNS, TOL, worst_violation
from test_dp_tables import engine_policy

import sandbox as sb
from sandbox._private.shared.plan import Join
from sandbox._private.shared.query import AggregateQuery
from sandbox._private.shared.schema import Column, TableSchema
from sandbox._private.vault.dp.engine import Catalog, DPEngine
from sandbox._private.vault.dp.mechanisms import noisy_vector
from sandbox._private.vault.dp.tabledata import TableData

ENGINE = DPEngine(engine_policy(eps_max=2.0))  # k = 3 rows per household
K = 3
UPPER = 200_000.0


def _c(name: str, kind: str, **kw: object) -> Column:
    return Column(name=name, kind=kind, label_nl=name, label_en=name, **kw)  # type: ignore[arg-type]


HH_COLUMNS = (
    _c("household_id", "id", lower=1, upper=10_000),
    _c("poverty", "bool"),
    _c("income", "float", lower=0, upper=UPPER),
)
P_COLUMNS = (
    _c("person_id", "id", lower=1, upper=100_000),
    _c("household_id", "id", lower=1, upper=10_000),
    _c("age", "int", lower=0, upper=105),
)
HOUSEHOLDS = TableSchema("households", "h", "h", "household", "household_id", 1, HH_COLUMNS)
PERSONS = TableSchema("persons", "p", "p", "household", "household_id", 7, P_COLUMNS)


def _frames(seed: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n = 150
    hh = pd.DataFrame(
        {
            "household_id": np.arange(1, n + 1),
            "poverty": rng.random(n) < 0.2,
            "income": np.round(rng.uniform(0, 80_000, n), 2),
        }
    )
    sizes = rng.integers(1, 4, n)
    pid = np.repeat(hh.household_id.to_numpy(), sizes)
    persons = pd.DataFrame(
        {"person_id": np.arange(1, pid.size + 1), "household_id": pid, "age": rng.integers(0, 90, pid.size)}
    )
    return hh, persons


@pytest.fixture(scope="module")
def neighbours() -> tuple[Catalog, Catalog]:
    hh, persons = _frames()
    extra_hh = pd.DataFrame({"household_id": [9_999], "poverty": [True], "income": [UPPER]})
    extra_p = pd.DataFrame({"person_id": np.arange(90_000, 90_007), "household_id": 9_999, "age": 30})

    def catalog(h: pd.DataFrame, p: pd.DataFrame) -> Catalog:
        tables = {"households": TableData.from_frame(h, HOUSEHOLDS), "persons": TableData.from_frame(p, PERSONS)}
        return Catalog(tables, dict.fromkeys(tables, "pop"))

    return catalog(hh, persons), catalog(pd.concat([hh, extra_hh]), pd.concat([persons, extra_p]))


def _runs(query: AggregateQuery, catalog: Catalog) -> np.ndarray:
    return np.array([ENGINE.answer(query, catalog).public["rows"][0]["value"] for _ in range(RUNS)], dtype=float)


JOINED = (Join("households"),)
QUERIES = {
    "count": AggregateQuery("persons", "count", epsilon=EPS, where=sb.col("poverty"), joins=JOINED),
    "sum": AggregateQuery("persons", "sum", "income", epsilon=EPS, joins=JOINED),
    "mean": AggregateQuery("persons", "mean", "income", epsilon=EPS, where=sb.col("age") >= 18, joins=JOINED),
}


@pytest.mark.parametrize("kind", sorted(QUERIES))
def test_a_household_on_both_sides_of_a_join_is_hidden(neighbours: tuple[Catalog, Catalog], kind: str) -> None:
    d, d_plus = neighbours
    query = QUERIES[kind]
    first = ENGINE.answer(query, d_plus)
    assert first.public["rows_per_unit"] == K and first.private["rows_truncated"] == 7 - K
    a, b = _runs(query, d), _runs(query, d_plus)
    assert a.mean() != pytest.approx(b.mean(), rel=1e-6)  # the two datasets really differ in this output
    assert worst_violation(a, b, EPS) <= TOL


def test_the_join_sensitivity_counts_every_row_the_household_adds(neighbours: tuple[Catalog, Catalog]) -> None:
    """Negative control: the shift of the sum (k rows at the upper bound) noised as if it were one row fails."""
    d, d_plus = neighbours
    q = QUERIES["sum"]
    exact = [float(ENGINE.answer(q, c).private["cells"][0]["total"]) for c in (d, d_plus)]
    assert exact[1] - exact[0] == pytest.approx(K * UPPER)
    draws = [
        np.array(
            [
                noisy_vector(np.array([x]), epsilon=EPS, delta=0.0, sensitivity=UPPER, integer=False)[0][0]
                for _ in range(RUNS)
            ]
        )
        for x in exact
    ]
    assert worst_violation(draws[0], draws[1], EPS) > TOL
    assert ENGINE.answer(q, d).public["sensitivity"] == {"sum": K * UPPER}
