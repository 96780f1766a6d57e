"""The aggregate query: what an analyst asks of a protected table, as a self-validating value object.

An :class:`AggregateQuery` travels as JSON from the client to the vault (``to_dict`` / ``from_dict``), is checked
against the public schema and the policy (:meth:`AggregateQuery.check`), costed and answered by the DP engine,
and stored in the ledger under :meth:`AggregateQuery.canonical_key`. The canonical key makes trivially equivalent
rewrites of one query collide, so that asking "the same question" twice returns the stored answer and costs
nothing (DESIGN invariant 3): group-by columns are sorted, filters are sorted with their value sets sorted and
deduplicated, floats are normalised, and (given the schema) a filter that lists every category of its column is
dropped and ``count(column)`` on a non-nullable column becomes ``count()``. Epsilon and delta are part of the
key: the same question at a different epsilon is a different query.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, cast

from .canonical import canonical_sha256
from .errors import QueryError
from .wire import NAME_RE

if TYPE_CHECKING:
    from .policy import Policy
    from .schema import TableSchema

__all__ = ["AggregateKind", "AggregateQuery", "FilterValue", "KINDS", "check_epsilon", "check_delta"]

AggregateKind = Literal["count", "sum", "mean", "variance", "quantile", "histogram"]
FilterValue = str | bool
KINDS: tuple[str, ...] = ("count", "sum", "mean", "variance", "quantile", "histogram")
_NAME = NAME_RE
_MAX_BINS = 1000
_KEYS = ("dataset", "kind", "column", "by", "epsilon", "delta", "q", "bins", "where")


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


def _normalise_where(where: object) -> tuple[tuple[str, tuple[FilterValue, ...]], ...]:
    """Accept a mapping ``{column: values}`` or pairs ``[(column, values)]``; return a tuple of pairs."""
    if where is None:
        return ()
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


def _float_text(x: float) -> str:
    """Return a canonical text for a float: ``repr`` of the float after ``+ 0.0`` (so 1 == 1.0 and -0.0 == 0.0)."""
    return repr(float(x) + 0.0)


@dataclass(frozen=True)
class AggregateQuery:
    """One DP aggregate over a protected table, optionally filtered and grouped.

    Parameters
    ----------
    dataset : str
        Registered dataset name.
    kind : {"count", "sum", "mean", "variance", "quantile", "histogram"}
        The aggregate.
    column : str, optional
        The value column. ``None`` is allowed only for ``count`` (count rows); ``count(column)`` counts the rows
        where ``column`` is not missing.
    by : tuple of str
        Categorical or bool columns to group by. Group keys come from the schema, so empty groups appear too.
    epsilon : float
        Privacy loss of this query: finite and > 0 (the policy caps it, see :meth:`check`).
    delta : float
        0 for pure epsilon-DP (Laplace / geometric noise); > 0 switches count, sum, mean, variance and histogram
        to the analytic Gaussian mechanism.
    q : float, optional
        Quantile in (0, 1) for ``quantile`` (the median is 0.5); must be ``None`` otherwise.
    bins : int, optional
        For ``histogram``: number of equal-width bins over the column's schema bounds (1-1000).
    where : mapping or pairs, optional
        Filters ``{column: [allowed values]}`` on categorical or bool columns, all of which must hold.

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
    where: tuple[tuple[str, tuple[FilterValue, ...]], ...] = ()

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
        object.__setattr__(self, "where", _normalise_where(self.where))
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

    # -- checks against the public schema and the policy ---------------------------------------------------
    def check(self, schema: TableSchema, policy: Policy) -> None:
        """Check columns, types, group count and the per-query caps against ``schema`` and ``policy``.

        Raises
        ------
        QueryError
            Unknown column, a column of the wrong kind for the aggregate, a filter value that is not a category,
            too many groups, or epsilon/delta above the policy's per-query cap.
        """
        check_epsilon(self.epsilon, cap=policy.budget.epsilon_per_query_max)
        check_delta(self.delta, cap=policy.budget.delta_per_query_max)
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
        for name, values in self.where:
            _check_filter(schema, name, values)
        n_cells = self.n_cells(schema)
        if n_cells > policy.limits.max_groups:
            raise QueryError(
                f"This query has {n_cells} cells (groups x bins), more than the policy's limits.max_groups of "
                f"{policy.limits.max_groups}; group by fewer or coarser columns, or use fewer bins."
            )

    def n_cells(self, schema: TableSchema) -> int:
        """Return the number of output cells: product of the group-by key counts, times ``bins`` (histogram)."""
        n = 1
        for name in self.by:
            n *= len(schema.group_keys(name))
        return n * (self.bins or 1)

    # -- canonical form -------------------------------------------------------------------------------------
    def normalised(self, schema: TableSchema | None = None) -> AggregateQuery:
        """Return an equivalent query in canonical form (see the module docstring)."""
        where = tuple(sorted((c, tuple(sorted(set(v), key=_value_order))) for c, v in self.where))
        column = self.column
        if schema is not None:
            where = tuple((c, v) for c, v in where if not _lists_every_key(schema, c, v))
            if self.kind == "count" and column is not None and column in schema and not schema.column(column).nullable:
                column = None
        return replace(self, column=column, by=tuple(sorted(self.by)), where=where)

    def canonical_form(self, schema: TableSchema | None = None) -> dict[str, Any]:
        """Return the JSON-able canonical form that :meth:`canonical_key` hashes."""
        n = self.normalised(schema)
        return {
            "format": "sandbox.query/1",
            "dataset": n.dataset,
            "kind": n.kind,
            "column": n.column,
            "by": list(n.by),
            "epsilon": _float_text(n.epsilon),
            "delta": _float_text(n.delta),
            "q": None if n.q is None else _float_text(n.q),
            "bins": n.bins,
            "where": [[c, list(v)] for c, v in n.where],
        }

    def canonical_key(self, schema: TableSchema | None = None) -> str:
        """sha256 hex of the canonical form; pass the schema so that filters listing every category collide."""
        return canonical_sha256(self.canonical_form(schema))

    # -- JSON ---------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (``where`` as ``{column: [values]}``)."""
        return {
            "dataset": self.dataset,
            "kind": self.kind,
            "column": self.column,
            "by": list(self.by),
            "epsilon": self.epsilon,
            "delta": self.delta,
            "q": self.q,
            "bins": self.bins,
            "where": {c: list(v) for c, v in self.where},
        }

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
        return cls(
            dataset=data["dataset"],
            kind=cast(AggregateKind, data["kind"]),
            column=data.get("column"),
            epsilon=data["epsilon"],
            by=tuple(by),
            delta=data.get("delta", 0.0) if data.get("delta") is not None else 0.0,
            q=data.get("q"),
            bins=data.get("bins"),
            where=cast(Any, data.get("where") or ()),
        )


def _value_order(v: FilterValue) -> tuple[int, str]:
    return (0, str(v)) if isinstance(v, bool) else (1, v)


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
            f"Use one of: {cats} (or a histogram to bin a numeric column)."
        )
    return col


def _check_filter(schema: TableSchema, name: str, values: tuple[FilterValue, ...]) -> None:
    col = _group_column(schema, name)
    keys = schema.group_keys(name)
    bad = [v for v in values if not any(v is k or (type(v) is type(k) and v == k) for k in keys)]
    if bad:
        raise QueryError(
            f"where[{name!r}] has values {bad!r} that are not categories of {name!r}; allowed: {list(keys)!r}."
        )
    del col


def _lists_every_key(schema: TableSchema, name: str, values: tuple[FilterValue, ...]) -> bool:
    if name not in schema or schema.column(name).kind not in ("category", "bool"):
        return False
    if schema.column(name).nullable:
        return False  # the filter still removes missing values
    keys = schema.group_keys(name)
    return len(values) == len(keys) and all(any(v is k or v == k for v in values) for k in keys)
