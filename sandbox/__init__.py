"""Analysis sandbox for Dutch poverty and debt data.

Analysts explore schema-shaped dummy data and ask a vault process for differentially private statistics and
models; nothing leaves except through the release gate (disclosure checks, fairness audit, two-person review).
See ``docs/`` and the README.
"""

from __future__ import annotations

from ._private.errors import (
    AuthError,
    BudgetExceededError,
    FairnessInputError,
    IntegrityError,
    InternalError,
    NotFoundError,
    OutputPathError,
    PolicyError,
    QueryError,
    ReleaseError,
    SandboxError,
    ScenarioError,
    SchemaError,
)
from ._private.policy import Policy, load_policy
from ._private.schema import Column, TableSchema

__version__ = "0.1.0"

_errors = [
    "SandboxError",
    "SchemaError",
    "PolicyError",
    "ScenarioError",
    "QueryError",
    "BudgetExceededError",
    "NotFoundError",
    "AuthError",
    "FairnessInputError",
    "ReleaseError",
    "IntegrityError",
    "OutputPathError",
    "InternalError",
]
_values = ["Column", "TableSchema", "Policy", "load_policy"]

__all__ = ["__version__", *_values, *_errors]
