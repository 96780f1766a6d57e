"""The DP engine's value objects: what a query costs, a checked request, an answer and a fitted model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox._private.shared.modelspec import FitQuery, ModelSpec
from sandbox._private.shared.query import AggregateQuery
from sandbox._private.shared.schema import TableSchema

__all__ = ["Cost", "Checked", "Answer", "FittedAnswer"]


@dataclass(frozen=True)
class Cost:
    """Privacy loss of one query: what the ledger charges."""

    epsilon: float
    delta: float = 0.0

    def to_dict(self) -> dict[str, float]:
        """Plain-JSON form."""
        return {"epsilon": self.epsilon, "delta": self.delta}


@dataclass(frozen=True)
class Checked:
    """A query or fit that :meth:`DPEngine.check` validated against ``schema`` and the policy, with its cost.

    The vault checks a request once, at its edge (the service), and hands this on: :meth:`DPEngine.answer` and
    :meth:`DPEngine.fit` then skip their own check when the table's schema is the one checked against.
    """

    item: AggregateQuery | FitQuery
    cost: Cost
    schema: TableSchema = field(repr=False)


@dataclass(frozen=True)
class Answer:
    """A DP answer to an aggregate query.

    Attributes
    ----------
    public : dict
        JSON-able; safe to send: ``rows`` (group keys, ``value``, ``noise_scale``, ``ci95``, ``ci95_low``,
        ``ci95_high`` per cell: ``[ci95_low, ci95_high]`` holds the exact value with probability >= 95%, ``ci95`` is
        the symmetric half-width around ``value`` that contains it), ``columns``, ``mechanisms`` (each with its
        exact name, grid and scale), ``epsilon``, ``delta``, ``sensitivity``, ``n_groups``, ``rows_per_unit``,
        ``query``.
    private : dict
        JSON-able; NEVER sent to the client. Per cell: true ``rows`` and ``units`` (households), and for sums,
        means and variances the ``total``, ``abs_total``, ``top1`` and ``top2`` household contributions for the
        dominance and p-ratio rules.
    """

    public: dict[str, Any]
    private: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class FittedAnswer:
    """A DP model fitted in the vault.

    Attributes
    ----------
    public : dict
        JSON-able parameters (see :mod:`sandbox._private.shared.model_params`), feature names, preprocessing, epsilon.
    private : dict
        ``n_rows`` used and dropped (never sent).
    spec : ModelSpec
        The spec that was fitted.
    model : object or None
        The diffprivlib estimator (vault only; not stored). ``None`` after a reload from the ledger.
    """

    public: dict[str, Any]
    private: dict[str, Any] = field(repr=False)
    spec: ModelSpec | None = None
    model: Any = field(default=None, repr=False, compare=False)
