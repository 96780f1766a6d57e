"""Conditions of a query: one column compared with public constants, combined with ``&``, ``|`` and ``~``.

A condition is a small tree of frozen value objects that travels as JSON (``to_dict`` / :func:`condition_from_dict`)
and is checked against the public schema of the table or linked relation it filters (:func:`check_condition`).
The analyst builds it the pandas way::

    (sb.col("age") >= 18) & sb.col("poverty")        # a bool column alone means "is true"
    sb.col("month").between(7, 12) | sb.col("amount").isna()
    ~sb.col("household_type").isin(["single"])

Semantics follow pandas: a comparison with a missing value is false and ``~`` negates, so ``~(col("x") < 5)``
keeps the rows where ``x`` is missing and ``!=`` is the negation of ``==``. ``between`` includes both ends.

Only constants appear on the right-hand side (never another column), only numeric columns are ordered
(``<``, ``<=``, ``>``, ``>=``, ``between``), category and bool columns are compared with their public values, and
id columns are never filtered on. Every refusal depends on the schema and the query only, never on the rows.

:func:`normal_form` rewrites a condition into a canonical tree (see :mod:`sandbox._private.shared.normal`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import QueryError
from .wire import NAME_RE

if TYPE_CHECKING:
    from .schema import Column, TableSchema

__all__ = [
    "Condition",
    "Compare",
    "Between",
    "IsIn",
    "IsNull",
    "And",
    "Or",
    "Not",
    "Const",
    "Col",
    "col",
    "as_condition",
    "condition_from_dict",
    "check_condition",
    "COMPARISONS",
    "MAX_NODES",
    "MAX_DEPTH",
    "MAX_VALUES",
]

COMPARISONS: tuple[str, ...] = ("<", "<=", ">", ">=", "==", "!=")
_ORDERED = ("<", "<=", ">", ">=")
#: Limits on the size of one condition tree (a request body is small; these keep the parser's work bounded).
#: An ``isin`` list is bounded by the request size (``limits.max_request_bytes``) as well.
MAX_NODES = 256
MAX_DEPTH = 24
MAX_VALUES = 100_000

Constant = float | int | str | bool


def _name(name: object, what: str = "column") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise QueryError(f"{what} {name!r} is not a valid name: use the lower-case name from the schema.")
    return name


def _constant(value: object, where: str) -> Constant:
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        if not math.isfinite(float(value)):
            raise QueryError(f"{where}: the constant {value!r} is not finite; compare with a finite number.")
        return value
    raise QueryError(f"{where}: compare with a number, a category name or True/False, got {type(value).__name__}.")


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
        raise QueryError(f"{where} needs a finite number, got {value!r}.")
    return float(value)


class Condition:
    """Base of every condition node; combine with ``&``, ``|`` and ``~`` (never ``and``, ``or``, ``not``)."""

    __slots__ = ()

    def __and__(self, other: object) -> Condition:
        return And((self, as_condition(other)))

    def __rand__(self, other: object) -> Condition:
        return And((as_condition(other), self))

    def __or__(self, other: object) -> Condition:
        return Or((self, as_condition(other)))

    def __ror__(self, other: object) -> Condition:
        return Or((as_condition(other), self))

    def __invert__(self) -> Condition:
        return Not(self)

    def __bool__(self) -> bool:
        raise QueryError(
            "A condition has no truth value in Python: combine conditions with & (and), | (or) and ~ (not), "
            "with parentheses around each comparison, e.g. (sb.col('age') >= 18) & sb.col('poverty')."
        )

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def columns(self) -> set[str]:
        """Names of the columns the condition reads."""
        raise NotImplementedError


@dataclass(frozen=True, eq=True)
class Compare(Condition):
    """``column op value`` with ``op`` one of ``<, <=, >, >=, ==, !=``."""

    column: str
    op: str
    value: Constant

    def __post_init__(self) -> None:
        _name(self.column)
        if self.op not in COMPARISONS:
            raise QueryError(f"Unknown comparison {self.op!r}; use one of {', '.join(COMPARISONS)}.")
        object.__setattr__(self, "value", _constant(self.value, f"where {self.column} {self.op}"))

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "column": self.column, "value": self.value}

    def columns(self) -> set[str]:
        return {self.column}


@dataclass(frozen=True, eq=True)
class Between(Condition):
    """``lower <= column <= upper`` (both ends included, as pandas' ``Series.between``)."""

    column: str
    lower: float
    upper: float

    def __post_init__(self) -> None:
        _name(self.column)
        lo = _number(self.lower, f"between on {self.column!r}: lower")
        hi = _number(self.upper, f"between on {self.column!r}: upper")
        if lo > hi:
            raise QueryError(f"between on {self.column!r}: lower {lo:g} is above upper {hi:g}; swap them.")
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)

    def to_dict(self) -> dict[str, Any]:
        return {"op": "between", "column": self.column, "lower": self.lower, "upper": self.upper}

    def columns(self) -> set[str]:
        return {self.column}


