"""Compile a checked aggregate query on a linked relation into one SQL statement of exact per-cell statistics.

The statement reads each table through its *source*: a view whose columns carry the schema's names and types
(categories as text, bools as booleans, numbers as doubles) plus ``_rn``, the row's position in the registered file.
It builds, in order:

1. ``t0, t1, ...``: the base and each joined table, only the columns the query needs, the unit key as ``_u``;
2. ``d0, d1, ...``: each per-household count or sum over its table, grouped by ``_u``;
3. ``rel``: the inner joins of ``t*`` on ``_u`` and left joins of ``d*`` (0 when a household has no rows there);
4. the household bound, when the relation can hold more rows per household than the engine keeps (``k``): the
   first ``k`` rows of each household in file order (``row_number()`` over ``_u`` ordered by ``_rn`` of each
   joined table in turn), so that a household's truncation depends on its own rows only;
5. ``cells``: per row its output cell (group keys in schema order, row-major, then the histogram bin), ``-1`` for a
   row the bound drops and ``-2`` for a row the filter drops or whose group key or value is missing; the value
   clipped to its public bounds;
6. per cell: rows, distinct households, the sums the aggregate needs, and for magnitude tables the total of
   absolute household contributions and the two largest (a household's rows in one cell are summed first).

Strategy ``unit`` skips the per-household step when the relation has one row per household. The derived columns
compile inline: a bin to a ``CASE`` over its public edges, a bool condition to its normal form, a per-household
count or sum to a column of ``rel``. Conditions compile from their normal form
(:func:`~sandbox._private.shared.normal.normal_form`), where every atom is false on a missing value.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox._private.shared.errors import InternalError
from sandbox._private.shared.expr import And, Condition, Const, IsIn, IsNull, Or
from sandbox._private.shared.normal import Range, normal_form
from sandbox._private.shared.plan import Bin, Relation, RelationSchema, UnitCount, UnitSum
from sandbox._private.shared.query import AggregateQuery
from sandbox._private.shared.schema import TableSchema

from .dialect import Dialect

__all__ = [
    "CellSQL",
    "compile_cells",
    "compile_scan",
    "scan_table",
    "compile_values",
    "compile_frame",
    "single_relation",
    "ordered_table",
    "TRUNCATED",
    "EXCLUDED",
    "magnitude",
]

#: Cell number of a row dropped by the household bound / by the filter or a missing value.
TRUNCATED = -1
EXCLUDED = -2
_MAGNITUDE = ("sum", "mean", "variance")


def magnitude(kind: str) -> bool:
    """Whether the gate's dominance rules apply (a table of sums): sum, mean and variance."""
    return kind in _MAGNITUDE


@dataclass(frozen=True)
class CellSQL:
    """A compiled statement and how to read its result.

    Attributes
    ----------
    sql : str
        One statement; its rows are ``(cell, rows, units, total, centred, squares, abs_total, top1, top2)`` with
        ``top`` a two-element list (DuckDB) or ``top1, top2`` as two columns (``split_top``).
    n_cells : int
        Output cells (cells ``-1`` and ``-2`` are the bound's and the filter's).
    strategy : str
        ``unit`` (one row per household) or ``grouped`` (per household and cell first).
    """

    sql: str
    n_cells: int
    strategy: str
    split_top: bool
    #: the scan plan's group keys after ``(present, dropped)``: ``(column, how)`` with ``how`` ``"category"`` (the
    #: value, coded in Python), ``"bool"`` or ``"code"`` (already the code: a bin, a condition, a histogram bin)
    keys: tuple[tuple[str, str], ...] = ()


