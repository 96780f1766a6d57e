"""Request bodies of the vault's HTTP API: pydantic models that refuse unknown fields and non-finite numbers.

These check shape and type at the edge (so the OpenAPI schema describes every field and can be fuzzed); the
domain value objects (:class:`~sandbox._private.shared.query.AggregateQuery`,
:class:`~sandbox._private.shared.modelspec.FitQuery`) then check meaning against the schema and the policy.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from sandbox._private.shared.wire import NAME_PATTERN, RESULT_ID_PATTERN, RUN_ID_PATTERN

__all__ = [
    "AggregateRequest",
    "FitRequest",
    "SpecBody",
    "JoinBody",
    "RUN_ID_PATTERN",
    "NAME_PATTERN",
    "RESULT_ID_PATTERN",
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JoinBody(_Body):
    """Join a table of the same population on the privacy unit's key (``on`` may only name that key)."""

    table: str = Field(pattern=NAME_PATTERN)
    on: str | None = Field(None, pattern=NAME_PATTERN)
    rsuffix: str | None = Field(None, pattern=r"^[a-z0-9_]{1,32}$")


class AggregateRequest(_Body):
    """A DP aggregate: see :class:`sandbox._private.shared.query.AggregateQuery` for the meaning of each field."""

    dataset: str = Field(pattern=NAME_PATTERN)
    kind: Literal["count", "sum", "mean", "variance", "quantile", "histogram"]
    column: str | None = Field(None, pattern=NAME_PATTERN)
    by: list[str] = Field(default_factory=list, max_length=8)
    epsilon: float = Field(gt=0, allow_inf_nan=False)
    delta: float = Field(0.0, ge=0, lt=1, allow_inf_nan=False)
    q: float | None = Field(None, gt=0, lt=1, allow_inf_nan=False)
    bins: int | None = Field(None, ge=1, le=1000)
    # value lists {column: [values]}, or a condition {"op": ...} (sandbox._private.shared.expr, size-bounded there)
    where: dict[str, JsonValue] | None = None
    join: list[JoinBody] | None = Field(None, max_length=4)
    derive: list[dict[str, JsonValue]] | None = Field(None, max_length=32)

    def to_query_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="python", exclude_none=False)


class SpecBody(_Body):
    """A model spec: estimator from the allow-list, target, features, parameters, preprocessing."""

    estimator: str = Field(max_length=64)
    target: str = Field(pattern=NAME_PATTERN)
    features: list[str] = Field(min_length=1, max_length=200)
    params: dict[str, JsonValue] = Field(default_factory=dict)
    preprocessing: str = Field("onehot+minmax", max_length=64)


class FitRequest(_Body):
    """Fit ``spec`` on ``dataset`` in the vault with privacy loss ``epsilon``."""

    dataset: str = Field(pattern=NAME_PATTERN)
    spec: SpecBody
    epsilon: float = Field(gt=0, allow_inf_nan=False)
    join: list[JoinBody] | None = Field(None, max_length=4)
    derive: list[dict[str, JsonValue]] | None = Field(None, max_length=32)

    def to_fit_dict(self) -> dict[str, Any]:
        out = self.model_dump(mode="python")
        return {k: v for k, v in out.items() if v is not None or k not in ("join", "derive")}
