"""The aggregate query: what an analyst asks of a protected table, as a self-validating value object.

An :class:`AggregateQuery` travels as JSON from the client to the vault (``to_dict`` / ``from_dict``), is checked
against the public schema and the policy (:meth:`AggregateQuery.check`), costed and answered by the DP engine,
and stored in the ledger under :meth:`AggregateQuery.canonical_key`. The canonical key makes trivially equivalent
rewrites of one query collide, so that asking "the same question" twice returns the stored answer and costs
nothing (DESIGN invariant 3): group-by columns are sorted, filters are sorted with their value sets sorted and
deduplicated, floats are normalised, and (given the schema) a filter that lists every category of its column is
dropped and ``count(column)`` on a non-nullable column becomes ``count()``. Epsilon and delta are part of the
key: the same question at a different epsilon is a different query.

A linked query (issue 12) also reads a :class:`~sandbox._private.shared.plan.Relation`: tables joined on the
privacy unit's key and derived columns, and filters with a
:class:`~sandbox._private.shared.expr.Condition` (numeric comparisons, ``between``, ``is null``, ``&``, ``|``,
``~``). Its canonical form (``sandbox.query/2``) holds the condition's normal form
(:func:`~sandbox._private.shared.normal.normal_form`), the joins with their key and suffix spelt out, and only the
derived columns the query uses (a bool column used as a filter is replaced by its condition). A query whose
normal form has the first format's shape (no joins or used derived columns, filters that are value lists on
category or bool columns) keeps its ``sandbox.query/1`` key, so ``where={"gender": ["female"]}`` and
``where=sb.col("gender") == "female"`` are answered from the same stored answer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, cast

from .canonical import canonical_sha256
from .errors import QueryError
from .expr import And, Compare, Condition, Const, IsIn, IsNull, Not, Or, as_condition, check_condition
from .normal import legacy_filters, normal_form
from .plan import Bin, Derived, Join, Relation, RelationSchema, relation_schema
from .schema import TableSchema
from .wire import NAME_RE

if TYPE_CHECKING:
    from .policy import Policy

#: What a linked query is checked against: the schema of its one table, or the schemas of the tables it reads.
Schemas = TableSchema | Mapping[str, TableSchema]

__all__ = [
    "AggregateKind",
    "AggregateQuery",
    "FilterValue",
    "KINDS",
    "Schemas",
    "check_epsilon",
    "check_delta",
    "as_schemas",
]

AggregateKind = Literal["count", "sum", "mean", "variance", "quantile", "histogram"]
FilterValue = str | bool
KINDS: tuple[str, ...] = ("count", "sum", "mean", "variance", "quantile", "histogram")
_NAME = NAME_RE
_MAX_BINS = 1000
_KEYS = ("dataset", "kind", "column", "by", "epsilon", "delta", "q", "bins", "where", "join", "derive")


#: Smallest epsilon a query may ask for. Below it the noise scale overflows the mechanisms' arithmetic
#: (e.g. log(exp(-1e-300)) == 0) and the answer would be pure noise anyway.
MIN_EPSILON = 1e-6


def check_epsilon(epsilon: object, *, cap: float | None = None) -> float:
    """Return ``epsilon`` as a float if it is finite, at least MIN_EPSILON and at most ``cap``; else QueryError."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float):
        raise QueryError(f"epsilon must be a number, got {epsilon!r}; pass for example epsilon=0.1.")
    eps = float(epsilon)
    if not math.isfinite(eps) or eps <= 0:
        raise QueryError(
            f"epsilon must be finite and greater than 0, got {epsilon!r}; pass a positive number such as 0.1."
        )
    if eps < MIN_EPSILON:
        raise QueryError(
            f"epsilon={eps:g} is below the smallest supported epsilon {MIN_EPSILON:g}, where the answer would be "
            f"pure noise; ask for epsilon >= {MIN_EPSILON:g}."
        )
    if cap is not None and eps > cap:
        raise QueryError(
            f"epsilon={eps:g} exceeds the policy's per-query maximum of {cap:g} "
            f"(budget.epsilon_per_query_max); ask for epsilon <= {cap:g}, or split the work into several queries."
        )
    return eps


