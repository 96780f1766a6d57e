"""AggregateQuery: validation, JSON round trip, and the canonical key (trivial rewrites collide, real ones differ)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_dp_tables import HOUSEHOLD_TYPES, REGIONS, households_schema

from sandbox._private.shared.errors import QueryError
from sandbox._private.shared.expr import And
from sandbox._private.shared.query import AggregateQuery

SCHEMA = households_schema()
CATEGORICAL = {"household_type": HOUSEHOLD_TYPES, "region": REGIONS, "arrears": (False, True), "debt": (False, True)}


@st.composite
def queries(draw: Any) -> AggregateQuery:
    kind = draw(st.sampled_from(["count", "sum", "mean", "variance", "quantile", "histogram"]))
    column = (
        draw(st.sampled_from([None, "savings"])) if kind == "count" else draw(st.sampled_from(["income", "n_children"]))
    )
    by = draw(st.lists(st.sampled_from(sorted(CATEGORICAL)), unique=True, max_size=3))
    where_cols = draw(st.lists(st.sampled_from(sorted(CATEGORICAL)), unique=True, max_size=2))
    where = {c: draw(st.lists(st.sampled_from(CATEGORICAL[c]), min_size=1, max_size=4)) for c in where_cols}
    return AggregateQuery(
        "households",
        kind,
        column,
        epsilon=draw(st.floats(1e-3, 2.0)),
        by=tuple(by),
        delta=draw(st.sampled_from([0.0, 1e-8])) if kind != "quantile" else 0.0,
        q=draw(st.floats(0.01, 0.99)) if kind == "quantile" else None,
        bins=draw(st.integers(1, 50)) if kind == "histogram" else None,
        where=where,
    )


def _pairs(q: AggregateQuery) -> list[tuple[str, tuple[Any, ...]]]:
    """The value filters of a query built from ``where={column: [values]}``."""
    if q.where is None:
        return []
    parts = q.where.args if isinstance(q.where, And) else (q.where,)
    return [(p.column, tuple(p.values)) for p in parts]  # type: ignore[attr-defined]


@st.composite
def rewrites(draw: Any, q: AggregateQuery) -> AggregateQuery:
    """A trivially equivalent rewrite: shuffled group-by and filters, duplicated filter values, int epsilon..."""
    by = draw(st.permutations(q.by))
    where = [(c, tuple(draw(st.permutations(v + v[:1])))) for c, v in _pairs(q)]
    where = draw(st.permutations(where))
    extra = draw(st.sampled_from([None, *sorted(c for c in CATEGORICAL if c not in dict(_pairs(q)))]))
    if extra is not None:  # a filter that lists every category changes nothing
        where = [*where, (extra, tuple(reversed(CATEGORICAL[extra])))]
    eps = int(q.epsilon) if q.epsilon == int(q.epsilon) else q.epsilon
    return AggregateQuery(
        q.dataset, q.kind, q.column, epsilon=eps, by=tuple(by), delta=q.delta, q=q.q, bins=q.bins, where=tuple(where)
    )


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_trivial_rewrites_have_the_same_canonical_key(data: Any) -> None:
    q = data.draw(queries())
    r = data.draw(rewrites(q))
    assert r.canonical_key(SCHEMA) == q.canonical_key(SCHEMA)


@settings(max_examples=150, deadline=None)
@given(queries(), queries())
def test_different_queries_have_different_keys(a: AggregateQuery, b: AggregateQuery) -> None:
    same = a.normalised(SCHEMA) == b.normalised(SCHEMA)
    assert (a.canonical_key(SCHEMA) == b.canonical_key(SCHEMA)) == same


@pytest.mark.parametrize(
    "change",
    [
        {"epsilon": 0.1000001},
        {"delta": 1e-9},
        {"by": ("region",)},
        {"where": {"region": ["north"]}},
        {"column": "n_children"},
        {"kind": "sum"},
        {"dataset": "households_v2"},
    ],
)
def test_real_differences_change_the_key(change: dict[str, Any]) -> None:
    base = {"dataset": "households", "kind": "mean", "column": "income", "epsilon": 0.1, "by": ("household_type",)}
    a = AggregateQuery(**base)  # type: ignore[arg-type]
    b = AggregateQuery(**{**base, **change})  # type: ignore[arg-type]
    assert a.canonical_key(SCHEMA) != b.canonical_key(SCHEMA)


def test_count_of_a_non_nullable_column_is_count_of_rows_but_not_for_a_nullable_one() -> None:
    rows = AggregateQuery("households", "count", epsilon=0.5)
    assert AggregateQuery("households", "count", "income", epsilon=0.5).canonical_key(SCHEMA) == rows.canonical_key(
        SCHEMA
    )
    assert AggregateQuery("households", "count", "savings", epsilon=0.5).canonical_key(SCHEMA) != rows.canonical_key(
        SCHEMA
    )


@settings(max_examples=100, deadline=None)
@given(queries())
def test_json_round_trip(q: AggregateQuery) -> None:
    text = json.dumps(q.to_dict())
    back = AggregateQuery.from_dict(json.loads(text))
    assert back == q
    assert back.canonical_key() == q.canonical_key()


@pytest.mark.parametrize("eps", [0, 0.0, -1.0, math.nan, math.inf, -math.inf, "1", None, True])
def test_invalid_epsilon_is_refused_with_the_fix(eps: Any) -> None:
    with pytest.raises(QueryError, match=r"epsilon must be (finite and greater than 0|a number).*(0\.1)"):
        AggregateQuery("households", "count", epsilon=eps)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(kind="median", column="income"), r"Unknown aggregate 'median'; use one of count, sum"),
        (dict(kind="sum"), r"sum needs a column"),
        (dict(kind="quantile", column="income"), r"q strictly between 0 and 1 \(median: q=0.5\), got q=None"),
        (dict(kind="quantile", column="income", q=1.0), r"got q=1.0"),
        (dict(kind="mean", column="income", q=0.5), r"q is only for quantile queries"),
        (dict(kind="histogram", column="income"), r"histogram needs bins, a whole number from 1 to 1000"),
        (dict(kind="histogram", column="income", bins=0), r"got bins=0"),
        (dict(kind="count", bins=3), r"bins is only for histogram"),
        (dict(kind="count", by=("region", "region")), r"by lists a column twice"),
        (dict(kind="count", by=("Region",)), r"'Region' is not a valid name"),
        (dict(kind="count", where={"region": []}), r"lists no values"),
        (dict(kind="count", where={"region": "north"}), r"must be a list of allowed values"),
        (dict(kind="count", where={"region": [1]}), r"category names or true/false"),
        (dict(kind="count", delta=1.0), r"delta must be in \[0, 1\)"),
        (dict(kind="quantile", column="income", q=0.5, delta=1e-9), r"set delta=0"),
    ],
)
def test_malformed_queries_raise_query_error(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(QueryError, match=match):
        AggregateQuery("households", epsilon=0.1, **kwargs)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"dataset": "h", "kind": "count", "epsilon": 1, "limit": 3}, r"unknown keys \['limit'\]"),
        ({"dataset": "h", "kind": "count", "epsilon": 1, "random_state": 3}, r"unknown keys \['random_state'\]"),
        ({"dataset": "h", "kind": "count"}, r"missing \['epsilon'\]"),
        ({"dataset": "h", "kind": "count", "epsilon": 1, "by": "region"}, r"by must be a list"),
        ([1, 2], r"must be a JSON object"),
    ],
)
def test_from_dict_refuses_malformed_json(data: Any, match: str) -> None:
    with pytest.raises(QueryError, match=match):
        AggregateQuery.from_dict(data)


def test_query_is_frozen_and_hashable() -> None:
    q = AggregateQuery("households", "count", epsilon=0.1, by=("region",))
    with pytest.raises(AttributeError):
        q.epsilon = 5.0  # type: ignore[misc]
    assert len({q, AggregateQuery("households", "count", epsilon=0.1, by=["region"])}) == 1  # type: ignore[arg-type]
