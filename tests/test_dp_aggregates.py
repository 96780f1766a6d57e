"""The DP aggregates against their exact pandas reference at epsilon = 1e6, and bad input.

At epsilon = 1e6 the noise is tiny but not zero: each comparison allows 25 noise standard deviations (reported by
the engine itself; P(fail) < 1e-10 per cell) plus float rounding. Counts are compared exactly. The reference
applies the same household bound (first k rows per household in source order) in pandas.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_dp_tables import (
    AGE_BANDS,
    GENDERS,
    HOUSEHOLD_TYPES,
    REGIONS,
    K,
    engine_policy,
    households_frame,
    households_schema,
    persons_frame,
    persons_schema,
    truncate,
)

from sandbox._private.shared.errors import QueryError
from sandbox._private.shared.policy import LimitRules, Policy
from sandbox._private.shared.query import AggregateQuery
from sandbox._private.vault.dp.engine import DPEngine
from sandbox._private.vault.dp.tabledata import TableData

EPS = 1e6


@pytest.fixture(scope="module")
def hh() -> tuple[pd.DataFrame, TableData]:
    frame = households_frame()
    return frame, TableData.from_frame(frame, households_schema())


@pytest.fixture(scope="module")
def persons() -> tuple[pd.DataFrame, TableData]:
    frame = persons_frame()
    return frame, TableData.from_frame(frame, persons_schema())


ENGINE = DPEngine(engine_policy())
KEYS = {"household_type": HOUSEHOLD_TYPES, "region": REGIONS, "gender": GENDERS, "age_band": AGE_BANDS}


def _reference(frame: pd.DataFrame, by: tuple[str, ...], column: str | None, fn: Any) -> dict[tuple[Any, ...], Any]:
    """Exact value per group over every public key combination (empty groups included)."""
    out = {}
    for key in itertools.product(*(KEYS[b] for b in by)):
        mask = np.ones(len(frame), dtype=bool)
        for b, v in zip(by, key, strict=True):
            mask &= (frame[b] == v).to_numpy()
        sub = frame[mask]
        out[key] = fn(sub if column is None else sub[column].dropna())
    return out


def _rows(answer: Any, by: tuple[str, ...]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(r[b] for b in by): r for r in answer.public["rows"]}


def _close(dp: float, exact: float, noise_scale: float) -> bool:
    return abs(dp - exact) <= 25 * noise_scale + 1e-9 * max(1.0, abs(exact))


REFERENCES = {
    "count": len,
    "sum": lambda s: float(s.sum()),
    "mean": lambda s: float(s.mean()) if len(s) else math.nan,
    "variance": lambda s: float(s.var(ddof=0)) if len(s) else math.nan,
}


@pytest.mark.parametrize("kind", ["count", "sum", "mean", "variance"])
@pytest.mark.parametrize("by", [(), ("household_type",), ("household_type", "region")])
def test_household_aggregates_equal_pandas_at_huge_epsilon(hh: Any, kind: str, by: tuple[str, ...]) -> None:
    frame, table = hh
    column = None if kind == "count" else "income"
    answer = ENGINE.answer(AggregateQuery("households", kind, column, epsilon=EPS, by=by), table)
    expected = _reference(frame, by, column, REFERENCES[kind])
    rows = _rows(answer, by)
    assert set(rows) == set(expected)  # every public group appears, the empty region "west" too
    assert answer.public["n_groups"] == len(expected)
    for key, exact in expected.items():
        row = rows[key]
        if kind == "count":
            assert row["value"] == exact
        elif not math.isnan(exact):
            assert _close(row["value"], exact, row["noise_scale"]), (key, row, exact)


@pytest.mark.parametrize("kind", ["count", "sum", "mean", "variance"])
@pytest.mark.parametrize("by", [(), ("gender", "age_band")])
def test_person_aggregates_equal_pandas_after_the_household_bound(persons: Any, kind: str, by: tuple[str, ...]) -> None:
    frame, table = persons
    bounded = truncate(frame, K)
    assert len(bounded) < len(frame)  # the bound bites on this table
    column = None if kind == "count" else "income"
    answer = ENGINE.answer(AggregateQuery("persons", kind, column, epsilon=EPS, by=by), table)
    rows = _rows(answer, by)
    for key, exact in _reference(bounded, by, column, REFERENCES[kind]).items():
        row = rows[key]
        if kind == "count":
            assert row["value"] == exact
        elif not math.isnan(exact):
            assert _close(row["value"], exact, row["noise_scale"]), (key, row, exact)
    assert answer.public["rows_per_unit"] == K
    assert answer.private["rows_truncated"] == len(frame) - len(bounded)


def test_sensitivities_follow_the_schema_bounds_and_the_household_bound(persons: Any, hh: Any) -> None:
    p = ENGINE.answer(AggregateQuery("persons", "sum", "income", epsilon=1.0, by=("gender",)), persons[1])
    assert p.public["sensitivity"] == {"sum": K * 150_000}  # k * max(|-5000|, |150000|)
    assert p.public["mechanisms"][0]["scale"] == pytest.approx(K * 150_000)
    m = ENGINE.answer(AggregateQuery("households", "mean", "income", epsilon=2.0), hh[1])
    assert m.public["sensitivity"] == {"count": 1.0, "sum_centred": 100_000.0}
    assert [n["epsilon"] for n in m.public["mechanisms"]] == [1.0, 1.0]
    c = ENGINE.answer(AggregateQuery("households", "count", epsilon=0.5), hh[1])
    assert c.public["mechanisms"][0]["mechanism"] == "DiscreteLaplace(grid=2^0)"  # integers: grid step 1
    # P(|two-sided geometric| > t) <= 5% at the reported ci95, and > 5% one step below
    alpha = math.exp(-0.5)
    t = c.public["rows"][0]["ci95"]
    assert 2 * alpha ** (t + 1) / (1 + alpha) <= 0.05 < 2 * alpha**t / (1 + alpha)


def test_where_filters_and_count_of_a_nullable_column(hh: Any) -> None:
    frame, table = hh
    q = AggregateQuery(
        "households", "count", "savings", epsilon=EPS, by=("region",), where={"household_type": ["single", "other"]}
    )
    rows = _rows(ENGINE.answer(q, table), ("region",))
    sub = frame[frame.household_type.isin(["single", "other"])]
    for region in REGIONS:
        assert rows[(region,)]["value"] == int(sub[sub.region == region].savings.notna().sum())
    b = AggregateQuery("households", "sum", "n_children", epsilon=EPS, where={"arrears": [True]})
    got = ENGINE.answer(b, table).public["rows"][0]
    assert _close(got["value"], float(frame[frame.arrears].n_children.sum()), got["noise_scale"])


def test_bool_column_mean_is_a_share(hh: Any) -> None:
    frame, table = hh
    row = ENGINE.answer(AggregateQuery("households", "mean", "debt", epsilon=EPS), table).public["rows"][0]
    assert _close(row["value"], float(frame.debt.mean()), row["noise_scale"])


@pytest.mark.parametrize("q", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("table_name", ["households", "persons"])
def test_quantile_at_huge_epsilon_lies_between_the_order_statistics_around_rank_qn(
    hh: Any, persons: Any, q: float, table_name: str
) -> None:
    frame, table = hh if table_name == "households" else persons
    by = ("household_type",) if table_name == "households" else ("gender",)
    ref = frame if table_name == "households" else truncate(frame, K)
    lo = table.schema.column("income").bounds[0]
    rows = _rows(ENGINE.answer(AggregateQuery(table_name, "quantile", "income", epsilon=EPS, by=by, q=q), table), by)
    for key, values in _reference(ref, by, "income", lambda s: np.sort(s.to_numpy())).items():
        n = values.size
        if n == 0:
            continue
        x = np.concatenate(([lo], values))  # x[i] is the i-th order statistic, x[0] the lower bound
        low, high = x[math.floor(q * n)], x[min(math.ceil(q * n) + 1, n)]
        pandas_q = float(pd.Series(values).quantile(q))
        assert low <= pandas_q <= high
        assert low - 1e-6 <= rows[key]["value"] <= high + 1e-6, (key, rows[key], low, high)


def test_histogram_equals_numpy_histogram_over_schema_bounds(persons: Any) -> None:
    frame, table = persons
    bounded = truncate(frame, K)
    answer = ENGINE.answer(AggregateQuery("persons", "histogram", "income", epsilon=EPS, bins=8, by=("gender",)), table)
    edges = np.linspace(-5_000, 150_000, 9)
    for g in GENDERS:
        expected, _ = np.histogram(bounded[bounded.gender == g].income, bins=edges)
        got = [r for r in answer.public["rows"] if r["gender"] == g]
        assert [r["value"] for r in got] == expected.tolist()
        assert [r["bin_lower"] for r in got] == pytest.approx(edges[:-1].tolist())


def test_private_part_holds_true_household_counts_and_top_contributions(persons: Any) -> None:
    frame, table = persons
    bounded = truncate(frame, K)
    answer = ENGINE.answer(AggregateQuery("persons", "sum", "income", epsilon=1.0, by=("gender",)), table)
    cells = {tuple(c["key"]): c for c in answer.private["cells"]}
    per_hh = bounded.groupby(["gender", "household_id"]).income.sum().abs()
    for g in GENDERS[:2]:
        contrib = per_hh.loc[g].sort_values(ascending=False).to_numpy()
        cell = cells[(g,)]
        assert cell["units"] == bounded[bounded.gender == g].household_id.nunique()
        assert cell["rows"] == int((bounded.gender == g).sum())
        assert cell["top1"] == pytest.approx(contrib[0]) and cell["top2"] == pytest.approx(contrib[1])
        assert cell["abs_total"] == pytest.approx(contrib.sum())
        assert cell["total"] == pytest.approx(bounded[bounded.gender == g].income.sum())
    assert cells[("x",)] == {
        "key": ["x"],
        "rows": 0,
        "units": 0,
        "total": 0.0,
        "abs_total": 0.0,
        "top1": 0.0,
        "top2": 0.0,
    }
    assert "cells" not in answer.public and "units" not in str(answer.public["rows"])


def test_gaussian_mechanism_when_delta_is_positive(hh: Any) -> None:
    engine = DPEngine(engine_policy())
    frame, table = hh
    answer = engine.answer(AggregateQuery("households", "count", epsilon=50.0, delta=1e-8, by=("region",)), table)
    noise = answer.public["mechanisms"][0]
    assert noise["mechanism"] == "DiscreteGaussian(grid=2^0)" and noise["delta"] == 1e-8
    assert 0 < noise["scale"] < 0.2
    rows = _rows(answer, ("region",))
    for region in REGIONS:
        assert abs(rows[(region,)]["value"] - int((frame.region == region).sum())) <= 25 * noise["scale"] + 0.5


def test_cost_touches_no_data_and_matches_the_query(hh: Any) -> None:
    q = AggregateQuery("households", "mean", "income", epsilon=0.3, by=("region",))
    cost = DPEngine(Policy()).cost(q, households_schema())
    assert (cost.epsilon, cost.delta) == (0.3, 0.0)


# -- bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "match"),
    [
        (dict(kind="sum", column="wealth"), r"no column 'wealth'; its columns are: household_id, household_type"),
        (dict(kind="mean", column="household_type"), r"mean needs a numeric column.*use one of: income"),
        (dict(kind="sum", column="household_id"), r"id column and is never aggregated"),
        (dict(kind="count", by=("income",)), r"Cannot group or filter by 'income': it is float.*household_type"),
        (dict(kind="count", where={"region": ["east"]}), r"values \['east'\] that are not categories of 'region'"),
        (dict(kind="count", epsilon=2.5), r"epsilon=2.5 exceeds the policy's per-query maximum of 2"),
        (dict(kind="count", delta=1e-3), r"delta=0.001 exceeds the policy's per-query maximum of 1e-07"),
    ],
)
def test_queries_the_schema_or_policy_forbid_raise_query_error(hh: Any, query: dict[str, Any], match: str) -> None:
    args = {"epsilon": 1.0, **query}
    q = AggregateQuery("households", args.pop("kind"), args.pop("column", None), **args)
    with pytest.raises(QueryError, match=match):
        DPEngine(Policy()).answer(q, hh[1])
    with pytest.raises(QueryError, match=match):
        DPEngine(Policy()).cost(q, households_schema())


def test_too_many_groups_is_refused_before_touching_data(hh: Any) -> None:
    policy = Policy(limits=LimitRules(max_groups=10))
    q = AggregateQuery("households", "count", epsilon=1.0, by=("household_type", "region"))
    with pytest.raises(QueryError, match=r"15 cells .* more than the policy's limits.max_groups of 10"):
        DPEngine(policy).answer(q, hh[1])
    h = AggregateQuery("households", "histogram", "income", epsilon=1.0, bins=3, by=("region",))
    assert DPEngine(policy).answer(h, hh[1]).public["n_groups"] == 9


def test_a_person_unit_table_is_refused_under_a_household_policy() -> None:
    schema = persons_schema()
    person_unit = type(schema)(
        **{**{f: getattr(schema, f) for f in ("name", "label_nl", "label_en", "columns")}},
        privacy_unit="person",
        unit_column="person_id",
        max_rows_per_unit=1,
    )
    q = AggregateQuery("persons", "count", epsilon=1.0)
    with pytest.raises(QueryError, match=r"policy protects households.*privacy_unit 'household'"):
        DPEngine(Policy()).cost(q, person_unit)


@pytest.mark.parametrize("kind", ["count", "sum", "mean", "variance", "quantile", "histogram"])
def test_both_parts_are_strict_json(persons: Any, kind: str) -> None:
    q = AggregateQuery(
        "persons",
        kind,
        None if kind == "count" else "income",
        epsilon=1.0,
        by=("gender",),
        q=0.5 if kind == "quantile" else None,
        bins=4 if kind == "histogram" else None,
    )
    answer = ENGINE.answer(q, persons[1])
    public = json.loads(json.dumps(answer.public, allow_nan=False))
    json.dumps(answer.private, allow_nan=False)
    assert public["query"] == q.to_dict()
    assert AggregateQuery.from_dict(public["query"]) == q
    assert len(public["rows"]) == public["n_groups"] == (12 if kind == "histogram" else 3)


@pytest.mark.parametrize("kind", ["count", "sum", "mean", "variance", "quantile", "histogram"])
def test_an_empty_table_still_answers_every_public_group(persons: Any, kind: str) -> None:
    empty = TableData.from_frame(persons[0].iloc[:0], persons_schema())
    q = AggregateQuery(
        "persons",
        kind,
        None if kind == "count" else "income",
        epsilon=EPS,
        by=("gender", "age_band"),
        q=0.5 if kind == "quantile" else None,
        bins=2 if kind == "histogram" else None,
    )
    answer = ENGINE.answer(q, empty)
    assert len(answer.public["rows"]) == 9 * (2 if kind == "histogram" else 1)
    assert all(c["units"] == 0 and c["rows"] == 0 for c in answer.private["cells"])
    lo, hi = persons_schema().column("income").bounds
    for row in answer.public["rows"]:
        if kind in ("count", "histogram"):
            assert row["value"] == 0
        elif kind in ("mean", "quantile"):
            assert lo <= row["value"] <= hi  # no data: a value inside the public bounds, never an error