class _Compiler:
    def __init__(self, query: AggregateQuery, rs: RelationSchema, sources: dict[str, str], d: Dialect) -> None:
        self.q, self.rs, self.sources, self.d = query, rs, sources, d
        self.schema: TableSchema = rs.schema
        self.needed: dict[str, set[str]] = {t: set() for t in rs.row_tables}
        self.aggs: list[tuple[str, UnitCount | UnitSum]] = []
        self._seen: set[str] = set()
        #: ``(first unit, last unit)`` of the part being compiled: household-side tables are read for these only
        self.unit_range: tuple[int, int] | None = None
        #: tables whose values are known to lie within their schema's bounds (validated): not clipped again
        self.bounded: frozenset[str] = frozenset()

    def unit_filter(self, unit: str) -> str:
        if self.unit_range is None:
            return "TRUE"
        lo, hi = self.unit_range
        return f"{self.d.ident(unit)} BETWEEN {int(lo)} AND {int(hi)}"

    # -- which columns the query reads ------------------------------------------------------------------------
    def need(self, name: str) -> None:
        if name in self._seen:
            return
        self._seen.add(name)
        if name in self.rs.derived:
            v = self.rs.derived[name].value
            if isinstance(v, Bin):
                self.need(v.column)
            elif isinstance(v, Condition):
                for c in v.columns():
                    self.need(c)
            else:
                self.aggs.append((name, v))
            return
        table, column = self.rs.origin[name]
        self.needed[table].add(name)
        del column

    def need_condition(self, cond: Condition) -> None:
        for c in cond.columns():
            self.need(c)

    # -- expressions on rel ---------------------------------------------------------------------------------
    def ref(self, name: str) -> str:
        return self.d.ident(name)

    def numeric(self, name: str) -> str:
        """Return the value of a numeric or bool column as a double (NULL = missing)."""
        col = self.schema.column(name)
        if name in self.rs.derived and isinstance(self.rs.derived[name].value, Condition):
            return f"(CASE WHEN {self.condition(self._derived_nf(name))} THEN 1.0e0 ELSE 0.0e0 END)"
        if col.kind == "bool":
            return f"CAST({self.ref(name)} AS DOUBLE)"  # 1.0 / 0.0, NULL stays NULL
        return self.ref(name)

    def clipped(self, name: str) -> str:
        lo, hi = self.schema.column(name).bounds
        x = self.numeric(name)
        zero_one = self.schema.column(name).kind == "bool" or (
            name in self.rs.derived and isinstance(self.rs.derived[name].value, Condition)
        )
        if zero_one and lo <= 0.0 and hi >= 1.0:  # a 0/1 value within its bounds: nothing to clip
            return x
        if name not in self.rs.derived and name in self.rs.origin:
            table, column = self.rs.origin[name]
            if table in self.bounded and self.rs.tables[table].column(column).bounds == (lo, hi):
                return x  # checked against these very bounds when the table was registered
        lo_s, hi_s = self.d.number(lo), self.d.number(hi)
        clip = f"(CASE WHEN {x} < {lo_s} THEN {lo_s} WHEN {x} > {hi_s} THEN {hi_s} ELSE {x} END)"  # NULL stays NULL
        return f"(CASE WHEN {x} IS NULL THEN NULL ELSE {clip} END)" if self.schema.column(name).nullable else clip

    def code(self, name: str) -> str:
        """Group code of a category or bool column in schema order (NULL = missing)."""
        col = self.schema.column(name)
        if name in self.rs.derived:
            v = self.rs.derived[name].value
            if isinstance(v, Bin):
                return self._bin_code(v)
            if isinstance(v, Condition):
                return f"(CASE WHEN {self.condition(self._derived_nf(name))} THEN 1 ELSE 0 END)"
        if col.kind == "bool":
            return f"(CASE WHEN {self.ref(name)} THEN 1 WHEN NOT {self.ref(name)} THEN 0 END)"
        return self.d.category_code(self.ref(name), col.categories)

    def _bin_code(self, b: Bin) -> str:
        x = self.numeric(b.column)
        e = [self.d.number(v) for v in b.edges]
        n = len(e) - 1
        if b.right:  # [e0, e1], (e1, e2], ...
            whens = [f"WHEN {x} >= {e[0]} AND {x} <= {e[1]} THEN 0"]
            whens += [f"WHEN {x} > {e[i]} AND {x} <= {e[i + 1]} THEN {i}" for i in range(1, n)]
        else:  # [e0, e1), ..., [e(n-1), en]
            whens = [f"WHEN {x} >= {e[i]} AND {x} < {e[i + 1]} THEN {i}" for i in range(n - 1)]
            whens.append(f"WHEN {x} >= {e[n - 1]} AND {x} <= {e[n]} THEN {n - 1}")
        return f"(CASE {' '.join(whens)} END)"

    def _derived_nf(self, name: str) -> Condition:
        v = self.rs.derived[name].value
        assert isinstance(v, Condition)
        return normal_form(v, self.schema)

    def condition(self, cond: Condition) -> str:
        """Return the SQL of a condition in normal form: never NULL (an atom on a missing value is false)."""
        if isinstance(cond, Const):
            return "TRUE" if cond.value else "FALSE"
        if isinstance(cond, And | Or):
            glue = " AND " if isinstance(cond, And) else " OR "
            return "(" + glue.join(self.condition(a) for a in cond.args) + ")"
        if isinstance(cond, IsNull):
            return self._is_null(cond.column, cond.negate)
        if isinstance(cond, Range):
            x = self.numeric(cond.column)
            lo = f"{x} {'>=' if cond.lower_closed else '>'} {self.d.number(cond.lower)}"
            hi = f"{x} {'<=' if cond.upper_closed else '<'} {self.d.number(cond.upper)}"
            return f"coalesce({lo} AND {hi}, FALSE)"
        if isinstance(cond, IsIn):
            keys = self.schema.group_keys(cond.column)
            codes = [
                str(i)
                for i, k in enumerate(keys)
                if any(v is k or (type(v) is type(k) and v == k) for v in cond.values)
            ]
            return f"coalesce({self.code(cond.column)} IN ({', '.join(codes)}), FALSE)"
        raise InternalError(f"condition {cond!r} is not in normal form")

    def _is_null(self, name: str, negate: bool) -> str:
        if name in self.rs.derived and isinstance(self.rs.derived[name].value, Condition):
            return "TRUE" if negate else "FALSE"
        expr = (
            self.code(name)
            if name in self.rs.derived and isinstance(self.rs.derived[name].value, Bin)
            else self.ref(name)
        )
        return f"({expr} IS {'NOT ' if negate else ''}NULL)"

    # -- the relation -----------------------------------------------------------------------------------------
    def relation(
        self, extra_rel: list[str] | None = None, drops: dict[str, str] | None = None
    ) -> tuple[list[str], list[str]]:
        """CTEs up to ``rel`` and the order columns; ``rel`` has ``_u``, ``_rn<i>`` and the needed columns.

        ``drops`` maps a row table to the relation of its rows beyond the household bound (their ``_rn``); ``rel``
        then has ``_drop``, true for those rows.
        """
        d = self.d
        ctes: list[str] = []
        order: list[str] = []
        unit = self.schema.unit_column
        rel_cols: list[str] = []
        drop_terms: list[str] = []
        for i, table in enumerate(self.rs.row_tables):
            cols = sorted(self.needed[table])
            sel = [f"{d.ident(unit)} AS _u", f"_rn AS _rn{i}"]
            sel += [f"{d.ident(self.rs.origin[c][1])} AS {d.ident(c)}" for c in cols]
            if drops and table in drops:
                sel.append(f"_rn IN (SELECT _rn FROM {drops[table]}) AS _drop{i}")
                drop_terms.append(f"t{i}._drop{i}")
            ctes.append(f"t{i} AS (SELECT {', '.join(sel)} FROM {self.sources[table]})")
            order.append(f"_rn{i}")
            rel_cols += [f"t{i}.{d.ident(c)}" for c in cols] + [f"t{i}._rn{i}"]
        if drop_terms:
            rel_cols.append(f"({' OR '.join(drop_terms)}) AS _drop")
        joins = [f"t{i}" if i == 0 else f"JOIN t{i} ON t0._u = t{i}._u" for i in range(len(self.rs.row_tables))]
        for j, (name, agg) in enumerate(self.aggs):
            ctes.append(f"d{j} AS ({self._aggregate(agg)})")
            joins.append(f"LEFT JOIN d{j} ON t0._u = d{j}._u")
            lo, hi = self.schema.column(name).bounds
            rel_cols.append(
                f"least(greatest(coalesce(d{j}._v, 0.0e0), {d.number(lo)}), {d.number(hi)}) AS {d.ident(name)}"
            )
        rel_cols = ["t0._u", *rel_cols, *(extra_rel or [])]
        ctes.append(f"rel AS (SELECT {', '.join(rel_cols)} FROM {' '.join(joins)})")
        return ctes, order

    def _aggregate(self, agg: UnitCount | UnitSum) -> str:
        d = self.d
        schema = self.rs.tables[agg.table]
        sub = _Compiler(self.q, single_relation(schema), {schema.name: self.sources[agg.table]}, d)
        where = "TRUE" if agg.where is None else sub.condition(normal_form(agg.where, schema))
        if isinstance(agg, UnitCount):
            value = "CAST(count(*) AS DOUBLE)"
        else:
            value = f"coalesce(sum({sub.clipped(agg.column)}), 0.0e0)"
        src = self.sources[agg.table]
        where = f"{where} AND {self.unit_filter(schema.unit_column)}"
        return f"SELECT {d.ident(schema.unit_column)} AS _u, {value} AS _v FROM {src} WHERE {where} GROUP BY 1"

    # -- cells ----------------------------------------------------------------------------------------------
    def cell_expr(self) -> str:
        parts = []
        stride = 1
        factors = []
        for name in reversed(self.q.by):
            factors.append((name, stride))
            stride *= len(self.schema.group_keys(name))
        for name, s in reversed(factors):
            parts.append(f"{self.code(name)} * {s}" if s != 1 else self.code(name))
        cell = " + ".join(parts) if parts else "0"
        if self.q.kind == "histogram":
            assert self.q.column is not None and self.q.bins is not None
            lo, hi = self.schema.column(self.q.column).bounds
            width = (hi - lo) / self.q.bins if hi > lo else 1.0
            x = self.clipped(self.q.column)
            b = f"least(CAST(floor(({x} - {self.d.number(lo)}) / {self.d.number(width)}) AS BIGINT), {self.q.bins - 1})"
            cell = f"({cell}) * {self.q.bins} + {b}"
        return cell

    def present(self) -> str:
        """Rows that count: the filter holds, no group key is missing, the value column is present."""
        parts = [self.condition(self.where())]
        for name in self.q.by:
            if self.schema.column(name).nullable:
                parts.append(f"{self.code(name)} IS NOT NULL")
        if self.q.column is not None and self.schema.column(self.q.column).nullable:
            parts.append(self._is_null(self.q.column, negate=True))
        return " AND ".join(parts)

    def where(self) -> Condition:
        from sandbox._private.shared.query import _inline  # the query's own inlining of bool columns

        return normal_form(_inline(self.q.where, self.rs), self.schema)

    def prepare(self) -> None:
        for name in self.q.by:
            self.need(name)
        if self.q.column is not None:
            self.need(self.q.column)
        self.need_condition(self.where())


