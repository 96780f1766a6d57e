"""Linked questions: joins of the tables of one population on the privacy unit's key, and derived columns.

A :class:`Relation` is what a linked query reads: a base table, the tables joined to it (inner joins on the
privacy unit's key, e.g. ``persons`` joined with ``households`` on ``household_id``) and derived columns:

- :class:`Bin`: a numeric column cut at public edges into a category (as ``pandas.cut(..., right=False)``: bins
  ``[a, b)``, the last one ``[a, b]``; with ``right=True`` bins ``(a, b]``, the first one ``[a, b]``; values
  outside the edges are missing);
- a :class:`~sandbox._private.shared.expr.Condition`: a bool column (``sb.col("age") < 18``);
- :class:`UnitCount` / :class:`UnitSum`: per household, the number of rows (or the sum of a column) of another
  table of the population that meet a condition: ``n_signals = household_count("signals", where=...)``. Every row
  of a household gets its household's value, 0 when the household has no such rows.

:func:`relation_schema` checks a relation against the public schemas and returns the public schema of the
result: the base's columns, then each joined table's (a name the relation already has gets the join's
``rsuffix``, by default ``_<table>``), then the derived columns, with public kinds, bounds and categories. Its
``max_rows_per_unit`` is the product over the joined tables, the most rows one household can have in the join;
the engine bounds a household's rows in the join by it and by the policy. Every check depends on the schemas
and the query only, never on the rows. Whether two tables belong to one population is known to the vault
(which refuses a join across populations); the schemas alone cannot tell.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import QueryError
from .expr import Condition, as_condition, check_condition, condition_from_dict
from .schema import Column, TableSchema
from .wire import NAME_RE

__all__ = [
    "Join",
    "Bin",
    "UnitCount",
    "UnitSum",
    "Derived",
    "Relation",
    "RelationSchema",
    "relation_schema",
    "cut",
    "household_count",
    "household_sum",
    "MAX_BINS",
    "MAX_JOINS",
    "MAX_DERIVED",
]

MAX_BINS = 1000
MAX_JOINS = 4
MAX_DERIVED = 32
_MAX_LABEL = 64


def _name(name: object, what: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise QueryError(
            f"{what} {name!r} is not a valid name: use 1-63 lower-case letters, digits or '_', starting with a letter."
        )
    return name


def _opt_number(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
        raise QueryError(f"{what} must be a finite number, got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class Join:
    """An inner join with ``table`` on the privacy unit's key (``on`` defaults to it; any other column is refused)."""

    table: str
    on: str | None = None
    rsuffix: str | None = None

    def __post_init__(self) -> None:
        _name(self.table, "join table")
        if self.on is not None:
            _name(self.on, "join column")
        if self.rsuffix is not None and (not isinstance(self.rsuffix, str) or not NAME_RE.match("x" + self.rsuffix)):
            raise QueryError(f"rsuffix {self.rsuffix!r} must be lower-case letters, digits or '_' (e.g. '_hh').")

    @property
    def suffix(self) -> str:
        """The suffix for clashing column names: ``rsuffix``, or ``_`` + the table's name."""
        return self.rsuffix if self.rsuffix is not None else f"_{self.table}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"table": self.table}
        if self.on is not None:
            out["on"] = self.on
        if self.rsuffix is not None:
            out["rsuffix"] = self.rsuffix
        return out

    @classmethod
    def from_dict(cls, data: object) -> Join:
        if isinstance(data, str):
            return cls(data)
        if not isinstance(data, Mapping) or "table" not in data or set(data) - {"table", "on", "rsuffix"}:
            raise QueryError(f"A join is {{'table': name, 'on': key, 'rsuffix': suffix}}, got {data!r}.")
        return cls(data["table"], data.get("on"), data.get("rsuffix"))


