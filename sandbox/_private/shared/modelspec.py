"""Model specifications: which DP estimator to fit on which columns, as a JSON value object.

A :class:`ModelSpec` names an estimator from an allow-list (never code or a pickle), its parameters (validated
against a table, in the manner of scikit-learn's ``_parameter_constraints``), the target, the features and the
preprocessing. The preprocessing is fixed by the public schema: categories are one-hot encoded in schema order,
bools become 0/1, and int/float features are min-max scaled to [0, 1] with the schema bounds (values outside are
clipped). Every row therefore has an L2 norm of at most ``sqrt(number of features)``, which is the ``data_norm``
the logistic regression receives; no bound is ever read from the rows (DESIGN invariant 4).

:class:`FitQuery` couples a spec with a dataset and epsilon; it is what the ledger stores and keys.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .canonical import canonical_sha256
from .errors import QueryError
from .query import check_epsilon

if TYPE_CHECKING:
    from .policy import Policy
    from .schema import TableSchema

__all__ = ["ESTIMATORS", "PREPROCESSING", "ModelSpec", "FitQuery", "ParamRule"]

PREPROCESSING: tuple[str, ...] = ("onehot+minmax",)


@dataclass(frozen=True)
class ParamRule:
    """One allowed parameter: a type check, a range description for the message, and the default."""

    test: Callable[[Any], bool]
    describe: str
    default: Any


def _int_in(lo: int, hi: int, default: int) -> ParamRule:
    return ParamRule(
        lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi,
        f"a whole number in [{lo}, {hi}]",
        default,
    )


def _float_in(lo: float, hi: float, default: float) -> ParamRule:
    return ParamRule(
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and lo < v <= hi,
        f"a number in ({lo:g}, {hi:g}]",
        default,
    )


_BOOL = ParamRule(lambda v: isinstance(v, bool), "true or false", True)

#: The allow-list: estimator name -> (diffprivlib.models class name, task, parameter table).
ESTIMATORS: Mapping[str, tuple[str, str, Mapping[str, ParamRule]]] = MappingProxyType(
    {
        "logistic_regression": (
            "LogisticRegression",
            "classification",
            {
                "C": _float_in(0.0, 1e6, 1.0),
                "max_iter": _int_in(1, 10_000, 100),
                "tol": _float_in(0.0, 1.0, 1e-4),
                "fit_intercept": _BOOL,
            },
        ),
        "gaussian_nb": (
            "GaussianNB",
            "classification",
            {"var_smoothing": _float_in(0.0, 1.0, 1e-9)},
        ),
        "random_forest": (
            "RandomForestClassifier",
            "classification",
            {"n_estimators": _int_in(1, 200, 10), "max_depth": _int_in(1, 15, 5)},
        ),
        "linear_regression": (
            "LinearRegression",
            "regression",
            {"fit_intercept": _BOOL},
        ),
    }
)


def _freeze_params(estimator: str, params: Mapping[str, Any]) -> MappingProxyType[str, Any]:
    if not isinstance(params, Mapping):
        raise QueryError(f"params must be a mapping of parameter names to values, got {type(params).__name__}.")
    table = ESTIMATORS[estimator][2]
    out: dict[str, Any] = {}
    for name, value in params.items():
        if name not in table:
            allowed = ", ".join(sorted(table)) or "(none)"
            raise QueryError(f"Unknown parameter {name!r} for {estimator}; allowed parameters: {allowed}.")
        rule = table[name]
        if not rule.test(value):
            raise QueryError(f"The {name!r} parameter of {estimator} must be {rule.describe}. Got {value!r} instead.")
        out[name] = float(value) if isinstance(value, float) else value
    return MappingProxyType(dict(sorted(out.items())))


@dataclass(frozen=True)
class ModelSpec:
    """A DP model to fit in the vault.

    Parameters
    ----------
    estimator : {"logistic_regression", "gaussian_nb", "random_forest", "linear_regression"}
        Maps to ``diffprivlib.models`` LogisticRegression, GaussianNB, RandomForestClassifier, LinearRegression.
    target : str
        Target column: category or bool for classifiers, int/float/bool for the linear regression.
    features : tuple of str
        Feature columns (category, bool, int or float), never the target, an id or a forbidden feature.
    params : mapping, optional
        Estimator parameters from the allow-list table :data:`ESTIMATORS` (unknown names are an error).
    preprocessing : {"onehot+minmax"}
        One-hot categories in schema order (the first category dropped for ``linear_regression``, whose least
        squares would otherwise be singular), bools as 0/1, numeric min-max scaled by schema bounds and clipped.

    Raises
    ------
    QueryError
        Unknown estimator or parameter, invalid value, or malformed feature list.
    """

    estimator: str
    target: str
    features: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    preprocessing: str = "onehot+minmax"

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise QueryError(f"Unknown estimator {self.estimator!r}; use one of: {', '.join(ESTIMATORS)}.")
        if not isinstance(self.target, str) or not self.target:
            raise QueryError(f"target must be a column name, got {self.target!r}.")
        feats = (self.features,) if isinstance(self.features, str) else tuple(self.features)
        if not feats or not all(isinstance(f, str) and f for f in feats):
            raise QueryError(f"features must be a non-empty list of column names, got {self.features!r}.")
        if len(set(feats)) != len(feats):
            raise QueryError(f"features lists a column twice: {list(feats)}; list each feature once.")
        if self.target in feats:
            raise QueryError(f"The target {self.target!r} is also listed as a feature; remove it from features.")
        object.__setattr__(self, "features", feats)
        object.__setattr__(self, "params", _freeze_params(self.estimator, self.params))
        if self.preprocessing not in PREPROCESSING:
            raise QueryError(f"Unknown preprocessing {self.preprocessing!r}; use one of: {', '.join(PREPROCESSING)}.")

    def __hash__(self) -> int:
        return hash(self.canonical_key())

    @property
    def task(self) -> str:
        """``"classification"`` or ``"regression"``."""
        return ESTIMATORS[self.estimator][1]

    @property
    def diffprivlib_class(self) -> str:
        """Name of the ``diffprivlib.models`` class that fits this spec."""
        return ESTIMATORS[self.estimator][0]

    def resolved_params(self) -> dict[str, Any]:
        """All parameters of the estimator, with defaults filled in."""
        table = ESTIMATORS[self.estimator][2]
        return {name: self.params.get(name, rule.default) for name, rule in sorted(table.items())}

    def check(self, schema: TableSchema, policy: Policy) -> None:
        """Check target and features against the public schema and the policy.

        Raises
        ------
        QueryError
            Person-level table, unknown column, id column, a target of the wrong kind, or a feature the policy
            refuses (:meth:`policy_refusals`).
        """
        self.check_schema(schema)
        refusals = self.policy_refusals(policy)
        if refusals:
            raise QueryError(" ".join(refusals))

    def policy_refusals(self, policy: Policy) -> list[str]:
        """Why the policy refuses this spec's features (empty when it does not), each naming the fix.

        A feature the policy forbids (``forbidden_features``, also as a one-hot name such as ``nationality_NL``)
        is refused before anything is charged. The answer depends only on the spec and the policy.
        """
        forbidden = sorted(f for f in self.features if _matches_any(f, policy.forbidden_features))
        if not forbidden:
            return []
        return [f"Features {forbidden} are forbidden by the policy (forbidden_features); remove them from features."]

    def policy_warnings(self, policy: Policy) -> list[str]:
        """Say what the gate will ask reviewers about these features (direct distinction), for ``cost()``."""
        direct = sorted(set(self.features) & set(policy.fairness.protected_attributes))
        if not direct:
            return []
        return [
            f"Features {direct} are protected attributes (fairness.protected_attributes): using them directly is "
            "direct distinction; the release gate sends the model to review, and reviewers need a legal "
            "justification. Leave them out unless you have one."
        ]

    def check_schema(self, schema: TableSchema) -> None:
        """Check target and features against the public schema alone (see :meth:`check`)."""
        if schema.max_rows_per_unit != 1:
            raise QueryError(
                f"Models are fitted on one row per privacy unit, but {schema.name!r} allows "
                f"{schema.max_rows_per_unit} rows per {schema.privacy_unit}; fit on the household-level table "
                "(aggregate person rows to their household first)."
            )
        for name in (self.target, *self.features):
            if name not in schema:
                raise QueryError(
                    f"Table {schema.name!r} has no column {name!r}; its columns are: {', '.join(schema.names)}."
                )
            if schema.column(name).kind == "id":
                raise QueryError(f"{name!r} is an id column; ids are never model inputs or targets.")
        kind = schema.column(self.target).kind
        if self.task == "classification" and kind not in ("category", "bool"):
            raise QueryError(
                f"{self.estimator} is a classifier, but target {self.target!r} is {kind}; use a category or bool "
                "target, or estimator='linear_regression'."
            )
        if self.task == "regression" and kind == "category":
            raise QueryError(
                f"linear_regression needs a numeric target, but {self.target!r} is a category; use a classifier."
            )

    # -- JSON and keys -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "estimator": self.estimator,
            "target": self.target,
            "features": list(self.features),
            "params": dict(self.params),
            "preprocessing": self.preprocessing,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Build and validate a spec from its JSON form; unknown keys are an error."""
        if not isinstance(data, Mapping):
            raise QueryError(f"A model spec must be a JSON object, got {type(data).__name__}.")
        allowed = {"estimator", "target", "features", "params", "preprocessing"}
        extra = set(data) - allowed
        if extra:
            raise QueryError(f"Model spec has unknown keys {sorted(extra)}; allowed: {sorted(allowed)}.")
        missing = {"estimator", "target", "features"} - set(data)
        if missing:
            raise QueryError(f"Model spec is missing {sorted(missing)}.")
        feats = data["features"]
        if isinstance(feats, str) or not isinstance(feats, list | tuple):
            raise QueryError(f"features must be a list of column names, got {feats!r}.")
        return cls(
            estimator=data["estimator"],
            target=data["target"],
            features=tuple(feats),
            params=data.get("params") or {},
            preprocessing=data.get("preprocessing", "onehot+minmax"),
        )

    def canonical_form(self) -> dict[str, Any]:
        """Canonical JSON-able form: parameters with defaults filled in, floats normalised.

        Feature order is kept: it fixes the order of the model's coefficients, so two orders are two models.
        """
        params = {k: (repr(float(v) + 0.0) if isinstance(v, float) else v) for k, v in self.resolved_params().items()}
        return {"format": "sandbox.modelspec/1", **self.to_dict(), "params": params}

    def canonical_key(self) -> str:
        """sha256 hex of :meth:`canonical_form`."""
        return _sha(self.canonical_form())