def single_relation(schema: TableSchema) -> RelationSchema:
    """Return the relation of one table on its own."""
    origin = {c.name: (schema.name, c.name) for c in schema.columns}
    return RelationSchema(schema, origin, {}, (schema.name,), Relation(schema.name), {schema.name: schema})


def _sums(c: _Compiler) -> tuple[str, str, str]:
    """``(x, x - mid, (x - mid)^2 - r^2/2)`` of the clipped value, or zeros for a count."""
    q = c.q
    if q.column is None or q.kind in ("count", "histogram", "quantile"):
        return "0.0e0", "0.0e0", "0.0e0"
    lo, hi = c.schema.column(q.column).bounds
    mid, r = (lo + hi) / 2, (hi - lo) / 2
    x = c.clipped(q.column)
    y = f"({x} - {c.d.number(mid)})"
    sq = f"({y} * {y} - {c.d.number(r * r / 2)})" if q.kind == "variance" else "0.0e0"
    return x, y, sq


def compile_cells(
    query: AggregateQuery,
    rs: RelationSchema,
    sources: dict[str, str],
    dialect: Dialect,
    k: int,
    contiguous: frozenset[str] = frozenset(),
    part: tuple[int, int, int, int] | None = None,
) -> CellSQL:
    """Return the statement of exact per-cell statistics of ``query`` on ``rs``, ``k`` rows kept per household.

    ``contiguous`` names the tables whose households' rows are adjacent in file order; when the relation has one
    many-row table among them and the question separates into its side and the household side, the ordered
    strategy (:func:`_ordered`) replaces the per-household grouping by a streaming pass.
    """
    c = _Compiler(query, rs, sources, dialect)
    c.prepare()
    if dialect.streaming_lag:
        plan = _ordered(c, k, contiguous, part)
        if plan is not None:
            return plan
    d = dialect
    rows_max = rs.schema.max_rows_per_unit
    truncate = k < rows_max
    x, y, sq = _sums(c)
    ctes, order = c.relation()
    if truncate:
        ctes.append(
            f"ranked AS (SELECT *, row_number() OVER (PARTITION BY _u ORDER BY {', '.join(order)}) AS _r FROM rel)"
        )
        src, bound = "ranked", f"WHEN _r > {k} THEN {TRUNCATED} "
    else:
        src, bound = "rel", ""
    cell = f"CASE {bound}WHEN {c.present()} THEN {c.cell_expr()} ELSE {EXCLUDED} END"
    ctes.append(f"cells AS (SELECT _u, {cell} AS _cell, {x} AS _x, {y} AS _y, {sq} AS _sq FROM {src})")
    n_cells = query.n_cells(rs.schema)
    per_unit = min(k, rows_max) > 1
    if not per_unit:
        contrib, body = "abs(_x)", "cells"
        stats = "count(*) AS n, count(*) AS units, sum(_x) AS t, sum(_y) AS c1, sum(_sq) AS c2"
    else:
        ctes.append(
            "hc AS (SELECT _u, _cell, count(*) AS n, sum(_x) AS t, sum(_y) AS c1, sum(_sq) AS c2 "
            "FROM cells GROUP BY _u, _cell)"
        )
        contrib, body = "abs(t)", "hc"
        stats = "sum(n) AS n, count(*) AS units, sum(t) AS t, sum(c1) AS c1, sum(c2) AS c2"
    split = not d.top_n
    if not magnitude(query.kind):
        sql = f"WITH {', '.join(ctes)} SELECT _cell, {stats}, 0.0e0, 0.0e0, 0.0e0 FROM {body} GROUP BY _cell"
    elif d.top_n:
        sql = (
            f"WITH {', '.join(ctes)} SELECT _cell, {stats}, sum({contrib}) AS abs_total, max({contrib}, 2) AS top "
            f"FROM {body} GROUP BY _cell"
        )
    else:
        ctes.append(f"b AS (SELECT *, {contrib} AS _a FROM {body})")
        ctes.append("m AS (SELECT _cell AS _mc, max(_a) AS _t1 FROM b GROUP BY _cell)")
        sql = (
            f"WITH {', '.join(ctes)} SELECT _cell, {stats}, sum(b._a) AS abs_total, max(m._t1) AS top1, "
            "CASE WHEN sum(CASE WHEN b._a = m._t1 THEN 1 ELSE 0 END) >= 2 THEN max(m._t1) "
            "ELSE coalesce(max(CASE WHEN b._a < m._t1 THEN b._a END), 0.0e0) END AS top2 "
            "FROM b JOIN m ON b._cell = m._mc GROUP BY _cell"
        )
    return CellSQL(sql, n_cells, "grouped" if per_unit else "unit", split)