@dataclass(frozen=True)
class Bin:
    """Cut numeric ``column`` at the public ``edges`` into a category.

    ``right=False`` (default): bins ``[a, b)``, the last one ``[a, b]``; ``right=True``: bins ``(a, b]``, the first
    one ``[a, b]``. The outer edges are always included; values outside them are missing.
    """

    column: str
    edges: tuple[float, ...]
    labels: tuple[str, ...] | None = None
    right: bool = False

    def __post_init__(self) -> None:
        _name(self.column, "bin column")
        if isinstance(self.edges, str) or not isinstance(self.edges, Iterable):
            raise QueryError(f"bin edges must be a list of numbers, e.g. [0, 18, 65, 105], got {self.edges!r}.")
        edges = tuple(_opt_number(e, "a bin edge") for e in self.edges)
        if len(edges) < 2 or len(edges) > MAX_BINS + 1:
            raise QueryError(f"bin needs 2 to {MAX_BINS + 1} edges, got {len(edges)}.")
        if any(b <= a for a, b in itertools.pairwise(edges)):  # type: ignore[operator]
            raise QueryError(f"bin edges must increase strictly, got {list(edges)}.")
        object.__setattr__(self, "edges", tuple(float(e) for e in edges))  # type: ignore[arg-type]
        if self.labels is not None:
            labels = tuple(self.labels)
            if len(labels) != len(edges) - 1:
                raise QueryError(f"bin has {len(edges) - 1} bins but {len(labels)} labels; give one label per bin.")
            if not all(isinstance(x, str) and 0 < len(x) <= _MAX_LABEL for x in labels) or len(set(labels)) != len(
                labels
            ):
                raise QueryError(f"bin labels must be distinct texts of 1-{_MAX_LABEL} characters, got {labels!r}.")
            object.__setattr__(self, "labels", labels)

    def resolved_labels(self) -> tuple[str, ...]:
        """Return the labels: the given ones, or the intervals, e.g. ``[0, 18)``, ..., ``[67, 105]``."""
        if self.labels is not None:
            return self.labels
        e = self.edges
        n = len(e) - 1
        if self.right:
            return tuple(f"{'[' if i == 0 else '('}{e[i]:g}, {e[i + 1]:g}]" for i in range(n))
        return tuple(f"[{e[i]:g}, {e[i + 1]:g}{']' if i == n - 1 else ')'}" for i in range(n))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "bin": self.column,
            "edges": list(self.edges),
            "labels": None if self.labels is None else list(self.labels),
        }
        if self.right:
            out["right"] = True
        return out


@dataclass(frozen=True)
class UnitCount:
    """Per household: the number of rows of ``table`` where ``where`` holds (0 if none), at most ``upper``."""

    table: str
    where: Condition | None = None
    upper: int | None = None

    def __post_init__(self) -> None:
        _name(self.table, "table")
        if self.where is not None:
            object.__setattr__(self, "where", as_condition(self.where))
        if self.upper is not None and (
            isinstance(self.upper, bool) or not isinstance(self.upper, int) or self.upper < 1
        ):
            raise QueryError(f"household_count(upper=...) must be a whole number >= 1, got {self.upper!r}.")

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.table, "where": None if self.where is None else self.where.to_dict(), "upper": self.upper}


@dataclass(frozen=True)
class UnitSum:
    """Per household: the sum of ``column`` over the rows of ``table`` where ``where`` holds (0 if none).

    ``lower`` / ``upper`` clip the sum when given.
    """

    table: str
    column: str
    where: Condition | None = None
    lower: float | None = None
    upper: float | None = None

    def __post_init__(self) -> None:
        _name(self.table, "table")
        _name(self.column, "column")
        if self.where is not None:
            object.__setattr__(self, "where", as_condition(self.where))
        lo = _opt_number(self.lower, "household_sum(lower=...)")
        hi = _opt_number(self.upper, "household_sum(upper=...)")
        if lo is not None and hi is not None and lo >= hi:
            raise QueryError(f"household_sum: lower {lo:g} must be below upper {hi:g}.")
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sum": self.table,
            "column": self.column,
            "where": None if self.where is None else self.where.to_dict(),
            "lower": self.lower,
            "upper": self.upper,
        }


Derivation = Bin | Condition | UnitCount | UnitSum


def cut(column: str, edges: Sequence[float], labels: Sequence[str] | None = None, *, right: bool = False) -> Bin:
    """Cut ``column`` at public ``edges`` into a category, like ``pandas.cut(..., right=False)``.

    Bins are ``[e0, e1)``, ..., ``[e(n-1), en]`` (``right=True``: ``[e0, e1]``, ``(e1, e2]``, ...); the outer edges
    are included and a value outside them is missing. Edges must lie within the column's public bounds and increase
    strictly; ``labels`` name the bins (default: the intervals).
    """
    return Bin(column, tuple(edges), None if labels is None else tuple(labels), right)


