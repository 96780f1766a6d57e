"""Checking a registered table against its public schema, and measuring its layout, in one or two SQL passes.

:func:`validate` refuses data that breaks the schema: missing or extra columns, missing values in a non-nullable
column (NaN counts as missing), values that are not numbers or not 0/1, categories the schema does not list,
numbers outside the public bounds, fractions in an int column, and units with more rows than the schema's
``max_rows_per_unit``. The messages give counts, never values: they may reach an operator's terminal.

:func:`profile` measures what the engine may use to choose a plan: rows, units, and whether each unit's rows are
contiguous in the file (the ordered strategy needs it). These facts never reach an analyst and never change a
result, only the way it is computed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox._private.shared.errors import SchemaError
from sandbox._private.shared.schema import TableSchema

from .dialect import Dialect

__all__ = [
    "Profile",
    "check_columns",
    "validate_sql",
    "raise_problems",
    "profile_sql",
    "runs_sql",
    "split_sql",
    "part_units_sql",
]


@dataclass(frozen=True)
class Profile:
    """Layout facts of one registered table (vault-internal).

    Attributes
    ----------
    n_rows, n_units : int
        Rows and distinct privacy units.
    max_rows : int
        The most rows one unit has (at most the schema's ``max_rows_per_unit``, or the table was refused).
    contiguous : bool or None
        Whether every unit's rows are adjacent in file order (None: not measured, as on Spark).
    parts : tuple of (int, int, int, int)
        For a contiguous table: ranges of rows that start at a unit's first row, as ``(first row, end row,
        smallest unit, largest unit)``; the ordered strategy answers them in parallel (a unit is never split).
    """

    n_rows: int
    n_units: int
    max_rows: int
    contiguous: bool | None
    parts: tuple[tuple[int, int, int, int], ...] = ()


def check_columns(schema: TableSchema, raw: dict[str, str]) -> None:
    """Refuse a file whose columns differ from the schema's."""
    missing = [n for n in schema.names if n not in raw]
    if missing:
        raise SchemaError(f"Table {schema.name!r}: the data lacks schema columns {missing}; add them.")
    extra = [n for n in raw if n not in schema]
    if extra:
        raise SchemaError(f"Table {schema.name!r}: the data has columns {extra} that the schema does not list.")


def validate_sql(d: Dialect, schema: TableSchema, raw_from: str, typed: dict[str, str]) -> tuple[str, list[str]]:
    """One statement counting every kind of problem per column; returns the SQL and the name of each output."""
    sums: list[str] = ["count(*)"]
    names: list[str] = ["n"]

    def add(expr: str, name: str) -> None:
        sums.append(f"sum(CASE WHEN {expr} THEN 1 ELSE 0 END)")
        names.append(name)

    for c in schema.columns:
        r, t = d.ident(c.name), typed[c.name]
        missing = f"({r} IS NULL)"
        if c.kind in ("int", "float"):
            missing = f"({r} IS NULL OR isnan({t}))"
        add(missing, f"null:{c.name}")
        add(f"{r} IS NOT NULL AND {t} IS NULL", f"bad:{c.name}")
        if c.kind == "category":
            cats = ", ".join(d.string(x) for x in c.categories)
            add(f"{t} IS NOT NULL AND {t} NOT IN ({cats})", f"unknown:{c.name}")
        if c.kind in ("int", "float"):
            lo, hi = c.bounds
            add(f"NOT isnan({t}) AND ({t} < {d.number(lo)} OR {t} > {d.number(hi)})", f"outside:{c.name}")
        if c.kind == "int":
            add(
                f"NOT isnan(CAST({t} AS DOUBLE)) AND CAST({t} AS DOUBLE) <> round(CAST({t} AS DOUBLE))",
                f"frac:{c.name}",
            )
    return f"SELECT {', '.join(sums)} FROM {raw_from}", names