def scan_table(rs: RelationSchema, k: int) -> tuple[bool, str | None]:
    """Whether the scan plan answers ``rs`` with ``k`` rows kept, and the table whose rows the bound drops.

    The relation's rows of one household are the rows of its one many-row table (the one-row tables and the
    per-household values join one row to each), so the first ``k`` rows of a household in relation order are the
    first ``k`` in that table's file order: the rows it drops are the table's own, whatever the question. With two
    many-row tables that is no longer so (returns ``(False, None)``).
    """
    multi = [t for t in rs.row_tables if rs.tables[t].max_rows_per_unit > 1]
    if len(multi) > 1:
        return False, None
    if not multi or k >= rs.schema.max_rows_per_unit:
        return True, None
    return True, multi[0]


def compile_scan(
    query: AggregateQuery,
    rs: RelationSchema,
    sources: dict[str, str],
    dialect: Dialect,
    drops: dict[str, str],
    bounded: frozenset[str] = frozenset(),
) -> CellSQL:
    """Return the statement of the per-cell rows and sums of ``query`` (no household statistics): one scan.

    ``drops`` maps the many-row table (see :func:`scan_table`) to the relation of its rows beyond the household
    bound, measured once per table (:meth:`TableData.dropped`); ``bounded`` names the tables checked against their
    schema's bounds (their raw values are not clipped again). The statement groups by whether the row counts
    (the filter holds, no key or value is missing), whether the bound dropped it, and the group-by columns' own
    values (categories as stored: coded to cells afterwards, as :attr:`CellSQL.keys` says, so no row pays for
    a lookup); its rows are ``(present, dropped, key..., rows, total, centred, squares)``. This is all a DP answer
    needs; the households per cell and the largest contributions (the disclosure statistics) come from
    :func:`compile_cells` when a release is requested.
    """
    if query.kind == "quantile":
        raise InternalError("a quantile needs its values: compile_values, not compile_scan")
    c = _Compiler(query, rs, sources, dialect)
    c.bounded = bounded
    c.prepare()
    x, y, sq = _sums(c)
    ctes, _ = c.relation(drops=drops)
    keys: list[tuple[str, str]] = []
    present = c.present()
    # the two flags: a varying one is computed per row and grouped by, a constant one only selected
    flags = {"_p": (present != "TRUE", present), "_d": (bool(drops), "_drop" if drops else "FALSE")}
    exprs = [f"{expr} AS {f}" for f, (varies, expr) in flags.items() if varies]
    for i, name in enumerate(query.by):
        if name in rs.derived:
            keys.append((name, "code"))
            exprs.append(f"{c.code(name)} AS _k{i}")
        else:
            keys.append((name, rs.schema.column(name).kind))
            exprs.append(f"{c.ref(name)} AS _k{i}")
    if query.kind == "histogram":
        assert query.column is not None and query.bins is not None
        lo, hi = rs.schema.column(query.column).bounds
        width = (hi - lo) / query.bins if hi > lo else 1.0
        scaled = f"({c.clipped(query.column)} - {dialect.number(lo)}) / {dialect.number(width)}"
        b = f"least(CAST(floor({scaled}) AS BIGINT), {query.bins - 1})"
        keys.append(("_bin", "code"))
        exprs.append(f"{b} AS _k{len(query.by)}")
    # only the sums the answer uses (a mean's total is its centred sum plus rows x mid: see answer_cells)
    used = {"sum": ("t",), "mean": ("c1",), "variance": ("c1", "c2")}.get(query.kind, ())
    values = {"t": x, "c1": y, "c2": sq}
    exprs += [f"{values[n]} AS _{n}" for n in used]
    ctes.append(f"cells AS (SELECT {', '.join(exprs or ['1 AS _one'])} FROM rel)")
    aggs = [f"{dialect.sum_double(f'_{n}')} AS {n}" if n in used else f"0.0e0 AS {n}" for n in ("t", "c1", "c2")]
    key_cols = [f"_k{i}" for i in range(len(keys))]
    grouped = [f for f, (varies, _) in flags.items() if varies] + key_cols
    head = [f if varies else f"{expr} AS {f}" for f, (varies, expr) in flags.items()] + key_cols
    by = f" GROUP BY {', '.join(grouped)}" if grouped else ""
    sql = f"WITH {', '.join(ctes)} SELECT {', '.join(head)}, count(*) AS n, {', '.join(aggs)} FROM cells{by}"
    return CellSQL(sql, query.n_cells(rs.schema), "scan", False, tuple(keys))


