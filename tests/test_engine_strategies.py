"""The engine's strategies give the same exact statistics: ordered (streaming, in parallel parts) and grouped.

For a household-contiguous many-row table DuckDB answers with the ordered strategy, in parts that start at a
household's first row (here forced to be small, so that a 600-household population has several); the grouped
strategy (per household and cell, as on Spark) is the reference. Every query shape of the conformance test is
compared, at two household bounds (one that bites on persons, one that does not).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from test_engine_conformance import SHAPES, TABLES

import synthetic
from sandbox._private.shared.schema import TableSchema
from sandbox._private.vault.dp import aggregates, tabledata
from sandbox._private.vault.dp.aggregates import Catalog, exact_cells
from sandbox._private.vault.dp.tabledata import TableData


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Catalog, dict[str, TableSchema]]:
    root = synthetic.write_population(tmp_path_factory.mktemp("strat") / "pop", 600, seed=9)
    schemas = {t: TableSchema.load(root / "schema" / f"{t}.json") for t in TABLES}
    saved = tabledata.PART_ROWS
    tabledata.PART_ROWS = 300  # several parts per table
    try:
        tables = {t: TableData.load(root / f"{t}.parquet", schemas[t]) for t in TABLES}
        assert len(tables["persons"].profile.parts) > 1 and tables["persons"].profile.contiguous
    finally:
        tabledata.PART_ROWS = saved
    return Catalog(tables, dict.fromkeys(TABLES, "pop")), schemas


def _stats(query: Any, catalog: Catalog, schemas: dict[str, TableSchema], k: int, grouped: bool) -> Any:
    aggregates.STRATEGY_GROUPED[0] = grouped
    try:
        rs = query.resolve(schemas)
        return exact_cells(query, rs, catalog, min(k, rs.schema.max_rows_per_unit))
    finally:
        aggregates.STRATEGY_GROUPED[0] = False


@pytest.mark.parametrize("k", [3, 8])
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_ordered_and_grouped_strategies_agree(catalog: Any, name: str, k: int) -> None:
    cat, schemas = catalog
    a = _stats(SHAPES[name], cat, schemas, k, grouped=False)
    b = _stats(SHAPES[name], cat, schemas, k, grouped=True)
    assert b.strategy in ("grouped", "unit")
    if name.startswith(("persons bounded", "persons ⨝ households", "children", "signals ⨝", "join with")):
        assert a.strategy.startswith("ordered"), a.strategy
    assert np.array_equal(a.rows, b.rows) and np.array_equal(a.units, b.units), (a.rows, b.rows, a.units, b.units)
    assert (a.rows_in, a.rows_truncated) == (b.rows_in, b.rows_truncated)
    for field in ("total", "centred", "squares", "abs_total", "top1", "top2"):
        x, y = getattr(a, field), getattr(b, field)
        if x is not None:
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-9, err_msg=field)
    if a.values is not None:
        assert all(np.array_equal(u, v) for u, v in zip(a.values, b.values, strict=True))


def test_the_parts_of_a_table_cover_it_and_never_split_a_household(catalog: Any) -> None:
    cat, _ = catalog
    persons = cat.tables["persons"]
    parts = persons.profile.parts
    assert parts[0][0] == 0 and parts[-1][1] == persons.n_rows
    assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
    assert all(a[3] < b[2] for a, b in itertools.pairwise(parts))  # generated files are sorted by household


def _scan(query: Any, catalog: Catalog, schemas: dict[str, TableSchema], k: int) -> Any:
    rs = query.resolve(schemas)
    return aggregates.answer_cells(query, rs, catalog, min(k, rs.schema.max_rows_per_unit))


@pytest.mark.parametrize("whole", [True, False], ids=["dropped rows kept whole", "dropped rows by number"])
@pytest.mark.parametrize("k", [3, 8])
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_the_answer_scan_gives_the_rows_and_sums_of_the_full_statistics(
    catalog: Any, name: str, k: int, whole: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-scan plan of a DP answer (no households per cell) agrees with the grouped strategy's rows and sums."""
    cat, schemas = catalog
    if not whole:
        monkeypatch.setattr(tabledata, "DROPPED_ROWS_MAX", 0)
        for t in cat.tables.values():
            t.runner.forget([t.key])  # measure the dropped rows again, as row numbers
    try:
        a = _scan(SHAPES[name], cat, schemas, k)
        b = _stats(SHAPES[name], cat, schemas, k, grouped=True)
    finally:
        for t in cat.tables.values():
            t.runner.forget([t.key])
    from sandbox._private.vault.dp.sql.compile import scan_table

    rs = SHAPES[name].resolve(schemas)
    if SHAPES[name].kind != "quantile" and scan_table(rs, k)[0]:
        assert a.strategy == "scan" and a.units is None and a.top1 is None
    else:  # two many-row tables (persons ⨝ signals), or a quantile: the full statistics answer
        assert a.units is not None
    assert np.array_equal(a.rows, b.rows), (a.rows, b.rows)
    assert (a.rows_in, a.rows_truncated) == (b.rows_in, b.rows_truncated)
    used = {"sum": ("total",), "mean": ("total", "centred"), "variance": ("total", "centred", "squares")}
    for field in used.get(SHAPES[name].kind, ()):  # the sums the answer of this kind uses
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-9, atol=1e-6, err_msg=field)


