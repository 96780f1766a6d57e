"""Exact per-cell statistics of a query on a protected table or linked relation: the non-private half of the engine.

:func:`exact_cells` compiles the query (:mod:`.sql.compile`) and runs it on the tables' engine (DuckDB in process,
or Spark), reading the registered files in place. It returns, per output cell: the rows and distinct households
after the household bound and the filter, the sums the aggregate needs (the clipped values, centred on the middle
of their public bounds for means and variances), and for magnitude tables (sum, mean, variance) the total of
absolute household contributions and the two largest, which the release gate's dominance and p-ratio rules need.

:func:`answer_cells` computes only what a DP answer needs (rows and sums per cell) in one scan, leaving out the
rows beyond the household bound by their row numbers (found once per table: :meth:`TableData.dropped`); the
vault uses it for every question and :func:`exact_cells` when an answer is put in a release request.

Cells are the product of the group-by columns' public keys (schema order, row-major, as :func:`itertools.product`),
times the histogram bins; every cell exists whether or not a row falls in it. The household bound keeps the first
``k`` rows of each household in file order (in a join: in the order of the base table, then of each joined table),
which depends on that household's rows only, and applies before the filter.

:class:`Catalog` is the set of tables a query may read: those of one population, by name.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import numpy as np

from sandbox._private.shared.errors import QueryError
from sandbox._private.shared.plan import RelationSchema
from sandbox._private.shared.query import AggregateQuery
from sandbox._private.shared.schema import TableSchema

from .sql.compile import (
    EXCLUDED,
    TRUNCATED,
    CellSQL,
    compile_cells,
    compile_scan,
    compile_values,
    magnitude,
    ordered_table,
    scan_table,
)
from .tabledata import TableData

__all__ = [
    "Catalog",
    "CellStats",
    "exact_cells",
    "answer_cells",
    "cell_keys",
    "bin_edges",
    "UnitStats",
    "clear_cache",
    "RecentCache",
]
_V = TypeVar("_V")


@dataclass(frozen=True)
class Catalog:
    """The tables a query may read, by name, and the population each belongs to.

    A join or a per-household aggregate may only read tables of the base table's population (the vault knows
    which; an analyst's refusal then depends on the registration, never on the rows).
    """

    tables: Mapping[str, TableData]
    populations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, table: TableData, name: str | None = None) -> Catalog:
        """Return a catalog of one table (under ``name``, default the schema's name)."""
        n = name or table.schema.name
        return cls({n: table}, {n: n})

    def schemas(self) -> dict[str, TableSchema]:
        return {n: t.schema for n, t in self.tables.items()}

    def population(self, name: str) -> str:
        return self.populations.get(name, name)

    def check_population(self, query_tables: tuple[str, ...]) -> None:
        """Refuse a query that reads a table of another population than its base table's."""
        if not query_tables:
            return
        base = query_tables[0]
        for t in query_tables[1:]:
            if t in self.tables and self.population(t) != self.population(base):
                raise QueryError(
                    f"{t!r} belongs to population {self.population(t)!r}, but {base!r} to {self.population(base)!r}: "
                    "a query links only the tables of one population (one household is in all of them). Join "
                    f"{base!r} with a table registered from its own population."
                )

    def engine_of(self, names: tuple[str, ...]) -> str:
        engines = {self.tables[n].engine for n in names}
        if len(engines) != 1:
            raise QueryError(
                f"The tables {list(names)} are registered on different engines ({sorted(engines)}); a query "
                "reads tables of one engine. Register them on the same engine."
            )
        return engines.pop()


@dataclass(frozen=True)
class CellStats:
    """Exact per-cell facts of one query (private: never sent to the client).

    Attributes
    ----------
    rows, units : ndarray of int64
        Rows and distinct households per cell (after the household bound and the filter); ``units`` is None
        when only the answer's statistics were computed (:func:`answer_cells`).
    total, centred, squares : ndarray of float64
        Per cell: sum of the clipped values, sum of ``x - mid`` and sum of ``(x - mid)**2 - r**2/2``
        (zeros for a count; ``mid``, ``r``: middle and half-width of the public bounds).
    abs_total, top1, top2 : ndarray of float64 or None
        For sum, mean and variance: total of absolute household contributions, and the largest and second-largest.
    values : list of ndarray or None
        For a quantile: every counted row's clipped value, sorted, per cell.
    rows_in, rows_truncated : int
        Rows of the relation, and rows the household bound dropped.
    """

    rows: np.ndarray
    units: np.ndarray | None
    total: np.ndarray
    centred: np.ndarray
    squares: np.ndarray
    abs_total: np.ndarray | None
    top1: np.ndarray | None
    top2: np.ndarray | None
    rows_in: int
    rows_truncated: int
    values: list[np.ndarray] | None = None
    strategy: str = ""

    @property
    def rows_used(self) -> int:
        return int(self.rows.sum())


#: The name the release gate and earlier code used for these facts.
UnitStats = CellStats


def bin_edges(bounds: tuple[float, float], bins: int) -> np.ndarray:
    """``bins + 1`` equal-width edges over the public bounds."""
    return np.linspace(bounds[0], bounds[1], bins + 1)


def cell_keys(query: AggregateQuery, schema: TableSchema) -> list[tuple[Any, ...]]:
    """Public keys of every cell in cell order: group keys, then ``(bin_lower, bin_upper)`` for a histogram."""
    groups = list(itertools.product(*(schema.group_keys(b) for b in query.by)))
    if query.kind != "histogram":
        return groups
    assert query.column is not None and query.bins is not None
    edges = bin_edges(schema.column(query.column).bounds, query.bins)
    bins = [(float(edges[i]), float(edges[i + 1])) for i in range(query.bins)]
    return [(*g, *b) for g in groups for b in bins]


def _sources(catalog: Catalog, rs: RelationSchema) -> tuple[dict[str, str], Any]:
    names = tuple(rs.tables)
    missing = [n for n in names if n not in catalog.tables]
    if missing:
        raise QueryError(f"The vault has no table {missing[0]!r} for this query; register it first.")
    catalog.engine_of(names)
    runner = catalog.tables[names[0]].runner
    return {n: catalog.tables[n].source() for n in names}, runner


class RecentCache(Generic[_V]):
    """The most recent ``size`` values by key, in the vault's memory (thread-safe; least recently used goes first).

    Used for the exact statistics of recent statements, by statement text (which names the tables' sources).
    The exact part of a question does not depend on epsilon or delta, so asking it again at another epsilon (or
    drawing fresh noise many times, as the neighbouring-dataset tests do) reuses it; the noise is always fresh. A
    table's source name is unique to that table object, and a registered file is checked against its sha256 before
    it is opened, so a hit is always for the same rows. Kept in the vault's memory only.
    """

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._items: OrderedDict[Hashable, _V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> _V | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def put(self, key: Hashable, value: _V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_CACHE: RecentCache[CellStats] = RecentCache()
#: The answers' statistics by what they depend on (:func:`_answer_key`): a question asked again at a new epsilon is
#: neither resolved to statements nor looked up by their text again.
_ANSWERS: RecentCache[CellStats] = RecentCache()
#: Every field of a query but its epsilon and delta.
_PLAN_FIELDS = tuple(f.name for f in dataclasses.fields(AggregateQuery) if f.name not in ("epsilon", "delta"))
#: Tests set ``STRATEGY_GROUPED[0] = True`` to force the grouped strategy (to compare it with the ordered one).
STRATEGY_GROUPED = [False]


def exact_cells(query: AggregateQuery, rs: RelationSchema, catalog: Catalog, k: int) -> CellStats:
    """Run the exact part of ``query`` (checked against ``rs``) on the catalog's tables with ``k`` rows kept."""
    sources, runner = _sources(catalog, rs)
    contiguous = frozenset(n for n in rs.tables if catalog.tables[n].profile.contiguous and not STRATEGY_GROUPED[0])
    plan = compile_cells(query, rs, sources, runner.dialect, k, contiguous)
    parts: list[CellSQL] = [plan]
    multi = ordered_table(rs, contiguous) if plan.strategy == "ordered" else None
    if multi is not None and len(catalog.tables[multi].profile.parts) > 1:
        parts = [
            compile_cells(query, rs, sources, runner.dialect, k, contiguous, part)
            for part in catalog.tables[multi].profile.parts
        ]
    key = f"{runner.dialect.name}|{'|'.join(p.sql for p in parts)}|{query.kind}|{query.q}"
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    if len(parts) == 1:
        stats = _run(query, rs, sources, runner, plan, k)
    else:  # units never straddle parts: answer them in parallel (DuckDB releases the GIL) and add them up
        with ThreadPoolExecutor(max_workers=min(len(parts), os.cpu_count() or 1)) as pool:
            pieces = list(pool.map(lambda p: _run(query, rs, sources, runner, p, k, values=False), parts))
        stats = _merge(pieces)
        if query.kind == "quantile":
            stats = replace(stats, values=_values(query, rs, sources, runner, k, plan.n_cells))
    _CACHE.put(key, stats)
    return stats


def answer_cells(query: AggregateQuery, rs: RelationSchema, catalog: Catalog, k: int) -> CellStats:
    """Return what the DP answer needs of ``query``: rows and sums per cell, with ``units`` None.

    One scan of the relation (:func:`~.sql.compile.compile_scan`), the rows beyond the household bound excluded
    by their row numbers (:meth:`TableData.dropped`, measured once per table). The disclosure statistics
    (households per cell, the largest contributions) are left for :func:`exact_cells`, which the vault runs when
    the answer is put in a release request. Quantiles (which need every value), tables on an engine that cannot
    keep the dropped rows, and relations with two many-row tables get :func:`exact_cells` in full.
    """
    key = _answer_key(query, rs, catalog, k)
    known = _ANSWERS.get(key) if key is not None else None
    if known is not None:
        return known
    stats = _answer_cells(query, rs, catalog, k)
    if key is not None:
        _ANSWERS.put(key, stats)
    return stats


def _answer_key(query: AggregateQuery, rs: RelationSchema, catalog: Catalog, k: int) -> Hashable | None:
    """Return what :func:`answer_cells` depends on, without planning it again (None: not known safe; plan it).

    Every field of the query but its epsilon and delta (which the exact part never reads), as values and as their
    ``repr`` (which tells ``1``, ``1.0`` and ``True`` apart, which compare equal); ``k``; the strategy
    switch; and per table read, the table object (its ``key`` is unique to the object, which keeps its file,
    engine and schema: see :data:`_CACHE`) and whether its values are known to lie within their bounds. The
    relation's schema ``rs`` is a function of the query's relation and the tables' schemas
    (:func:`~sandbox._private.shared.plan.relation_schema`), so the key holds only when ``rs`` was resolved from
    this relation and from these very schema objects.
    """
    tables = []
    for name, schema in rs.tables.items():
        table = catalog.tables.get(name)
        if table is None or table.schema is not schema:
            return None
        tables.append((name, table.key, bool(getattr(table, "bounded", False))))
    relation = rs.relation
    if (relation.base, relation.joins, relation.derived) != (query.dataset, query.joins, query.derived):
        return None  # not resolved from this query's relation
    fields = tuple(getattr(query, f) for f in _PLAN_FIELDS)
    # the values and their text: 18 == 18.0 == True as values, but not as text (nor, maybe, as a statement)
    key = ("answer", fields, repr(fields), int(k), STRATEGY_GROUPED[0], tuple(tables))
    try:
        hash(key)
    except TypeError:  # a condition holding something unhashable: plan it
        return None
    return key


def _answer_cells(query: AggregateQuery, rs: RelationSchema, catalog: Catalog, k: int) -> CellStats:
    sources, runner = _sources(catalog, rs)
    ok, multi = scan_table(rs, k)
    if query.kind == "quantile" or not ok or not hasattr(runner, "materialize") or STRATEGY_GROUPED[0]:
        return exact_cells(query, rs, catalog, k)
    dropped = catalog.tables[multi].dropped(k) if multi is not None else None
    if dropped is not None and not dropped.whole:  # many dropped rows: exclude them by row number
        assert multi is not None
        return _scan(query, rs, sources, runner, {multi: dropped.name}, catalog)
    stats = _scan(query, rs, sources, runner, {}, catalog)
    if dropped is None:
        return stats
    assert multi is not None  # few dropped rows: the cells of all rows, less those of the dropped ones
    less = _scan(query, rs, {**sources, multi: dropped.name}, runner, {}, catalog)
    return replace(
        stats,
        rows=stats.rows - less.rows,
        total=stats.total - less.total,
        centred=stats.centred - less.centred,
        squares=stats.squares - less.squares,
        rows_truncated=less.rows_in,
    )


def _scan(
    query: AggregateQuery,
    rs: RelationSchema,
    sources: dict[str, str],
    runner: Any,
    drops: dict[str, str],
    catalog: Catalog,
) -> CellStats:
    bounded = frozenset(n for n, t in catalog.tables.items() if getattr(t, "bounded", False))
    plan = compile_scan(query, rs, sources, runner.dialect, drops, bounded)
    cache_key = f"{runner.dialect.name}|scan|{plan.sql}|{query.kind}"
    cached = _CACHE.get(cache_key)
    if cached is not None:
        return cached
    n = plan.n_cells
    rows = np.zeros(n, dtype=np.int64)
    sums = np.zeros((3, n))
    rows_in = truncated = 0
    coders, strides = _coders(plan, rs.schema, query)
    nk = len(plan.keys)
    for rec in runner.rows(plan.sql):
        present, dropped, values, n_rows = rec[0], rec[1], rec[2 : 2 + nk], int(rec[2 + nk])
        rows_in += n_rows
        if dropped:
            truncated += n_rows
            continue
        if not present:
            continue
        cell = sum(coder(v) * st for coder, v, st in zip(coders, values, strides, strict=True))
        rows[cell] += n_rows
        sums[:, cell] += [float(v or 0.0) for v in rec[3 + nk : 6 + nk]]
    if query.kind in ("mean", "variance"):  # the statement sums x - mid only: the total follows from it
        assert query.column is not None
        lo, hi = rs.schema.column(query.column).bounds
        sums[0] = sums[1] + rows * ((lo + hi) / 2)
    stats = CellStats(rows, None, sums[0], sums[1], sums[2], None, None, None, rows_in, truncated, None, "scan")
    _CACHE.put(cache_key, stats)
    return stats


def _coders(plan: CellSQL, schema: TableSchema, query: AggregateQuery) -> tuple[list[Any], list[int]]:
    """Per group key of a scan plan: a function from the engine's value to its code, and the code's stride."""
    coders: list[Any] = []
    sizes: list[int] = []
    for name, how in plan.keys:
        if name == "_bin":
            assert query.bins is not None
            coders.append(int)
            sizes.append(query.bins)
            continue
        keys = schema.group_keys(name)
        sizes.append(len(keys))
        if how == "code":
            coders.append(int)
        elif how == "bool":
            coders.append(lambda v: 1 if v else 0)
        else:
            index = {k: i for i, k in enumerate(keys)}

            def coder(v: Any, index: dict[Any, int] = index, name: str = name) -> int:
                if v not in index:
                    raise QueryError(
                        f"Column {name!r} holds a value outside its schema's categories; the table was not "
                        "checked against its schema. Register it again (registration checks every row)."
                    )
                return index[v]

            coders.append(coder)
    strides = [1] * len(sizes)
    for i in range(len(sizes) - 2, -1, -1):
        strides[i] = strides[i + 1] * sizes[i + 1]
    return coders, strides


def _merge(pieces: list[CellStats]) -> CellStats:
    """Return the statistics of the union of disjoint sets of households."""
    first = pieces[0]
    units = [p.units for p in pieces if p.units is not None]
    assert len(units) == len(pieces), "only exact pieces are merged: each carries its households"
    top1 = top2 = abs_total = None
    if first.top1 is not None:
        tops = np.stack([np.stack([p.top1, p.top2]) for p in pieces], axis=0)  # type: ignore[list-item]
        flat = np.sort(tops.transpose(2, 0, 1).reshape(first.top1.size, -1), axis=1)
        top1, top2 = flat[:, -1].copy(), flat[:, -2].copy()
        abs_total = np.sum([p.abs_total for p in pieces if p.abs_total is not None], axis=0)
    return CellStats(
        rows=np.sum([p.rows for p in pieces], axis=0),
        units=np.sum(units, axis=0),
        total=np.sum([p.total for p in pieces], axis=0),
        centred=np.sum([p.centred for p in pieces], axis=0),
        squares=np.sum([p.squares for p in pieces], axis=0),
        abs_total=abs_total,
        top1=top1,
        top2=top2,
        rows_in=sum(p.rows_in for p in pieces),
        rows_truncated=sum(p.rows_truncated for p in pieces),
        values=None,
        strategy=f"{first.strategy} x{len(pieces)}",
    )


def _run(
    query: AggregateQuery,
    rs: RelationSchema,
    sources: dict[str, str],
    runner: Any,
    plan: CellSQL,
    k: int,
    values: bool = True,
) -> CellStats:
    n = plan.n_cells
    rows = np.zeros(n, dtype=np.int64)
    units = np.zeros(n, dtype=np.int64)
    sums = np.zeros((3, n))
    mag = magnitude(query.kind)
    abs_total, top1, top2 = (np.zeros(n), np.zeros(n), np.zeros(n)) if mag else (None, None, None)
    rows_in = truncated = 0
    for rec in runner.rows(plan.sql):
        cell, n_rows, n_units, t, c1, c2 = int(rec[0]), int(rec[1]), int(rec[2]), rec[3], rec[4], rec[5]
        rows_in += n_rows
        if cell == TRUNCATED:
            truncated += n_rows
            continue
        if cell == EXCLUDED:
            continue
        rows[cell], units[cell] = n_rows, n_units
        sums[:, cell] = [float(t or 0.0), float(c1 or 0.0), float(c2 or 0.0)]
        if mag:
            assert abs_total is not None and top1 is not None and top2 is not None
            abs_total[cell] = float(rec[6] or 0.0)
            if plan.split_top:
                top1[cell], top2[cell] = float(rec[7] or 0.0), float(rec[8] or 0.0)
            else:
                top = sorted((float(v) for v in (rec[7] or [])), reverse=True)
                top1[cell] = top[0] if top else 0.0
                top2[cell] = top[1] if len(top) > 1 else 0.0
    vals = _values(query, rs, sources, runner, k, n) if query.kind == "quantile" and values else None
    return CellStats(
        rows, units, sums[0], sums[1], sums[2], abs_total, top1, top2, rows_in, truncated, vals, plan.strategy
    )


def _values(
    query: AggregateQuery, rs: RelationSchema, sources: dict[str, str], runner: Any, k: int, n: int
) -> list[np.ndarray]:
    table = runner.arrow(compile_values(query, rs, sources, runner.dialect, k))
    cells = np.asarray(table.column(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    x = np.asarray(table.column(1).to_numpy(zero_copy_only=False), dtype=np.float64)
    order = np.argsort(cells, kind="stable")  # the engine sorted by cell and value already; keep it exact anyway
    cells, x = cells[order], x[order]
    ends = np.searchsorted(cells, np.arange(n), side="right")
    starts = np.searchsorted(cells, np.arange(n), side="left")
    return [np.sort(x[s:e]) for s, e in zip(starts, ends, strict=True)]


def clear_cache() -> None:
    """Forget every cached exact result (benchmarks time the exact part anew; tests compare strategies)."""
    for cache in (_CACHE, _ANSWERS):
        with cache._lock:
            cache._items.clear()
