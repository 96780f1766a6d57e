"""The normal form of a condition, so that equivalent questions share one canonical key (DESIGN invariant 3).

:func:`normal_form` rewrites a checked condition, given the public schema, into a tree of four atoms combined by
``and`` / ``or`` (no ``not``):

- ``Range(column, lower, lower_closed, upper, upper_closed)`` on a numeric column; int columns get closed whole
  bounds (``age > 17`` and ``age >= 18`` become ``[18, 105]``); every range is clipped to the schema's bounds;
- ``IsIn`` on a category or bool column, values in schema order;
- ``IsNull`` / not null;
- ``Const`` true or false.

``~`` is pushed down to the atoms with the pandas semantics of :mod:`sandbox._private.shared.expr` (the negation
of a comparison also keeps the missing values); ranges and value sets on one column merge inside an ``and``
(intersection) and an ``or`` (union); a range or set that covers the whole schema domain becomes "not null" and
then "true" on a non-nullable column; arguments are sorted and deduplicated. The form is not complete (no
distribution of ``and`` over ``or``), but it catches the rewrites an analyst makes: order, ``between`` against two
comparisons, strict against non-strict bounds on whole numbers, bounds implied by the schema, ``isin`` against
``|`` of ``==``, double negation and De Morgan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .canonical import canonical_json
from .errors import InternalError
from .expr import And, Between, Compare, Condition, Const, IsIn, IsNull, Not, Or

if TYPE_CHECKING:
    from .schema import TableSchema

__all__ = ["Range", "normal_form", "legacy_filters"]


def _ftext(x: float) -> float:
    return float(x) + 0.0


@dataclass(frozen=True, eq=True)
class Range(Condition):
    """A numeric column lies in an interval (false on a missing value). Only in normal forms."""

    column: str
    lower: float
    lower_closed: bool
    upper: float
    upper_closed: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": "range",
            "column": self.column,
            "lower": _ftext(self.lower),
            "lower_closed": self.lower_closed,
            "upper": _ftext(self.upper),
            "upper_closed": self.upper_closed,
        }

    def columns(self) -> set[str]:
        return {self.column}


TRUE, FALSE = Const(True), Const(False)


def _key_order(schema: TableSchema, column: str, values: set[Any]) -> tuple[Any, ...]:
    return tuple(k for k in schema.group_keys(column) if any(v is k or (type(v) is type(k) and v == k) for v in values))


def _not_null(schema: TableSchema, column: str) -> Condition:
    return IsNull(column, negate=True) if schema.column(column).nullable else TRUE


def _null(schema: TableSchema, column: str) -> Condition:
    return IsNull(column) if schema.column(column).nullable else FALSE


def _range(schema: TableSchema, column: str, lo: float, lc: bool, hi: float, hc: bool) -> Condition:
    c = schema.column(column)
    slo, shi = c.bounds
    if c.kind == "int":  # whole numbers: closed whole bounds
        lo = math.ceil(lo) if lc else math.floor(lo) + 1
        hi = math.floor(hi) if hc else math.ceil(hi) - 1
        lc = hc = True
    if lo < slo:
        lo, lc = slo, True
    if hi > shi:
        hi, hc = shi, True
    if lo > hi or (lo == hi and not (lc and hc)):
        return FALSE
    if lo == slo and lc and hi == shi and hc:
        return _not_null(schema, column)
    return Range(column, float(lo), lc, float(hi), hc)


def _set(schema: TableSchema, column: str, values: set[Any]) -> Condition:
    keys = _key_order(schema, column, values)
    if not keys:
        return FALSE
    if len(keys) == len(schema.group_keys(column)):
        return _not_null(schema, column)
    return IsIn(column, keys)


def _is_numeric(schema: TableSchema, column: str) -> bool:
    return schema.column(column).kind in ("int", "float")


def _atom(cond: Condition, schema: TableSchema, negate: bool) -> Condition:
    """Return normal form of one leaf, negated if ``negate``."""
    if isinstance(cond, Const):
        return Const(cond.value != negate)
    if isinstance(cond, IsNull):
        is_null = cond.negate == negate
        return _null(schema, cond.column) if is_null else _not_null(schema, cond.column)
    column = cond.column  # type: ignore[attr-defined]
    if _is_numeric(schema, column):
        lo, hi = schema.column(column).bounds
        pieces: list[Condition]
        if isinstance(cond, Between):
            pieces = [_range(schema, column, cond.lower, True, cond.upper, True)]
        elif isinstance(cond, IsIn):
            pieces = [_range(schema, column, float(v), True, float(v), True) for v in cond.values]
        elif isinstance(cond, Compare):
            v = float(cond.value)
            op = {"!=": "==", "==": "=="}.get(cond.op, cond.op)
            negate = negate != (cond.op == "!=")
            pieces = [
                {
                    "<": lambda: _range(schema, column, lo, True, v, False),
                    "<=": lambda: _range(schema, column, lo, True, v, True),
                    ">": lambda: _range(schema, column, v, False, hi, True),
                    ">=": lambda: _range(schema, column, v, True, hi, True),
                    "==": lambda: _range(schema, column, v, True, v, True),
                }[op]()
            ]
        else:  # pragma: no cover
            raise InternalError(f"unexpected leaf {cond!r}")
        positive = _simplify(Or(tuple(pieces)), schema)
        return _negate_range(positive, schema, column) if negate else positive
    if isinstance(cond, IsIn):
        values = set(cond.values)
    elif isinstance(cond, Compare):
        values = {cond.value}
        negate = negate != (cond.op == "!=")
    else:  # pragma: no cover
        raise InternalError(f"unexpected leaf {cond!r}")
    keys = set(schema.group_keys(column))
    if negate:
        rest = {k for k in keys if not any(v is k or (type(v) is type(k) and v == k) for v in values)}
        return _simplify(Or((_set(schema, column, rest), _null(schema, column))), schema)
    return _set(schema, column, values)


def _negate_range(cond: Condition, schema: TableSchema, column: str) -> Condition:
    """Return the complement (within the schema bounds, plus missing) of a union of ranges on one column."""
    lo, hi = schema.column(column).bounds
    if isinstance(cond, Const):
        return _null(schema, column) if cond.value else _not_null(schema, column)
    if isinstance(cond, IsNull) and cond.negate:
        return _null(schema, column)
    ranges = [cond] if isinstance(cond, Range) else list(cond.args)  # type: ignore[attr-defined]
    out: list[Condition] = [_null(schema, column)]
    cursor, closed = lo, True  # the next uncovered point, and whether it is itself uncovered
    for r in sorted(ranges, key=lambda r: (r.lower, not r.lower_closed)):
        assert isinstance(r, Range)
        out.append(_range(schema, column, cursor, closed, r.lower, not r.lower_closed))
        if (r.upper, r.upper_closed) > (cursor, not closed):
            cursor, closed = r.upper, not r.upper_closed
    out.append(_range(schema, column, cursor, closed, hi, True))
    return _simplify(Or(tuple(out)), schema)


def _nnf(cond: Condition, schema: TableSchema, negate: bool = False) -> Condition:
    if isinstance(cond, Not):
        return _nnf(cond.arg, schema, not negate)
    if isinstance(cond, And | Or):
        parts = tuple(_nnf(a, schema, negate) for a in cond.args)
        conj = isinstance(cond, And) != negate
        return _simplify(And(parts) if conj else Or(parts), schema)
    return _atom(cond, schema, negate)


def _merge_ranges(ranges: list[Range], conj: bool, schema: TableSchema) -> list[Condition]:
    column = ranges[0].column
    if conj:
        lo = max(ranges, key=lambda r: (r.lower, not r.lower_closed))
        hi = min(ranges, key=lambda r: (r.upper, r.upper_closed))
        return [_range(schema, column, lo.lower, lo.lower_closed, hi.upper, hi.upper_closed)]
    step = 1.0 if schema.column(column).kind == "int" else 0.0
    out: list[Range] = []
    for r in sorted(ranges, key=lambda r: (r.lower, not r.lower_closed)):
        if out:
            last = out[-1]
            touches = r.lower < last.upper or (r.lower == last.upper and (last.upper_closed or r.lower_closed))
            if step and r.lower <= last.upper + step:
                touches = True
            if touches:
                if (r.upper, r.upper_closed) > (last.upper, last.upper_closed):
                    out[-1] = Range(column, last.lower, last.lower_closed, r.upper, r.upper_closed)
                continue
        out.append(r)
    return [_range(schema, column, r.lower, r.lower_closed, r.upper, r.upper_closed) for r in out]


def _simplify(cond: Condition, schema: TableSchema) -> Condition:
    """Flatten, merge atoms per column, absorb constants, sort and deduplicate, until nothing changes."""
    for _ in range(8):
        out = _simplify_once(cond, schema)
        if out == cond:
            return out
        cond = out
    return cond


def _simplify_once(cond: Condition, schema: TableSchema) -> Condition:
    if not isinstance(cond, And | Or):
        return cond
    conj = isinstance(cond, And)
    flat: list[Condition] = []
    for a in cond.args:
        if type(a) is type(cond):
            flat.extend(a.args)
        else:
            flat.append(a)
    if any(isinstance(a, Const) and a.value != conj for a in flat):
        return Const(not conj)  # false in an and, true in an or
    flat = [a for a in flat if not isinstance(a, Const)]
    ranges: dict[str, list[Range]] = {}
    sets: dict[str, set[Any]] = {}
    nulls: dict[str, set[bool]] = {}  # column -> {True: is null, False: not null}
    rest: list[Condition] = []
    for a in flat:
        if isinstance(a, Range):
            ranges.setdefault(a.column, []).append(a)
        elif isinstance(a, IsIn):
            s = set(a.values)
            sets[a.column] = (sets[a.column] & s if conj else sets[a.column] | s) if a.column in sets else s
        elif isinstance(a, IsNull):
            nulls.setdefault(a.column, set()).add(not a.negate)
        else:
            rest.append(a)
    out: list[Condition] = list(rest)
    for column in sorted(set(ranges) | set(sets) | set(nulls)):
        flags = nulls.get(column, set())
        parts: list[Condition] = []
        if column in ranges:
            parts.extend(_merge_ranges(ranges[column], conj, schema))
        if column in sets:
            parts.append(_set(schema, column, sets[column]))
        has_values = bool(parts)
        if conj:
            if True in flags and (False in flags or has_values):
                return FALSE  # missing and present at once
            if True in flags:
                parts.append(IsNull(column))
            elif False in flags and not has_values:
                parts.append(IsNull(column, negate=True))
            # "not null" and a value condition: the value condition implies it
        else:
            if True in flags and False in flags:
                return TRUE
            if False in flags:
                parts = [IsNull(column, negate=True)]  # present, or any value: present
            elif True in flags:
                parts.append(IsNull(column))
        out.extend(parts)
    if any(isinstance(a, Const) and a.value != conj for a in out):
        return Const(not conj)
    out = [a for a in out if not isinstance(a, Const)]
    uniq = {canonical_json(a.to_dict()): a for a in out}
    if not uniq:
        return Const(conj)
    if len(uniq) == 1:
        return next(iter(uniq.values()))
    ordered = tuple(uniq[k] for k in sorted(uniq))
    return And(ordered) if conj else Or(ordered)


def normal_form(cond: Condition | None, schema: TableSchema) -> Condition:
    """Return the normal form of a checked condition (``None``: true); see the module docstring."""
    if cond is None:
        return TRUE
    out = _nnf(cond, schema)
    return _simplify(out, schema) if isinstance(out, And | Or) else out


def legacy_filters(cond: Condition, schema: TableSchema) -> list[tuple[str, tuple[Any, ...]]] | None:
    """Return the ``[(column, values)]`` form of the first query format, if the normal form has that shape, else None.

    That shape is "true", or an ``and`` of value sets on category and bool columns, with "not null" on such a
    column written as its full value set. Queries of this shape keep their first-format canonical key.
    """
    parts = [] if isinstance(cond, Const) and cond.value else list(cond.args) if isinstance(cond, And) else [cond]
    out = []
    for p in parts:
        if isinstance(p, IsIn) and not _is_numeric(schema, p.column):
            out.append((p.column, tuple(p.values)))
        elif isinstance(p, IsNull) and p.negate and not _is_numeric(schema, p.column):
            out.append((p.column, tuple(schema.group_keys(p.column))))
        else:
            return None
    return sorted(out, key=lambda cv: cv[0])
