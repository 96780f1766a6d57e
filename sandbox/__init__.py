"""Analysis sandbox for Dutch poverty and debt data.

Analysts explore schema-shaped dummy data and ask a vault process for differentially private statistics and
models; nothing leaves except through the release gate (disclosure checks, fairness audit, two-person review).
See ``docs/`` and the README.

The public names below are imported on first use (PEP 562), so ``import sandbox`` and the ``sandbox`` command
start quickly: scikit-learn, fairlearn and the vault's web stack load only when a name that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
    StudyError,
    StudyRunError,
)
from ._private.policy import Policy, load_policy
from ._private.schema import Column, TableSchema

if TYPE_CHECKING:
    from ._private.client import Dataset, Workspace, connect
    from ._private.client_results import AuditResult, DPResult, FittedModel
    from ._private.conformance import check_frame
    from ._private.dummy import dummy_frame
    from ._private.gate.client import ReleaseRequest
    from ._private.gate.verify import VerifyReport, verify_workspace
    from ._private.modelspec import ModelSpec
    from ._private.query import AggregateQuery
    from ._private.studies.display import errorbar_plot
    from ._private.studies.ipython_ext import load_ipython_extension, unload_ipython_extension
    from ._private.studies.record import RunRecord
    from ._private.studies.runner import rerun_study, run_study
    from .fairness import FairnessAudit, audit_predictions

__version__ = "0.1.0"

# public name -> module that defines it (relative to this package)
_LAZY: dict[str, str] = {
    "Dataset": "._private.client",
    "Workspace": "._private.client",
    "connect": "._private.client",
    "AuditResult": "._private.client_results",
    "DPResult": "._private.client_results",
    "FittedModel": "._private.client_results",
    "check_frame": "._private.conformance",
    "dummy_frame": "._private.dummy",
    "ReleaseRequest": "._private.gate.client",
    "VerifyReport": "._private.gate.verify",
    "verify_workspace": "._private.gate.verify",
    "ModelSpec": "._private.modelspec",
    "AggregateQuery": "._private.query",
    "errorbar_plot": "._private.studies.display",
    "load_ipython_extension": "._private.studies.ipython_ext",
    "unload_ipython_extension": "._private.studies.ipython_ext",
    "RunRecord": "._private.studies.record",
    "rerun_study": "._private.studies.runner",
    "run_study": "._private.studies.runner",
    "FairnessAudit": ".fairness",
    "audit_predictions": ".fairness",
}

__all__ = [
    "__version__",
    "Column",
    "TableSchema",
    "Policy",
    "load_policy",
    "AggregateQuery",
    "AuditResult",
    "DPResult",
    "Dataset",
    "FairnessAudit",
    "FittedModel",
    "ModelSpec",
    "ReleaseRequest",
    "RunRecord",
    "VerifyReport",
    "Workspace",
    "audit_predictions",
    "check_frame",
    "connect",
    "dummy_frame",
    "errorbar_plot",
    "load_ipython_extension",
    "rerun_study",
    "run_study",
    "unload_ipython_extension",
    "verify_workspace",
    "AuthError",
    "BudgetExceededError",
    "FairnessInputError",
    "IntegrityError",
    "InternalError",
    "NotFoundError",
    "OutputPathError",
    "PolicyError",
    "QueryError",
    "ReleaseError",
    "SandboxError",
    "ScenarioError",
    "SchemaError",
    "StudyError",
    "StudyRunError",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