def household_count(table: str, where: Any = None, *, upper: int | None = None) -> UnitCount:
    """Per household: how many rows of ``table`` (of the same population) meet ``where``; 0 if none."""
    return UnitCount(table, None if where is None else as_condition(where), upper)


def household_sum(
    table: str, column: str, where: Any = None, *, lower: float | None = None, upper: float | None = None
) -> UnitSum:
    """Per household: the sum of ``column`` over the rows of ``table`` that meet ``where``; 0 if none.

    ``lower`` / ``upper`` clip the per-household sum to public bounds you choose (narrower bounds, less noise).
    """
    return UnitSum(table, column, None if where is None else as_condition(where), lower, upper)


def _derivation_from_dict(data: Mapping[str, Any]) -> Derivation:
    keys = set(data) - {"name"}
    if "bin" in keys and keys <= {"bin", "edges", "labels", "right"}:
        labels = data.get("labels")
        right = data.get("right", False)
        if not isinstance(right, bool):
            raise QueryError(f"Derived column {data.get('name')!r}: right must be true or false, got {right!r}.")
        return Bin(data["bin"], tuple(data.get("edges") or ()), None if labels is None else tuple(labels), right)
    if "condition" in keys and keys == {"condition"}:
        return condition_from_dict(data["condition"])
    if "count" in keys and keys <= {"count", "where", "upper"}:
        where = data.get("where")
        return UnitCount(data["count"], None if where is None else condition_from_dict(where), data.get("upper"))
    if "sum" in keys and keys <= {"sum", "column", "where", "lower", "upper"} and "column" in keys:
        where = data.get("where")
        return UnitSum(
            data["sum"],
            data["column"],
            None if where is None else condition_from_dict(where),
            data.get("lower"),
            data.get("upper"),
        )
    raise QueryError(
        f"Derived column {data.get('name')!r} must be one of {{bin, edges, labels, right}}, {{condition}}, "
        f"{{count, where, upper}} or {{sum, column, where, lower, upper}}; got keys {sorted(keys)}."
    )


@dataclass(frozen=True)
class Derived:
    """A derived column: its name and how it is computed."""

    name: str
    value: Derivation

    def __post_init__(self) -> None:
        _name(self.name, "derived column name")
        if not isinstance(self.value, Bin | Condition | UnitCount | UnitSum):
            object.__setattr__(self, "value", as_condition(self.value))

    def to_dict(self) -> dict[str, Any]:
        v = self.value
        body = {"condition": v.to_dict()} if isinstance(v, Condition) else v.to_dict()
        return {"name": self.name, **body}

    @classmethod
    def from_dict(cls, data: object) -> Derived:
        if not isinstance(data, Mapping) or "name" not in data:
            raise QueryError(f"A derived column is a JSON object with a 'name', got {data!r}.")
        return cls(data["name"], _derivation_from_dict(data))


@dataclass(frozen=True)
class Relation:
    """A base table, the tables joined to it on the privacy unit's key, and derived columns."""

    base: str
    joins: tuple[Join, ...] = ()
    derived: tuple[Derived, ...] = ()

    def __post_init__(self) -> None:
        _name(self.base, "dataset")
        joins = tuple(j if isinstance(j, Join) else Join.from_dict(j) for j in self.joins)
        derived = tuple(d if isinstance(d, Derived) else Derived.from_dict(d) for d in self.derived)
        if len(joins) > MAX_JOINS:
            raise QueryError(f"A query joins at most {MAX_JOINS} tables, got {len(joins)}.")
        if len(derived) > MAX_DERIVED:
            raise QueryError(f"A query derives at most {MAX_DERIVED} columns, got {len(derived)}.")
        object.__setattr__(self, "joins", joins)
        object.__setattr__(self, "derived", derived)

    @property
    def is_plain(self) -> bool:
        """No joins and no derived columns: the base table as registered."""
        return not self.joins and not self.derived

    def tables(self) -> tuple[str, ...]:
        """Every table the relation reads: base, joined, and those of per-household aggregates (in that order)."""
        names = [self.base, *(j.table for j in self.joins)]
        names += [d.value.table for d in self.derived if isinstance(d.value, UnitCount | UnitSum)]
        return tuple(dict.fromkeys(names))

    def with_join(self, join: Join) -> Relation:
        return Relation(self.base, (*self.joins, join), self.derived)

    def with_derived(self, items: Iterable[Derived]) -> Relation:
        return Relation(self.base, self.joins, (*self.derived, *items))


