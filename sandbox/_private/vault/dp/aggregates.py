"""Exact per-cell statistics of a query on a protected table: the non-private half of the DP engine.

:func:`prepare` applies, all in numpy and without copying the table: the household bound (keep the first ``k``
rows of each household in source order, ``rank < k``), the ``where`` filters, and the exclusion of rows whose value
or group key is missing; it then numbers each row's output cell. Excluded rows go to an extra "trash" cell
``n_cells`` that is dropped from every result, so no column is compressed. Cells are the product of the group-by
columns' public keys (schema order, row-major, as :func:`itertools.product`), times the histogram bins for a
histogram; every cell exists whether or not a row falls in it.

Truncating before filtering keeps the work per query at a mask over precomputed ranks; either order bounds a
household to ``k`` rows, and the truncation of one household never depends on another's rows.

:func:`unit_stats` gives what the release gate's disclosure checks need per cell: the number of distinct
households, and (for magnitude tables) the two largest absolute household contributions and the totals.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sandbox._private.shared.query import AggregateQuery

from .tabledata import TableData

__all__ = ["Prepared", "prepare", "cell_keys", "unit_stats", "UnitStats", "bin_edges"]


@dataclass(frozen=True)
class Prepared:
    """Rows of one query after bounding and filtering, indexed by output cell.

    Attributes
    ----------
    cell : ndarray of intp
        Output cell of every table row; ``n_cells`` (the trash cell) for rows the query excludes.
    values : ndarray of float64 or None
        The value column clipped to its schema bounds, the lower bound in excluded rows (None for a count).
    n_cells : int
        Number of output cells (without the trash cell).
    table : TableData
        The table (its ``rank`` lets :func:`unit_stats` find a household's rows without sorting).
    rows_truncated : int
        Rows dropped by the household bound.
    """

    cell: np.ndarray
    values: np.ndarray | None
    n_cells: int
    table: TableData = field(repr=False)
    rows_truncated: int

    @property
    def rows_in(self) -> int:
        """Rows in the table."""
        return self.table.n_rows

    @property
    def rows_used(self) -> int:
        """Rows that fall in some cell."""
        return int(self.cell.size - np.count_nonzero(self.cell == self.n_cells))

    def bincount(self, weights: np.ndarray | None = None) -> np.ndarray:
        """Per-cell row count (or sum of ``weights``), trash cell dropped."""
        out: np.ndarray = np.bincount(self.cell, weights=weights, minlength=self.n_cells + 1)[: self.n_cells]
        return out


def bin_edges(bounds: tuple[float, float], bins: int) -> np.ndarray:
    """``bins + 1`` equal-width edges over the public bounds."""
    return np.linspace(bounds[0], bounds[1], bins + 1)


def cell_keys(query: AggregateQuery, table: TableData) -> list[tuple[Any, ...]]:
    """Public keys of every cell in cell order: group keys, then ``(bin_lower, bin_upper)`` for a histogram."""
    schema = table.schema
    groups = list(itertools.product(*(schema.group_keys(b) for b in query.by)))
    if query.kind != "histogram":
        return groups
    assert query.column is not None and query.bins is not None
    edges = bin_edges(schema.column(query.column).bounds, query.bins)
    bins = [(float(edges[i]), float(edges[i + 1])) for i in range(query.bins)]
    return [(*g, *b) for g in groups for b in bins]


def _row_mask(query: AggregateQuery, table: TableData, k: int) -> tuple[np.ndarray, int]:
    keep = table.rank < k
    truncated = int(table.n_rows - np.count_nonzero(keep))
    schema = table.schema
    for name, allowed in query.where:
        keys = schema.group_keys(name)
        codes = [
            i for i, key in enumerate(keys) if any(v is key or (type(v) is type(key) and v == key) for v in allowed)
        ]
        keep &= np.isin(table.codes[name], np.asarray(codes, dtype=np.int16))
    for name in query.by:
        if schema.column(name).nullable:
            keep &= table.codes[name] >= 0
    if query.column is not None and schema.column(query.column).nullable:
        keep &= ~table.missing(query.column)
    return keep, truncated


def _group_cells(query: AggregateQuery, table: TableData) -> np.ndarray:
    cell = np.zeros(table.n_rows, dtype=np.intp)  # bincount wants intp: no cast per call
    for name in query.by:
        cell *= len(table.schema.group_keys(name))
        cell += table.codes[name]
    return cell


def prepare(query: AggregateQuery, table: TableData, k: int) -> Prepared:
    """Bound, filter and index the rows of ``table`` for ``query`` (``k`` = rows kept per household)."""
    keep, truncated = _row_mask(query, table, k)
    cell = _group_cells(query, table)
    n_cells = query.n_cells(table.schema)
    values = None
    if query.column is not None and query.kind != "count":
        lo, hi = table.schema.column(query.column).bounds
        values = np.clip(table.numeric(query.column), lo, hi)
        np.copyto(values, lo, where=~keep)  # no NaN left: excluded rows hold the lower bound
        if query.kind == "histogram":
            assert query.bins is not None
            width = (hi - lo) / query.bins if hi > lo else 1.0
            b = np.minimum(((values - lo) / width).astype(np.intp), query.bins - 1)
            cell = cell * query.bins + b
    np.copyto(cell, n_cells, where=~keep)
    return Prepared(cell, values, n_cells, table, truncated)


@dataclass(frozen=True)
class UnitStats:
    """Per-cell facts for disclosure control (private: never sent to the client).

    Attributes
    ----------
    rows, units : ndarray of int64
        Rows and distinct households per cell (after the household bound).
    total, abs_total, top1, top2 : ndarray of float64 or None
        Cell total of the (clipped) values, total of absolute household contributions, and the largest and
        second-largest absolute household contribution. None for counts and histograms.
    """

    rows: np.ndarray
    units: np.ndarray
    total: np.ndarray | None
    abs_total: np.ndarray | None
    top1: np.ndarray | None
    top2: np.ndarray | None


def _first_and_contrib(p: Prepared, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Flag the first row of each (household, cell) pair and sum each household's values per cell onto it.

    A household's rows are contiguous, and a row of rank ``r`` has its household's earlier rows at offsets
    ``1..r``. So for each offset ``s < k`` only the rows of rank >= ``s`` are compared with the row ``s`` before
    them: the work is the number of same-household row pairs, not ``k`` passes over the table.
    """
    first = np.ones(p.cell.size, dtype=bool)
    contrib = None if p.values is None else p.values.copy()
    cell = p.cell.astype(np.int32) if p.n_cells < 2**31 - 1 else p.cell  # halves the memory traffic of the gathers
    for s in range(1, k):
        later = p.table.rows_with_rank_at_least(s)
        if later.size == 0:
            break
        hit = later[cell[later] == cell[later - s]]
        first[hit] = False
        if contrib is not None and p.values is not None:
            contrib[hit - s] += p.values[hit]
    return first, contrib


def _top2(cell: np.ndarray, x: np.ndarray, n_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Largest and second-largest ``x`` (all >= 0) per cell; ties count twice."""
    top1 = np.zeros(n_cells + 1)
    np.maximum.at(top1, cell, x)
    is_max = x == top1[cell]
    n_max = np.bincount(cell, weights=is_max, minlength=n_cells + 1)
    rest = np.zeros(n_cells + 1)
    np.maximum.at(rest, cell, np.where(is_max, 0.0, x))  # 0 is neutral: x >= 0
    top2 = np.where(n_max >= 2, top1, rest)
    return top1[:n_cells], top2[:n_cells]


def unit_stats(p: Prepared, k: int, rows: np.ndarray | None = None, total: np.ndarray | None = None) -> UnitStats:
    """Exact per-cell rows, distinct households and (for values) dominance inputs.

    ``rows`` and ``total`` (per-cell row count and sum of values) may be passed when the caller has them already.
    """
    rows = p.bincount() if rows is None else rows
    if k == 1:
        first, contrib = None, p.values
    else:
        first, contrib = _first_and_contrib(p, k)
    cells_f = p.cell if first is None else p.cell[first]
    units = np.bincount(cells_f, minlength=p.n_cells + 1)[: p.n_cells]
    if p.values is None or contrib is None:
        return UnitStats(rows, units, None, None, None, None)
    c = np.abs(contrib if first is None else contrib[first])
    total = p.bincount(p.values) if total is None else total
    abs_total = np.bincount(cells_f, weights=c, minlength=p.n_cells + 1)[: p.n_cells]
    top1, top2 = _top2(cells_f, c, p.n_cells)
    return UnitStats(rows, units, total, abs_total, top1, top2)