@dataclass(frozen=True)
class FitQuery:
    """A request to fit ``spec`` on ``dataset`` with privacy loss ``epsilon`` (pure epsilon-DP, delta 0).

    This is the unit the ledger charges and stores; its :meth:`canonical_key` includes epsilon.
    """

    dataset: str
    spec: ModelSpec
    epsilon: float

    def __post_init__(self) -> None:
        if not isinstance(self.spec, ModelSpec):
            raise QueryError(f"spec must be a ModelSpec, got {type(self.spec).__name__}.")
        object.__setattr__(self, "epsilon", check_epsilon(self.epsilon))

    @property
    def delta(self) -> float:
        """Always 0: the diffprivlib models used here are pure epsilon-DP."""
        return 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"dataset": self.dataset, "spec": self.spec.to_dict(), "epsilon": self.epsilon}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FitQuery:
        """Build from JSON; unknown keys are an error."""
        if not isinstance(data, Mapping):
            raise QueryError(f"A fit request must be a JSON object, got {type(data).__name__}.")
        extra = set(data) - {"dataset", "spec", "epsilon"}
        if extra:
            raise QueryError(f"Fit request has unknown keys {sorted(extra)}; allowed: dataset, spec, epsilon.")
        missing = {"dataset", "spec", "epsilon"} - set(data)
        if missing:
            raise QueryError(f"Fit request is missing {sorted(missing)}.")
        return cls(dataset=data["dataset"], spec=ModelSpec.from_dict(data["spec"]), epsilon=data["epsilon"])

    def canonical_key(self) -> str:
        """sha256 hex of dataset, the spec's canonical form and the normalised epsilon."""
        return _sha(
            {
                "format": "sandbox.fit/1",
                "dataset": self.dataset,
                "spec": self.spec.canonical_form(),
                "epsilon": repr(self.epsilon + 0.0),
            }
        )


def _matches_any(feature: str, names: Sequence[str]) -> bool:
    """Whether ``feature`` is one of ``names`` or a one-hot column of one (``nationality_NL``, ``nationality=NL``)."""
    return any(feature == n or feature.startswith((f"{n}_", f"{n}=")) for n in names)


_sha = canonical_sha256