@dataclass(frozen=True, eq=True)
class IsIn(Condition):
    """``column`` equals one of ``values``."""

    column: str
    values: tuple[Constant, ...]

    def __post_init__(self) -> None:
        _name(self.column)
        vals = self.values
        if isinstance(vals, str | bool) or not isinstance(vals, Iterable):
            raise QueryError(f"isin on {self.column!r} needs a list of values, e.g. ['single'], got {vals!r}.")
        out = tuple(_constant(v, f"isin on {self.column!r}") for v in vals)
        if not out:
            raise QueryError(f"isin on {self.column!r} lists no values; give at least one or drop the condition.")
        if len(out) > MAX_VALUES:
            raise QueryError(f"isin on {self.column!r} lists {len(out)} values; at most {MAX_VALUES} are allowed.")
        object.__setattr__(self, "values", out)

    def to_dict(self) -> dict[str, Any]:
        return {"op": "in", "column": self.column, "values": list(self.values)}

    def columns(self) -> set[str]:
        return {self.column}


@dataclass(frozen=True, eq=True)
class IsNull(Condition):
    """``column`` is missing (``negate=True``: is not missing)."""

    column: str
    negate: bool = False

    def __post_init__(self) -> None:
        _name(self.column)

    def to_dict(self) -> dict[str, Any]:
        return {"op": "not_null" if self.negate else "is_null", "column": self.column}

    def columns(self) -> set[str]:
        return {self.column}