def check_delta(delta: object, *, cap: float | None = None) -> float:
    """Return ``delta`` as a float if it is in [0, 1) and at most ``cap``; else raise QueryError."""
    if isinstance(delta, bool) or not isinstance(delta, int | float):
        raise QueryError(f"delta must be a number, got {delta!r}; use delta=0.0 for pure epsilon-DP.")
    d = float(delta)
    if not math.isfinite(d) or d < 0 or d >= 1:
        raise QueryError(f"delta must be in [0, 1), got {delta!r}; use delta=0.0 for pure epsilon-DP.")
    if cap is not None and d > cap:
        raise QueryError(
            f"delta={d:g} exceeds the policy's per-query maximum of {cap:g} (budget.delta_per_query_max); "
            f"use delta <= {cap:g}, or delta=0.0."
        )
    return d + 0.0  # normalises -0.0


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise QueryError(
            f"{what} {name!r} is not a valid name: use the lower-case name from the schema (e.g. 'household_type')."
        )
    return name


def _legacy_where(where: object) -> tuple[tuple[str, tuple[FilterValue, ...]], ...]:
    """Accept a mapping ``{column: values}`` or pairs ``[(column, values)]``; return a tuple of pairs."""
    if isinstance(where, Mapping):
        items: Iterable[Any] = where.items()
    elif isinstance(where, list | tuple):
        items = where
    else:
        raise QueryError(f"where must map column names to lists of allowed values, got {type(where).__name__}.")
    out: list[tuple[str, tuple[FilterValue, ...]]] = []
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise QueryError(f"where entry {item!r} must be a pair (column, [allowed values]).")
        col, values = item
        _check_name(col, "where column")
        if col in seen:
            raise QueryError(f"where filters column {col!r} twice; give one list of allowed values per column.")
        seen.add(col)
        if isinstance(values, str | bool) or not isinstance(values, Iterable):
            raise QueryError(f"where[{col!r}] must be a list of allowed values, e.g. ['female'], got {values!r}.")
        vals = tuple(values)
        if not vals:
            raise QueryError(f"where[{col!r}] lists no values; give at least one allowed value or drop the filter.")
        if not all(isinstance(v, str | bool) for v in vals):
            raise QueryError(f"where[{col!r}] values must be category names or true/false, got {list(vals)!r}.")
        out.append((col, vals))
    return tuple(out)


def _is_legacy_mapping(where: object) -> bool:
    """Tell whether ``where`` is ``{column: [values]}`` (the first format), not a condition's JSON ``{"op": ...}``."""
    return isinstance(where, Mapping) and not isinstance(where.get("op"), str)


def _as_where(where: object) -> Condition | None:
    """Return the query's filter as a condition: from a condition, a bool column, a condition's JSON or value lists."""
    if where is None:
        return None
    if isinstance(where, Mapping) and not where:
        return None
    if isinstance(where, list | tuple) and not where:
        return None
    if isinstance(where, Condition) or (hasattr(where, "name") and type(where).__name__ == "Col"):
        return as_condition(where)
    if isinstance(where, Mapping) and not _is_legacy_mapping(where):
        return as_condition(where)
    pairs = _legacy_where(where)
    conds = tuple(IsIn(c, v) for c, v in pairs)
    return conds[0] if len(conds) == 1 else And(conds)


def _float_text(x: float) -> str:
    """Return a canonical text for a float: ``repr`` of the float after ``+ 0.0`` (so 1 == 1.0 and -0.0 == 0.0)."""
    return repr(float(x) + 0.0)


def as_schemas(schemas: Schemas, dataset: str | None = None) -> Mapping[str, TableSchema]:
    """Return a single schema as ``{dataset: schema}`` (the table the query reads); a mapping as it is."""
    if isinstance(schemas, TableSchema):
        return {dataset or schemas.name: schemas}
    return schemas