def _side(c: _Compiler, name: str, multi: str) -> str:
    """``m``: the column comes from the many-row table; ``h``: constant within a household; ``x``: both."""
    if name in c.rs.derived:
        v = c.rs.derived[name].value
        if isinstance(v, UnitCount | UnitSum):
            return "h"
        refs = {v.column} if isinstance(v, Bin) else v.columns()
        sides = {_side(c, r, multi) for r in refs}
        return sides.pop() if len(sides) == 1 else "x" if sides else "h"
    return "m" if c.rs.origin[name][0] == multi else "h"


def _cond_side(c: _Compiler, cond: Condition, multi: str) -> str:
    sides = {_side(c, n, multi) for n in cond.columns()}
    return sides.pop() if len(sides) == 1 else ("h" if not sides else "x")


def ordered_table(rs: RelationSchema, contiguous: frozenset[str]) -> str | None:
    """Return the one many-row table of the relation, if it is contiguous (a candidate for the ordered strategy)."""
    multi = [t for t in rs.row_tables if rs.tables[t].max_rows_per_unit > 1]
    return multi[0] if len(multi) == 1 and multi[0] in contiguous else None


def _ordered(
    c: _Compiler, k: int, contiguous: frozenset[str], part: tuple[int, int, int, int] | None = None
) -> CellSQL | None:
    """Per-cell statistics in one streaming pass over the many-row table, when its households are contiguous.

    In file order the rows of a household are adjacent, so "an earlier row of the same household falls in the same
    cell" is ``lag(key, s) = key`` for ``s < k`` with ``key = household * cells + the cell's part from this table``
    (the household side of the cell and of the filter is equal for all its rows), the bound is
    ``lag(household, k) <> household`` and a household's total in a cell is summed onto its first row there with
    ``lead``. DuckDB streams ``lag``/``lead`` ``OVER ()`` in scan order. Returns None when the shape does not allow
    it (then the grouped strategy answers): not exactly one many-row table, not contiguous, or a column, condition
    or derived value that mixes the two sides.
    """
    q, rs, d = c.q, c.rs, c.d
    multi_tables = [t for t in rs.row_tables if rs.tables[t].max_rows_per_unit > 1]
    if len(multi_tables) != 1 or multi_tables[0] not in contiguous:
        return None
    multi = multi_tables[0]
    R = rs.schema.max_rows_per_unit
    k = min(k, R)
    if k <= 1:
        return None
    n_cells = q.n_cells(rs.schema)
    lo_u, hi_u = rs.schema.column(rs.schema.unit_column).bounds
    if max(abs(lo_u), abs(hi_u)) * max(n_cells, 1) >= 2**62:
        return None
    where = c.where()
    conjuncts = (
        [] if isinstance(where, Const) and where.value else list(where.args) if isinstance(where, And) else [where]
    )
    parts: dict[str, list[str]] = {"m": [], "h": []}
    for cj in conjuncts:
        side = _cond_side(c, cj, multi)
        if side == "x":
            return None
        parts[side].append(c.condition(cj))
    cell_parts: dict[str, list[str]] = {"m": [], "h": []}
    stride = 1
    strides: dict[str, int] = {}
    for name in reversed(q.by):
        strides[name] = stride
        stride *= len(rs.schema.group_keys(name))
    bins = q.bins if q.kind == "histogram" else None
    for name in q.by:
        side = _side(c, name, multi)
        if side == "x":
            return None
        mult = strides[name] * (bins or 1)
        cell_parts[side].append(f"{c.code(name)} * {mult}")
        if rs.schema.column(name).nullable:
            parts[side].append(f"{c.code(name)} IS NOT NULL")
    xside = None
    if q.column is not None:
        xside = _side(c, q.column, multi)
        if xside == "x":
            return None
        if rs.schema.column(q.column).nullable:
            parts[xside].append(c._is_null(q.column, negate=True))
    x, y, sq = _sums(c)
    if bins is not None:
        assert q.column is not None and xside is not None
        lo, hi = rs.schema.column(q.column).bounds
        width = (hi - lo) / bins if hi > lo else 1.0
        cell_parts[xside].append(
            f"least(CAST(floor(({c.clipped(q.column)} - {d.number(lo)}) / {d.number(width)}) AS BIGINT), {bins - 1})"
        )
    mag = magnitude(q.kind)
    truncate = k < R
    # the many-row table's CTE: its columns, the cell's and the filter's part from it, the value if it is there
    unit = rs.schema.unit_column
    i_multi = rs.row_tables.index(multi)
    cols = sorted(c.needed[multi])
    cs = " + ".join(cell_parts["m"]) or "0"
    ps = " AND ".join(parts["m"]) or "TRUE"
    sel = [
        f"{d.ident(unit)} AS _u",
        f"_rn AS _rn{i_multi}",
        *(f"{d.ident(rs.origin[n][1])} AS {d.ident(n)}" for n in cols),
    ]
    rows = "TRUE" if part is None else f"_rn >= {int(part[0])} AND _rn < {int(part[1])}"
    c.unit_range = None if part is None else (part[2], part[3])
    ctes = [f"tm AS (SELECT {', '.join(sel)} FROM {c.sources[multi]} WHERE {rows})"]
    xs = x if xside == "m" else "0.0e0"
    # one projection computes the table's part of the cell, of the filter and the value (each once); the bound,
    # when it bites, is one lag of the household key; the key that the lags compare is NULL for a row the bound or
    # the filter drops, so that later rows are compared only with the rows that count
    ctes.append(f"w1 AS (SELECT _u, {cs} AS _cs, {ps} AS _ps, {xs} AS _xs FROM tm)")
    if truncate:
        ctes.append(f"w2 AS (SELECT *, lag(_u, {k}) OVER () IS DISTINCT FROM _u AS _keep FROM w1)")
    else:
        ctes.append("w2 AS (SELECT *, TRUE AS _keep FROM w1)")
    ctes.append(f"wm AS (SELECT *, CASE WHEN _ps AND _keep THEN _u * {n_cells} + _cs END AS _key FROM w2)")
    wins = [f"lag(_key, {s}) OVER () AS _l{s}" for s in range(1, k)]
    if mag:
        wins += [f"lead(_key, {s}) OVER () AS _f{s}" for s in range(1, k)]
        if xside == "m":
            wins += [f"lead(_xs, {s}) OVER () AS _x{s}" for s in range(1, k)]
    ctes.append(f"lw AS (SELECT *, {', '.join(wins)} FROM wm)")
    # branch-free: (a = b) is NULL when either side is; OR is TRUE if any term is TRUE
    first = "NOT coalesce(" + " OR ".join(f"_l{s} = _key" for s in range(1, k)) + ", FALSE)"
    extra = []
    if mag:
        if xside == "m":
            terms = " + ".join(f"coalesce(CAST(_f{s} = _key AS DOUBLE) * _x{s}, 0.0e0)" for s in range(1, k))
            extra.append(f"_xs + {terms} AS _ct")
        else:
            terms = " + ".join(f"coalesce(CAST(_f{s} = _key AS INTEGER), 0)" for s in range(1, k))
            extra.append(f"1 + {terms} AS _mult")
    m_cols = ["_u", "_cs", "_ps", "_xs", "_keep", f"{first} AS _first", *extra]
    ctes.append(f"mm AS (SELECT {', '.join(m_cols)} FROM lw)")
    # the household side: the other row tables (one row per household) and the per-household aggregates
    others = [t for t in rs.row_tables if t != multi]
    rel_cols = ["mm.*"]
    joins = ["mm"]
    for j, table in enumerate(others):
        hcols = sorted(c.needed[table])
        hsel = [f"{d.ident(unit)} AS _u", *(f"{d.ident(rs.origin[n][1])} AS {d.ident(n)}" for n in hcols)]
        ctes.append(f"h{j} AS (SELECT {', '.join(hsel)} FROM {c.sources[table]} WHERE {c.unit_filter(unit)})")
        joins.append(f"JOIN h{j} ON mm._u = h{j}._u")
        rel_cols += [f"h{j}.{d.ident(n)}" for n in hcols]
    for j, (name, agg) in enumerate(c.aggs):
        ctes.append(f"d{j} AS ({c._aggregate(agg)})")
        joins.append(f"LEFT JOIN d{j} ON mm._u = d{j}._u")
        lo, hi = rs.schema.column(name).bounds
        rel_cols.append(f"least(greatest(coalesce(d{j}._v, 0.0e0), {d.number(lo)}), {d.number(hi)}) AS {d.ident(name)}")
    ctes.append(f"rel AS (SELECT {', '.join(rel_cols)} FROM {' '.join(joins)})")
    ch = " + ".join(cell_parts["h"]) or "0"
    hp = " AND ".join(parts["h"]) or "TRUE"
    if xside == "m":
        xv, yv, sqv, ct = "_xs", _centre(c, "_xs")[0], _centre(c, "_xs")[1], "_ct" if mag else "0.0e0"
    else:
        xv, yv, sqv = x, y, sq
        ct = f"({x}) * _mult" if mag else "0.0e0"
    cell = f"CASE WHEN NOT _keep THEN {TRUNCATED} WHEN _ps AND {hp} THEN _cs + {ch} ELSE {EXCLUDED} END"
    ctes.append(f"cells AS (SELECT {cell} AS _cell, _first, {xv} AS _x, {yv} AS _y, {sqv} AS _sq, {ct} AS _c FROM rel)")
    stats = (
        "count(*) AS n, sum(CASE WHEN _first THEN 1 ELSE 0 END) AS units, sum(_x) AS t, sum(_y) AS c1, sum(_sq) AS c2"
    )
    if mag:
        tail = "sum(abs(_c)) FILTER (WHERE _first) AS abs_total, max(abs(_c), 2) FILTER (WHERE _first) AS top"
    else:
        tail = "0.0e0, 0.0e0, 0.0e0"
    sql = f"WITH {', '.join(ctes)} SELECT _cell, {stats}, {tail} FROM cells GROUP BY _cell"
    return CellSQL(sql, n_cells, "ordered", False)