@dataclass(frozen=True, eq=True)
class And(Condition):
    """Every argument holds."""

    args: tuple[Condition, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", _args(self.args, "and"))

    def to_dict(self) -> dict[str, Any]:
        return {"op": "and", "args": [a.to_dict() for a in self.args]}

    def columns(self) -> set[str]:
        return set().union(*(a.columns() for a in self.args))


@dataclass(frozen=True, eq=True)
class Or(Condition):
    """At least one argument holds."""

    args: tuple[Condition, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", _args(self.args, "or"))

    def to_dict(self) -> dict[str, Any]:
        return {"op": "or", "args": [a.to_dict() for a in self.args]}

    def columns(self) -> set[str]:
        return set().union(*(a.columns() for a in self.args))


@dataclass(frozen=True, eq=True)
class Not(Condition):
    """The argument does not hold (a missing value makes a comparison false, so its negation true)."""

    arg: Condition

    def __post_init__(self) -> None:
        if not isinstance(self.arg, Condition):
            raise QueryError(f"~ needs a condition, got {type(self.arg).__name__}.")

    def to_dict(self) -> dict[str, Any]:
        return {"op": "not", "arg": self.arg.to_dict()}

    def columns(self) -> set[str]:
        return self.arg.columns()


@dataclass(frozen=True, eq=True)
class Const(Condition):
    """Always true or always false (appears in normal forms: e.g. ``age > 200`` on a column bounded by 105)."""

    value: bool

    def to_dict(self) -> dict[str, Any]:
        return {"op": "true" if self.value else "false"}

    def columns(self) -> set[str]:
        return set()


def _args(args: object, op: str) -> tuple[Condition, ...]:
    if not isinstance(args, tuple | list) or len(args) < 1:
        raise QueryError(f"'{op}' needs a list of conditions.")
    out: list[Condition] = []
    for a in args:
        c = as_condition(a)
        if type(c) is (And if op == "and" else Or):  # flatten (a & b) & c
            out.extend(c.args)
        else:
            out.append(c)
    return tuple(out)


class Col:
    """A reference to a column, for building conditions: ``sb.col("age") >= 18``.

    A bool column on its own is a condition ("is true"): ``where=sb.col("poverty")``.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = _name(name)

    def __repr__(self) -> str:
        return f"col({self.name!r})"

    def __lt__(self, value: object) -> Condition:
        return Compare(self.name, "<", _not_col(value))

    def __le__(self, value: object) -> Condition:
        return Compare(self.name, "<=", _not_col(value))

    def __gt__(self, value: object) -> Condition:
        return Compare(self.name, ">", _not_col(value))

    def __ge__(self, value: object) -> Condition:
        return Compare(self.name, ">=", _not_col(value))

    def __eq__(self, value: object) -> Condition:  # type: ignore[override]
        return Compare(self.name, "==", _not_col(value))

    def __ne__(self, value: object) -> Condition:  # type: ignore[override]
        return Compare(self.name, "!=", _not_col(value))

    __hash__ = None  # type: ignore[assignment]

    def between(self, lower: float, upper: float) -> Condition:
        """``lower <= column <= upper``, both ends included."""
        return Between(self.name, lower, upper)

    def isin(self, values: Sequence[Constant]) -> Condition:
        """Return the column equals one of ``values``."""
        return IsIn(self.name, tuple(values))

    def isna(self) -> Condition:
        """Return the value is missing."""
        return IsNull(self.name)

    def notna(self) -> Condition:
        """Return the value is present."""
        return IsNull(self.name, negate=True)

    is_null = isna
    not_null = notna

    def __and__(self, other: object) -> Condition:
        return as_condition(self) & other

    def __rand__(self, other: object) -> Condition:
        return as_condition(other) & as_condition(self)

    def __or__(self, other: object) -> Condition:
        return as_condition(self) | other

    def __ror__(self, other: object) -> Condition:
        return as_condition(other) | as_condition(self)

    def __invert__(self) -> Condition:
        return ~as_condition(self)

    def __bool__(self) -> bool:
        raise QueryError(f"col({self.name!r}) has no truth value in Python: compare it, e.g. col({self.name!r}) > 0.")


def col(name: str) -> Col:
    """Refer to column ``name`` in a condition, e.g. ``sb.col("age") >= 18``."""
    return Col(name)


def _not_col(value: object) -> Constant:
    if isinstance(value, Col):
        raise QueryError(
            f"Conditions compare a column with a constant, not with another column ({value!r}); "
            "derive a bool column or compare each column with a number."
        )
    return value  # type: ignore[return-value]  # checked by Compare


def as_condition(value: object) -> Condition:
    """Return ``value`` as a condition: a condition itself, or a bool column (``Col``) meaning "is true"."""
    if isinstance(value, Condition):
        return value
    if isinstance(value, Col):
        return Compare(value.name, "==", True)
    if isinstance(value, Mapping):
        return condition_from_dict(value)
    raise QueryError(
        f"Expected a condition such as sb.col('age') >= 18, got {type(value).__name__}; "
        "build it with sb.col(...) and & | ~."
    )


# -- JSON -------------------------------------------------------------------------------------------------------
_KEYS = {
    "and": {"op", "args"},
    "or": {"op", "args"},
    "not": {"op", "arg"},
    "between": {"op", "column", "lower", "upper"},
    "in": {"op", "column", "values"},
    "is_null": {"op", "column"},
    "not_null": {"op", "column"},
    "true": {"op"},
    "false": {"op"},
    **{op: {"op", "column", "value"} for op in COMPARISONS},
}


def condition_from_dict(data: object) -> Condition:
    """Parse the JSON form of a condition (as ``Condition.to_dict`` writes it); size and depth are bounded."""
    budget = [MAX_NODES]
    return _parse(data, 0, budget)


def _parse(data: object, depth: int, budget: list[int]) -> Condition:
    budget[0] -= 1
    if budget[0] < 0:
        raise QueryError(f"The condition has more than {MAX_NODES} parts; split the question or simplify it.")
    if depth > MAX_DEPTH:
        raise QueryError(f"The condition is nested more than {MAX_DEPTH} levels deep; simplify it.")
    if not isinstance(data, Mapping):
        raise QueryError(f"A condition must be a JSON object with an 'op', got {type(data).__name__}.")
    op = data.get("op")
    if not isinstance(op, str) or op not in _KEYS:
        raise QueryError(f"Unknown condition op {op!r}; use one of: {', '.join(_KEYS)}.")
    extra = set(data) - _KEYS[op]
    missing = _KEYS[op] - set(data)
    if extra or missing:
        raise QueryError(f"Condition '{op}' needs exactly the keys {sorted(_KEYS[op])}; got {sorted(data)}.")
    if op in ("and", "or"):
        args = data["args"]
        if not isinstance(args, list) or not args:
            raise QueryError(f"Condition '{op}' needs a non-empty list 'args'.")
        parts = tuple(_parse(a, depth + 1, budget) for a in args)
        return And(parts) if op == "and" else Or(parts)
    if op == "not":
        return Not(_parse(data["arg"], depth + 1, budget))
    if op in ("true", "false"):
        return Const(op == "true")
    if op == "between":
        return Between(data["column"], data["lower"], data["upper"])
    if op == "in":
        values = data["values"]
        if not isinstance(values, list):
            raise QueryError(f"Condition 'in' on {data['column']!r} needs a list 'values'.")
        return IsIn(data["column"], tuple(values))
    if op in ("is_null", "not_null"):
        return IsNull(data["column"], negate=op == "not_null")
    return Compare(data["column"], op, data["value"])


# -- checks against the public schema --------------------------------------------------------------------------
def _kind_list(schema: TableSchema, kinds: tuple[str, ...]) -> str:
    names = [c.name for c in schema.columns if c.kind in kinds]
    return ", ".join(names) or "(none)"


def _column_of(schema: TableSchema, name: str, where: str) -> Column:
    if name not in schema:
        raise QueryError(
            f"{where}: {schema.name!r} has no column {name!r}; its columns are: {', '.join(schema.names)}."
        )
    c = schema.column(name)
    if c.kind == "id":
        raise QueryError(
            f"{where}: {name!r} is an id column; ids link tables and are never filtered on. "
            "Filter on the household's or person's characteristics instead."
        )
    return c


def _is_key(value: object, key: object) -> bool:
    return value is key or (type(value) is type(key) and value == key)


def _check_value(schema: TableSchema, c: Column, value: Constant, where: str) -> None:
    if c.kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise QueryError(f"{where}: {c.name!r} is a number ({c.kind}); compare it with a number, not {value!r}.")
    elif c.kind == "bool":
        if not isinstance(value, bool):
            raise QueryError(f"{where}: {c.name!r} is bool; compare it with True or False, not {value!r}.")
    else:
        keys = schema.group_keys(c.name)
        if not any(_is_key(value, k) for k in keys):
            raise QueryError(f"{where}: {value!r} is not a category of {c.name!r}; allowed: {list(keys)!r}.")


def check_condition(cond: Condition, schema: TableSchema, where: str = "where") -> None:
    """Check every column and constant of ``cond`` against ``schema``; the QueryError names the fix."""
    if isinstance(cond, And | Or):
        for a in cond.args:
            check_condition(a, schema, where)
    elif isinstance(cond, Not):
        check_condition(cond.arg, schema, where)
    elif isinstance(cond, Const):
        return
    elif isinstance(cond, IsNull):
        _column_of(schema, cond.column, where)
    elif isinstance(cond, Between) or (isinstance(cond, Compare) and cond.op in _ORDERED):
        c = _column_of(schema, cond.column, where)
        op = "between" if isinstance(cond, Between) else cond.op
        if c.kind not in ("int", "float"):
            hint = (
                "compare it with == or isin([...])"
                if c.kind == "category"
                else "use sb.col(name) or ~sb.col(name) for a bool"
            )
            raise QueryError(
                f"{where}: '{op}' orders numbers, but {c.name!r} is {c.kind}; {hint}, or use a numeric column "
                f"({_kind_list(schema, ('int', 'float'))})."
            )
        if isinstance(cond, Compare):
            _check_value(schema, c, cond.value, where)
    elif isinstance(cond, Compare):
        c = _column_of(schema, cond.column, where)
        _check_value(schema, c, cond.value, where)
    elif isinstance(cond, IsIn):
        c = _column_of(schema, cond.column, where)
        if c.kind == "category":
            keys = schema.group_keys(c.name)
            bad = [v for v in cond.values if not any(_is_key(v, k) for k in keys)]
            if bad:
                raise QueryError(
                    f"{where}: values {bad!r} that are not categories of {c.name!r} were given; "
                    f"allowed: {list(keys)!r}."
                )
        for v in cond.values:
            _check_value(schema, c, v, f"{where} isin")
    else:  # pragma: no cover - every node type is listed above
        raise QueryError(f"Unknown condition {type(cond).__name__}.")