@dataclass(frozen=True)
class AggregateQuery:
    """One DP aggregate over a protected table or a linked relation, optionally filtered and grouped.

    Parameters
    ----------
    dataset : str
        Registered dataset name (the base table of a linked query).
    kind : {"count", "sum", "mean", "variance", "quantile", "histogram"}
        The aggregate.
    column : str, optional
        The value column. ``None`` is allowed only for ``count`` (count rows); ``count(column)`` counts the rows
        where ``column`` is not missing.
    by : tuple of str
        Categorical or bool columns to group by (also joined or derived ones). Group keys come from the schema,
        so empty groups appear too.
    epsilon : float
        Privacy loss of this query: finite and > 0 (the policy caps it, see :meth:`check`).
    delta : float
        0 for pure epsilon-DP (Laplace / geometric noise); > 0 switches count, sum, mean, variance and histogram
        to the analytic Gaussian mechanism.
    q : float, optional
        Quantile in (0, 1) for ``quantile`` (the median is 0.5); must be ``None`` otherwise.
    bins : int, optional
        For ``histogram``: number of equal-width bins over the column's schema bounds (1-1000).
    where : Condition, mapping or pairs, optional
        A condition (``sb.col("age") >= 18``, its JSON ``{"op": ...}``) or filters ``{column: [allowed values]}``
        on categorical or bool columns, all of which must hold.
    joins : tuple of Join
        Tables of the same population joined on the privacy unit's key.
    derived : tuple of Derived
        Derived columns: bins, bool conditions, per-household counts and sums.

    Raises
    ------
    QueryError
        If a field is invalid; the message names the fix.
    """

    dataset: str
    kind: AggregateKind
    column: str | None = None
    _: KW_ONLY
    epsilon: float
    by: tuple[str, ...] = ()
    delta: float = 0.0
    q: float | None = None
    bins: int | None = None
    where: Condition | None = None
    joins: tuple[Join, ...] = ()
    derived: tuple[Derived, ...] = ()

    def __post_init__(self) -> None:
        _check_name(self.dataset, "dataset")
        if self.kind not in KINDS:
            raise QueryError(f"Unknown aggregate {self.kind!r}; use one of {', '.join(KINDS)}.")
        if self.column is None and self.kind != "count":
            raise QueryError(f"{self.kind} needs a column: pass the name of a numeric column of {self.dataset!r}.")
        if self.column is not None:
            _check_name(self.column, "column")
        if isinstance(self.by, str):
            object.__setattr__(self, "by", (self.by,))
        by = tuple(_check_name(b, "group-by column") for b in self.by)
        if len(set(by)) != len(by):
            raise QueryError(f"by lists a column twice: {list(by)}; list each group-by column once.")
        object.__setattr__(self, "by", by)
        object.__setattr__(self, "epsilon", check_epsilon(self.epsilon))
        object.__setattr__(self, "delta", check_delta(self.delta))
        object.__setattr__(self, "where", _as_where(self.where))
        rel = Relation(self.dataset, tuple(self.joins), tuple(self.derived))
        object.__setattr__(self, "joins", rel.joins)
        object.__setattr__(self, "derived", rel.derived)
        self._check_q_and_bins()

    def _check_q_and_bins(self) -> None:
        if self.kind == "quantile":
            q = self.q
            if isinstance(q, bool) or not isinstance(q, int | float) or not (0.0 < float(q) < 1.0):
                raise QueryError(f"quantile needs q strictly between 0 and 1 (median: q=0.5), got q={q!r}.")
            object.__setattr__(self, "q", float(q))
            if self.delta != 0:
                raise QueryError("quantile uses the exponential mechanism (pure epsilon-DP): set delta=0.")
        elif self.q is not None:
            raise QueryError(f"q is only for quantile queries; drop q={self.q!r} from this {self.kind} query.")
        if self.kind == "histogram":
            b = self.bins
            if isinstance(b, bool) or not isinstance(b, int) or not (1 <= b <= _MAX_BINS):
                raise QueryError(f"histogram needs bins, a whole number from 1 to {_MAX_BINS}, got bins={b!r}.")
        elif self.bins is not None:
            raise QueryError(f"bins is only for histogram queries; drop bins={self.bins!r}.")

    # -- the relation it reads ---------------------------------------------------------------------------------
    @property
    def relation(self) -> Relation:
        """The base table, its joins and derived columns."""
        return Relation(self.dataset, self.joins, self.derived)

    def tables(self) -> tuple[str, ...]:
        """Every table the query reads (its base first)."""
        return self.relation.tables()

    def resolve(self, schemas: Schemas) -> RelationSchema:
        """Check the relation against the public schemas and return its schema (see :func:`relation_schema`)."""
        return relation_schema(self.relation, as_schemas(schemas, self.dataset))

    # -- checks against the public schema and the policy ---------------------------------------------------
    def check(self, schemas: Schemas, policy: Policy) -> RelationSchema:
        """Check columns, types, group count and the per-query caps against the schemas and ``policy``.

        Returns
        -------
        RelationSchema
            The checked relation (for a single table: its own schema).

        Raises
        ------
        QueryError
            Unknown column, a column of the wrong kind for the aggregate, a filter value that is not a category,
            a bad join or derived column, too many groups, or epsilon/delta above the policy's per-query cap.
        """
        check_epsilon(self.epsilon, cap=policy.budget.epsilon_per_query_max)
        check_delta(self.delta, cap=policy.budget.delta_per_query_max)
        rs = self.resolve(schemas)
        schema = rs.schema
        if self.column is not None:
            col = _column(schema, self.column)
            if col.kind == "id":
                raise QueryError(f"{self.column!r} is an id column and is never aggregated; use count() instead.")
            if self.kind != "count" and not col.is_numeric:
                numeric = ", ".join(c.name for c in schema.numeric()) or "(none)"
                raise QueryError(
                    f"{self.kind} needs a numeric column, but {self.column!r} is {col.kind}; use one of: {numeric} "
                    "(or count(by=[...]) to count the rows of each category)."
                )
        for name in self.by:
            _group_column(schema, name)
        if self.where is not None:
            check_condition(self.where, schema)
        n_cells = self.n_cells(schema)
        if n_cells > policy.limits.max_groups:
            raise QueryError(
                f"This query has {n_cells} cells (groups x bins), more than the policy's limits.max_groups of "
                f"{policy.limits.max_groups}; group by fewer or coarser columns, or use fewer bins."
            )
        return rs

    def n_cells(self, schema: TableSchema) -> int:
        """Return the number of output cells: product of the group-by key counts, times ``bins`` (histogram)."""
        n = 1
        for name in self.by:
            n *= len(schema.group_keys(name))
        return n * (self.bins or 1)

    # -- canonical form -------------------------------------------------------------------------------------
    def normalised(self, schemas: Schemas | None = None) -> AggregateQuery:
        """Return an equivalent query in canonical form (see the module docstring).

        Without schemas, only what needs no schema is normalised (group-by order, legacy filter lists).
        """
        if schemas is None:
            return replace(self, by=tuple(sorted(self.by)), where=_sorted_legacy(self.where))
        rs = self.resolve(schemas)
        schema = rs.schema
        where = normal_form(_inline(self.where, rs), schema)
        column = self.column
        if self.kind == "count" and column is not None and column in schema and not schema.column(column).nullable:
            column = None
        used = _used_derived(rs, {*self.by, *([column] if column else []), *where.columns()})
        return replace(
            self,
            column=column,
            by=tuple(sorted(self.by)),
            where=None if isinstance(where, Const) and where.value else where,
            joins=tuple(Join(j.table, rs.schema.unit_column, j.suffix) for j in self.joins),
            derived=tuple(d for d in self.derived if d.name in used),
        )

    def canonical_form(self, schemas: Schemas | None = None) -> dict[str, Any]:
        """Return the JSON-able canonical form that :meth:`canonical_key` hashes."""
        n = self.normalised(schemas)
        common = {
            "dataset": n.dataset,
            "kind": n.kind,
            "column": n.column,
            "by": list(n.by),
            "epsilon": _float_text(n.epsilon),
            "delta": _float_text(n.delta),
            "q": None if n.q is None else _float_text(n.q),
            "bins": n.bins,
        }
        rs = n.resolve(schemas) if schemas is not None else None
        legacy = _legacy_form(n.where, None if rs is None else rs.schema) if not n.joins and not n.derived else None
        if legacy is not None:
            return {"format": "sandbox.query/1", **common, "where": legacy}
        where = n.where
        return {
            "format": "sandbox.query/2",
            **common,
            "where": None if where is None else where.to_dict(),
            "join": [j.to_dict() for j in n.joins],
            "derive": [_canonical_derived(d, rs) for d in n.derived],
        }

    def canonical_key(self, schemas: Schemas | None = None, versions: Mapping[str, int] | None = None) -> str:
        """sha256 hex of the canonical form; pass the schemas so that equivalent filters collide.

        ``versions`` (table name to registered version) is part of the key of a linked query, for the tables other
        than the base (whose version the ledger keys on): a new version of a joined table is a new question.
        """
        form = self.canonical_form(schemas)
        others = [t for t in self.tables() if t != self.dataset]
        if versions is not None and others:
            form["versions"] = {t: int(versions[t]) for t in others if t in versions}
        return canonical_sha256(form)

    # -- JSON ---------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form.

        ``where`` is ``{column: [values]}`` when it is a list of value filters, else a condition's JSON; ``join``
        and ``derive`` appear only when present.
        """
        out: dict[str, Any] = {
            "dataset": self.dataset,
            "kind": self.kind,
            "column": self.column,
            "by": list(self.by),
            "epsilon": self.epsilon,
            "delta": self.delta,
            "q": self.q,
            "bins": self.bins,
            "where": _where_json(self.where),
        }
        if self.joins:
            out["join"] = [j.to_dict() for j in self.joins]
        if self.derived:
            out["derive"] = [d.to_dict() for d in self.derived]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AggregateQuery:
        """Build and validate a query from its JSON form; unknown keys are an error."""
        if not isinstance(data, Mapping):
            raise QueryError(f"A query must be a JSON object, got {type(data).__name__}.")
        extra = set(data) - set(_KEYS)
        if extra:
            raise QueryError(f"Query has unknown keys {sorted(extra)}; allowed: {list(_KEYS)}.")
        missing = {"dataset", "kind", "epsilon"} - set(data)
        if missing:
            raise QueryError(f"Query is missing {sorted(missing)}.")
        by = data.get("by") or ()
        if isinstance(by, str) or not isinstance(by, list | tuple):
            raise QueryError(f"by must be a list of column names, got {by!r}.")
        joins = data.get("join") or ()
        derive = data.get("derive") or ()
        if not isinstance(joins, list | tuple) or not isinstance(derive, list | tuple):
            raise QueryError("join and derive must be lists (of joins and of derived columns).")
        return cls(
            dataset=data["dataset"],
            kind=cast(AggregateKind, data["kind"]),
            column=data.get("column"),
            epsilon=data["epsilon"],
            by=tuple(by),
            delta=data.get("delta", 0.0) if data.get("delta") is not None else 0.0,
            q=data.get("q"),
            bins=data.get("bins"),
            where=cast(Any, data.get("where") or None),
            joins=tuple(Join.from_dict(j) for j in joins),
            derived=tuple(Derived.from_dict(d) for d in derive),
        )


def _value_order(v: FilterValue) -> tuple[int, str]:
    return (0, str(v)) if isinstance(v, bool) else (1, v)


def _where_json(where: Condition | None) -> Any:
    if where is None:
        return {}
    parts = list(where.args) if isinstance(where, And) else [where]
    if all(isinstance(p, IsIn) and all(isinstance(v, str | bool) for v in p.values) for p in parts):
        cols = [p.column for p in parts]  # type: ignore[attr-defined]
        if len(set(cols)) == len(cols):
            return {p.column: list(p.values) for p in parts}  # type: ignore[attr-defined]
    return where.to_dict()


def _sorted_legacy(where: Condition | None) -> Condition | None:
    """Without a schema: value lists sorted and deduplicated, filters sorted by column (the first format's rule)."""
    if where is None:
        return None
    parts = list(where.args) if isinstance(where, And) else [where]
    if not all(isinstance(p, IsIn) for p in parts):
        return where
    items = sorted(
        (IsIn(p.column, tuple(sorted(set(p.values), key=_value_order))) for p in parts),  # type: ignore[attr-defined, arg-type]
        key=lambda p: p.column,
    )
    return items[0] if len(items) == 1 else And(tuple(items))


def _legacy_form(where: Condition | None, schema: TableSchema | None) -> list[list[Any]] | None:
    """Return the first format's ``where`` (sorted ``[column, sorted values]`` pairs), if the filter has its shape.

    With a schema, ``where`` is in normal form: a full value set of a non-nullable column is already gone.
    """
    if where is None:
        return []
    if schema is None:
        parts = list(where.args) if isinstance(where, And) else [where]
        if not all(isinstance(p, IsIn) for p in parts):
            return None
        pairs = [(p.column, p.values) for p in parts]  # type: ignore[attr-defined]
    else:
        found = legacy_filters(where, schema)
        if found is None:
            return None
        pairs = found
    if not all(isinstance(v, str | bool) for _, vals in pairs for v in vals):
        return None
    return [[c, sorted(set(v), key=_value_order)] for c, v in sorted(pairs)]


def _inline(where: Condition | None, rs: RelationSchema) -> Condition | None:
    """Replace a derived bool column used as a filter by its condition (``col("child")`` -> ``age < 18``)."""
    if where is None:
        return None
    conds = {n: d.value for n, d in rs.derived.items() if isinstance(d.value, Condition)}
    if not conds:
        return where

    def sub(c: Condition) -> Condition:
        if isinstance(c, And):
            return And(tuple(sub(a) for a in c.args))
        if isinstance(c, Or):
            return Or(tuple(sub(a) for a in c.args))
        if isinstance(c, Not):
            return Not(sub(c.arg))
        name = getattr(c, "column", None)
        if name not in conds:
            return c
        inner = sub(conds[name])
        if isinstance(c, IsNull):
            return Const(c.negate)  # a derived condition is never missing
        if isinstance(c, Compare):
            truth = (c.value is True) == (c.op == "==")
            return inner if truth else Not(inner)
        if isinstance(c, IsIn):
            vals = {v for v in c.values if isinstance(v, bool)}
            if vals == {True, False}:
                return Const(True)
            return inner if vals == {True} else Not(inner) if vals == {False} else Const(False)
        return c

    return sub(where)


def _used_derived(rs: RelationSchema, names: set[str]) -> set[str]:
    """Return the derived columns that ``names`` use, directly or through other derived columns."""
    used: set[str] = set()
    todo = [n for n in names if n in rs.derived]
    while todo:
        n = todo.pop()
        if n in used:
            continue
        used.add(n)
        v = rs.derived[n].value
        refs = {v.column} if isinstance(v, Bin) else v.columns() if isinstance(v, Condition) else set()
        todo.extend(r for r in refs if r in rs.derived)
    return used


def _canonical_derived(d: Derived, rs: RelationSchema | None) -> dict[str, Any]:
    """Return a derived column's canonical JSON: its condition(s) in normal form against the schema they read."""
    body = d.to_dict()
    if rs is None:
        return body
    v = d.value
    if isinstance(v, Condition):
        body["condition"] = normal_form(_inline(v, rs), rs.schema).to_dict()
    elif hasattr(v, "where") and v.where is not None:  # UnitCount / UnitSum: the condition reads its own table
        body["where"] = normal_form(v.where, _schema_for(rs, v.table)).to_dict()  # type: ignore[union-attr]
    if "edges" in body:
        body["edges"] = [_float_text(e) for e in body["edges"]]
        body["labels"] = list(rs.schema.group_keys(d.name))
    for key in ("lower", "upper"):
        if body.get(key) is not None:
            body[key] = _float_text(body[key])
    return body


def _schema_for(rs: RelationSchema, table: str) -> TableSchema:
    return rs.tables[table]


def _column(schema: TableSchema, name: str) -> Any:
    if name not in schema:
        raise QueryError(f"Table {schema.name!r} has no column {name!r}; its columns are: {', '.join(schema.names)}.")
    return schema.column(name)


def _group_column(schema: TableSchema, name: str) -> Any:
    col = _column(schema, name)
    if col.kind not in ("category", "bool"):
        cats = ", ".join(c.name for c in schema.categorical()) or "(none)"
        raise QueryError(
            f"Cannot group or filter by {name!r}: it is {col.kind}, not a category or bool. "
            f"Use one of: {cats} (or a histogram to bin a numeric column, or sb.bin to derive classes)."
        )
    return col