def raise_problems(schema: TableSchema, names: list[str], values: tuple[object, ...]) -> int:
    """Raise the first problem the counts show (in column order), else return the number of rows."""
    got = {n: int(v or 0) for n, v in zip(names, values, strict=True)}  # type: ignore[call-overload]
    table = schema.name
    for c in schema.columns:
        n_null = got[f"null:{c.name}"]
        if n_null and not c.nullable:
            raise SchemaError(
                f"Table {table!r}, column {c.name!r}: {n_null} missing values, but the schema says it is not "
                "nullable; fill them or mark the column nullable in the schema."
            )
    for c in schema.columns:
        bad = got[f"bad:{c.name}"]
        if c.kind == "bool" and bad:
            raise SchemaError(
                f"Table {table!r}, column {c.name!r} is bool in the schema but not 0/1 data ({bad} values are not "
                "0/1 or true/false)."
            )
        if c.kind in ("int", "float", "id") and bad:
            raise SchemaError(
                f"Table {table!r}, column {c.name!r} is {c.kind} in the schema but not numeric ({bad} values)."
            )
        unknown = got.get(f"unknown:{c.name}", 0)
        if unknown:
            raise SchemaError(
                f"Table {table!r}, column {c.name!r}: {unknown} values are not among the schema's "
                f"{len(c.categories)} categories; fix the data or list every category in the schema."
            )
        outside = got.get(f"outside:{c.name}", 0)
        if outside:
            lo, hi = c.bounds
            raise SchemaError(
                f"Table {table!r}, column {c.name!r}: {outside} values lie outside the public bounds "
                f"[{lo:g}, {hi:g}]; widen the bounds in the schema (public, chosen without looking at the rows) "
                "or clip the data before registering."
            )
        frac = got.get(f"frac:{c.name}", 0)
        if frac:
            raise SchemaError(
                f"Table {table!r}, column {c.name!r} is {c.kind} in the schema but has fractional values."
            )
    return got["n"]


def profile_sql(d: Dialect, schema: TableSchema, source: str) -> str:
    """Units, the most rows of one unit, and how many units exceed the schema's bound."""
    u = d.ident(schema.unit_column)
    m = schema.max_rows_per_unit
    return (
        f"SELECT count(*), coalesce(max(_n), 0), sum(CASE WHEN _n > {m} THEN 1 ELSE 0 END) "
        f"FROM (SELECT {u} AS _u, count(*) AS _n FROM {source} GROUP BY {u}) AS _p"
    )


def runs_sql(d: Dialect, schema: TableSchema, source: str) -> str:
    """Count the runs of equal unit keys in file order (== units when every unit's rows are contiguous)."""
    u = d.ident(schema.unit_column)
    return (
        f"SELECT coalesce(sum(CASE WHEN _u IS DISTINCT FROM _p THEN 1 ELSE 0 END), 0) "
        f"FROM (SELECT {u} AS _u, lag({u}) OVER () AS _p FROM {source}) AS _r"
    )


def split_sql(d: Dialect, schema: TableSchema, source: str, targets: list[int]) -> str:
    """Count the runs of equal unit keys, and for each target row the first row at or after it that starts a unit."""
    u = d.ident(schema.unit_column)
    firsts = ", ".join(f"min(CASE WHEN _rn >= {t} AND _u IS DISTINCT FROM _p THEN _rn END)" for t in targets)
    return (
        f"SELECT coalesce(sum(CASE WHEN _u IS DISTINCT FROM _p THEN 1 ELSE 0 END), 0){', ' + firsts if firsts else ''} "
        f"FROM (SELECT _rn, {u} AS _u, lag({u}) OVER () AS _p FROM {source}) AS _r"
    )


def part_units_sql(d: Dialect, schema: TableSchema, source: str, starts: list[int]) -> str:
    """Smallest and largest unit key of each part (parts begin at ``starts``)."""
    u = d.ident(schema.unit_column)
    case = " ".join(f"WHEN _rn < {b} THEN {i}" for i, b in enumerate(starts[1:]))
    part = f"CASE {case} ELSE {len(starts) - 1} END" if case else "0"
    return f"SELECT {part} AS _part, min({u}), max({u}) FROM {source} GROUP BY 1 ORDER BY 1"


def check_units(schema: TableSchema, n_units: int, max_rows: int, over: int) -> None:
    """Refuse a table in which some unit has more rows than the schema's ``max_rows_per_unit``."""
    del n_units
    if over:
        raise SchemaError(
            f"Table {schema.name!r}: {over} units of {schema.unit_column!r} have more than max_rows_per_unit="
            f"{schema.max_rows_per_unit} rows (up to {max_rows}); fix the data or raise max_rows_per_unit in the "
            "schema."
        )