def test_the_answer_scan_on_a_table_whose_households_are_not_contiguous(tmp_path: Any) -> None:
    """Shuffled persons (a household's rows apart): the dropped rows are ranked per household, not streamed."""
    import polars as pl

    root = synthetic.write_population(tmp_path / "pop", 400, seed=4)
    schema = TableSchema.load(root / "schema" / "persons.json")
    shuffled = tmp_path / "persons.parquet"
    pl.read_parquet(root / "persons.parquet").sample(fraction=1.0, shuffle=True, seed=3).write_parquet(shuffled)
    table = TableData.load(shuffled, schema)
    assert table.profile.contiguous is False and table.profile.max_rows > 2
    cat = Catalog({"persons": table}, {"persons": "pop"})
    from sandbox._private.shared.query import AggregateQuery

    q = AggregateQuery("persons", "count", epsilon=1.0, by=("migration_background",))
    a = _scan(q, cat, {"persons": schema}, 2)
    b = _stats(q, cat, {"persons": schema}, 2, grouped=True)
    assert a.rows_truncated > 0 and np.array_equal(a.rows, b.rows) and a.rows_in == b.rows_in
    assert a.rows_truncated == b.rows_truncated


def test_the_answer_scan_is_cached_by_its_statement(catalog: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A question asked again (another epsilon) reuses the exact rows and sums; another question never does."""
    from sandbox._private.shared.query import AggregateQuery

    cat, schemas = catalog
    runner = cat.tables["persons"].runner
    ran: list[str] = []
    rows = runner.rows
    monkeypatch.setattr(runner, "rows", lambda sql: ran.append(sql) or rows(sql))
    aggregates.clear_cache()
    a = _scan(AggregateQuery("persons", "count", epsilon=1.0, by=("gender",)), cat, schemas, 3)
    first = len(ran)
    b = _scan(AggregateQuery("persons", "count", epsilon=0.2, by=("gender",)), cat, schemas, 3)
    assert first >= 1 and len(ran) == first  # asked again: no statement ran
    assert np.array_equal(a.rows, b.rows) and a.rows_truncated == b.rows_truncated > 0
    c = _scan(AggregateQuery("persons", "sum", "age", epsilon=1.0, by=("gender",)), cat, schemas, 3)
    assert len(ran) > first and c.units is None and np.array_equal(c.rows, a.rows) and c.total.sum() > 0


def test_the_answer_scan_clips_unless_the_table_was_checked_against_its_bounds(tmp_path: Any) -> None:
    """Values are clipped to the public bounds, except in a table validated against those bounds (same result)."""
    import polars as pl

    from sandbox._private.shared.query import AggregateQuery

    root = synthetic.write_population(tmp_path / "pop", 300, seed=5)
    schema = TableSchema.load(root / "schema" / "persons.json")
    lo, hi = schema.column("age").bounds
    assert lo <= 0 < hi  # precondition: the wild ages below lie above the upper bound
    frame = pl.read_parquet(root / "persons.parquet")
    wild = tmp_path / "wild.parquet"  # ages far outside the schema's bounds (never registrable)
    frame.with_columns((pl.col("age") * 10 + 1000).alias("age")).write_parquet(wild)
    q = AggregateQuery("persons", "sum", "age", epsilon=1.0, by=("gender",))
    rs = q.resolve({"persons": schema})

    def scan(table: TableData) -> Any:
        return aggregates.answer_cells(q, rs, Catalog({"persons": table}, {"persons": "p"}), 3)

    unchecked = TableData.load(wild, schema, validate=False)
    clipped = scan(unchecked)
    np.testing.assert_allclose(clipped.total, clipped.rows * hi)  # every wild age is above the bound: clipped to it
    checked = TableData.load(root / "persons.parquet", schema)  # validated: its ages lie within the bounds
    assert checked.bounded and not unchecked.bounded
    plain = TableData.load(root / "persons.parquet", schema, validate=False)
    aggregates.clear_cache()
    np.testing.assert_allclose(scan(checked).total, scan(plain).total, rtol=1e-12)