@dataclass(frozen=True)
class RelationSchema:
    """The checked relation: its public schema and where each of its columns comes from.

    Attributes
    ----------
    schema : TableSchema
        Public schema of the relation (base, joined and derived columns).
    origin : mapping of str to (str, str)
        For each base or joined column: ``(table, column in that table)``.
    derived : mapping of str to Derived
        The derived columns by name.
    row_tables : tuple of str
        The base and the joined tables: each of their rows makes rows of the relation.
    tables : mapping of str to TableSchema
        The public schema of every table the relation reads.
    """

    schema: TableSchema
    origin: Mapping[str, tuple[str, str]]
    derived: Mapping[str, Derived]
    row_tables: tuple[str, ...]
    relation: Relation = field(repr=False)
    tables: Mapping[str, TableSchema] = field(repr=False, default_factory=dict)


def _unit_check(base: TableSchema, other: TableSchema, what: str) -> None:
    if (other.privacy_unit, other.unit_column) != (base.privacy_unit, base.unit_column):
        raise QueryError(
            f"{what}: {other.name!r} has privacy unit {other.privacy_unit!r} keyed by {other.unit_column!r}, "
            f"but {base.name!r} has {base.privacy_unit!r} keyed by {base.unit_column!r}; link only tables of one "
            "population, on their privacy unit's key."
        )


def _schema_of(schemas: Mapping[str, TableSchema], name: str, what: str) -> TableSchema:
    if name not in schemas:
        known = ", ".join(sorted(schemas)) or "(none)"
        raise QueryError(f"{what}: there is no dataset {name!r}; the registered datasets are: {known}.")
    return schemas[name]


def _derived_column(d: Derived, schema: TableSchema, schemas: Mapping[str, TableSchema]) -> Column:
    v = d.value
    label = f"derived column {d.name!r}"
    if isinstance(v, Bin):
        if v.column not in schema:
            raise QueryError(
                f"{label}: there is no column {v.column!r} to bin; the columns are: {', '.join(schema.names)}."
            )
        src = schema.column(v.column)
        if src.kind not in ("int", "float"):
            raise QueryError(f"{label}: bin needs a numeric column, but {v.column!r} is {src.kind}.")
        lo, hi = src.bounds
        outside = [e for e in v.edges if e < lo or e > hi]
        if outside:
            raise QueryError(
                f"{label}: bin edges {outside} lie outside the public bounds [{lo:g}, {hi:g}] of {v.column!r}; "
                f"choose edges within them (e.g. {lo:g} ... {hi:g})."
            )
        covers = v.edges[0] == lo and v.edges[-1] == hi
        return Column(
            d.name,
            "category",
            f"{v.column} in klassen",
            f"{v.column} in bins",
            categories=v.resolved_labels(),
            nullable=src.nullable or not covers,
            description=f"Bins of {v.column} at edges {list(v.edges)} ({'right' if v.right else 'left'}-closed).",
        )
    if isinstance(v, Condition):
        check_condition(v, schema, label)
        return Column(d.name, "bool", "afgeleide voorwaarde", "derived condition", description=str(v.to_dict()))
    other = _schema_of(schemas, v.table, label)
    _unit_check(schema, other, label)
    if v.where is not None:
        check_condition(v.where, other, f"{label} where")
    m = other.max_rows_per_unit
    if isinstance(v, UnitCount):
        upper = m if v.upper is None else min(m, v.upper)
        return Column(
            d.name,
            "int",
            f"aantal rijen van {v.table} per huishouden",
            f"rows of {v.table} per household",
            lower=0,
            upper=upper,
            description=f"Per household: rows of {v.table} meeting the condition (0 if none), at most {upper}.",
        )
    if v.column not in other:
        raise QueryError(f"{label}: {v.table!r} has no column {v.column!r}; its columns are: {', '.join(other.names)}.")
    src = other.column(v.column)
    if src.kind not in ("int", "float", "bool"):
        raise QueryError(
            f"{label}: household_sum needs a numeric column of {v.table!r}, but {v.column!r} is {src.kind}."
        )
    slo, shi = src.bounds
    lo, hi = m * min(slo, 0.0), m * max(shi, 0.0)
    lo = lo if v.lower is None else max(lo, v.lower)
    hi = hi if v.upper is None else min(hi, v.upper)
    if lo >= hi:
        raise QueryError(
            f"{label}: the clip [{v.lower}, {v.upper}] leaves no room within the possible sums [{m * min(slo, 0.0):g}, "
            f"{m * max(shi, 0.0):g}]; choose lower < upper within them."
        )
    whole = src.kind in ("int", "bool") and float(lo).is_integer() and float(hi).is_integer()
    return Column(
        d.name,
        "int" if whole else "float",
        f"som van {v.column} van {v.table} per huishouden",
        f"sum of {v.column} of {v.table} per household",
        lower=lo,
        upper=hi,
        description=(
            f"Per household: sum of {v.column} over rows of {v.table} meeting the condition, in [{lo:g}, {hi:g}]."
        ),
    )