def _centre(c: _Compiler, x: str) -> tuple[str, str]:
    """``x - mid`` and ``(x - mid)^2 - r^2/2`` of an already clipped value expression ``x``."""
    q = c.q
    if q.column is None or q.kind in ("count", "histogram", "quantile"):
        return "0.0e0", "0.0e0"
    lo, hi = c.schema.column(q.column).bounds
    mid, r = (lo + hi) / 2, (hi - lo) / 2
    y = f"({x} - {c.d.number(mid)})"
    return y, (f"({y} * {y} - {c.d.number(r * r / 2)})" if q.kind == "variance" else "0.0e0")


def compile_values(query: AggregateQuery, rs: RelationSchema, sources: dict[str, str], dialect: Dialect, k: int) -> str:
    """Return the statement of the clipped values of every counted row, ordered by cell and value (for quantiles)."""
    c = _Compiler(query, rs, sources, dialect)
    c.prepare()
    assert query.column is not None
    ctes, order = c.relation()
    src, bound = "rel", ""
    if k < rs.schema.max_rows_per_unit:
        ctes.append(
            f"ranked AS (SELECT *, row_number() OVER (PARTITION BY _u ORDER BY {', '.join(order)}) AS _r FROM rel)"
        )
        src, bound = "ranked", f"_r <= {k} AND "
    x = c.clipped(query.column)
    return (
        f"WITH {', '.join(ctes)} SELECT {c.cell_expr()} AS _cell, {x} AS _x FROM {src} "
        f"WHERE {bound}{c.present()} ORDER BY 1, 2"
    )


def compile_frame(rs: RelationSchema, columns: list[str], sources: dict[str, str], dialect: Dialect) -> str:
    """Return the statement of ``columns`` of the relation, one row per relation row (model fitting and audits).

    Category columns come back as their codes in schema order (NULL = missing), bools as 0/1, numbers clipped to
    their public bounds; the unit column as the unit key itself.
    """
    q = AggregateQuery(rs.schema.name, "count", epsilon=1.0)
    c = _Compiler(q, rs, sources, dialect)
    unit = rs.schema.unit_column
    for name in columns:
        if name != unit:
            c.need(name)
    ctes, order = c.relation()
    sel = []
    for name in columns:
        col = rs.schema.column(name)
        if name == unit:  # the privacy unit's key (the held-out split of a model's quality figures)
            sel.append(f"_u AS {dialect.ident(name)}")
        elif col.kind in ("category", "bool"):
            sel.append(f"{c.code(name)} AS {dialect.ident(name)}")
        else:
            sel.append(f"{c.clipped(name)} AS {dialect.ident(name)}")
    return f"WITH {', '.join(ctes)} SELECT {', '.join(sel)} FROM rel ORDER BY {', '.join(['_u', *order])}"