def relation_schema(relation: Relation, schemas: Mapping[str, TableSchema]) -> RelationSchema:
    """Check ``relation`` against the public ``schemas`` (by table name) and return its public schema.

    Raises
    ------
    QueryError
        An unknown table, a join on a column that is not the privacy unit's key, a table joined twice or with
        itself, a table of another privacy unit, a clashing column or derived name, a bin edge outside the
        column's bounds, a condition on a column of the wrong kind. Each message names the fix.
    """
    base = _schema_of(schemas, relation.base, "dataset")
    columns: list[Column] = list(base.columns)
    origin: dict[str, tuple[str, str]] = {c.name: (relation.base, c.name) for c in base.columns}
    rows = base.max_rows_per_unit
    seen = {relation.base}
    for j in relation.joins:
        what = f"join with {j.table!r}"
        if j.table in seen:
            raise QueryError(f"{what}: {j.table!r} is already in the query; join each table once.")
        other = _schema_of(schemas, j.table, what)
        _unit_check(base, other, what)
        if j.on is not None and j.on != base.unit_column:
            raise QueryError(
                f"{what} on {j.on!r}: tables are joined only on the privacy unit's key {base.unit_column!r} (a join "
                f"on another column could link households to each other); use on={base.unit_column!r} or leave on out."
            )
        seen.add(j.table)
        rows *= other.max_rows_per_unit
        names = {c.name for c in columns}
        for c in other.columns:
            if c.name == other.unit_column:
                continue
            name = c.name + j.suffix if c.name in names else c.name
            if not NAME_RE.match(name) or name in names:
                raise QueryError(
                    f"{what}: column {c.name!r} of {j.table!r} would be named {name!r}, which the query already has "
                    "(or which is not a valid name); give the join another rsuffix, e.g. rsuffix='_hh'."
                )
            columns.append(_renamed(c, name))
            names.add(name)
            origin[name] = (j.table, c.name)
    derived: dict[str, Derived] = {}
    for d in relation.derived:
        if d.name in {c.name for c in columns}:
            raise QueryError(
                f"derived column {d.name!r} clashes with a column of the query of the same name; choose another name."
            )
        partial = _combined(base, relation, columns, rows)
        columns.append(_derived_column(d, partial, schemas))
        derived[d.name] = d
    row_tables = (relation.base, *(j.table for j in relation.joins))
    used = {t: schemas[t] for t in relation.tables()}
    return RelationSchema(_combined(base, relation, columns, rows), origin, derived, row_tables, relation, used)


def _renamed(c: Column, name: str) -> Column:
    return c if name == c.name else replace(c, name=name)  # every field of the column kept, labels too


def _combined(base: TableSchema, relation: Relation, columns: list[Column], rows: int) -> TableSchema:
    if relation.is_plain:
        return base
    joined = " + ".join(j.table for j in relation.joins)
    return TableSchema(
        base.name,
        base.label_nl + (f" gekoppeld met {joined}" if joined else ""),
        base.label_en + (f" joined with {joined}" if joined else ""),
        base.privacy_unit,
        base.unit_column,
        rows,
        tuple(columns),
        description=f"{base.name} joined on {base.unit_column} with {joined or 'no table'}, with derived columns.",
    )
