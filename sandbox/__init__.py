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

from ._private.shared.errors import (
    AuthError,
    BudgetExceededError,
    ComputeLimitError,
    FairnessInputError,
    IntegrityError,
    InternalError,
    NotFoundError,
    OutputPathError,
    PolicyError,
    QueryError,
    RegisterFieldError,
    ReleaseError,
    SandboxError,
    SandboxWarning,
    ScenarioError,
    SchemaError,
    StudyError,
    StudyRunError,
    VaultBusyError,
    VaultIdentityError,
)
from ._private.shared.policy import Policy, load_policy
from ._private.shared.schema import Column, TableSchema

if TYPE_CHECKING:
    from ._private.kernel.budget import Budget
    from ._private.kernel.conformance import check_frame
    from ._private.kernel.fitted import FittedModel
    from ._private.kernel.jobs import Job
    from ._private.kernel.release import ReleaseRequest
    from ._private.kernel.results import AuditResult, DPResult
    from ._private.kernel.review import Reviewer, connect_reviewer
    from ._private.kernel.studies.display import errorbar_plot
    from ._private.kernel.studies.ipython_ext import load_ipython_extension, unload_ipython_extension
    from ._private.kernel.studies.record import RunRecord
    from ._private.kernel.studies.runner import rerun_study, run_study
    from ._private.kernel.workspace import Dataset, Workspace, connect
    from ._private.shared.algoritmeregister import author_fields_help, check_author_fields
    from ._private.shared.dummy import dummy_frame
    from ._private.shared.expr import col
    from ._private.shared.modelspec import ModelSpec
    from ._private.shared.plan import cut, household_count, household_sum
    from ._private.shared.query import AggregateQuery
    from ._private.vault.outbox.verify import VerifyReport, verify_workspace
    from .fairness import FairnessAudit, audit_predictions

__version__ = "0.1.0"

# public name -> module that defines it (relative to this package)
_LAZY: dict[str, str] = {
    "Dataset": "._private.kernel.workspace",
    "Workspace": "._private.kernel.workspace",
    "connect": "._private.kernel.workspace",
    "AuditResult": "._private.kernel.results",
    "DPResult": "._private.kernel.results",
    "FittedModel": "._private.kernel.fitted",
    "Budget": "._private.kernel.budget",
    "check_frame": "._private.kernel.conformance",
    "Job": "._private.kernel.jobs",
    "dummy_frame": "._private.shared.dummy",
    "author_fields_help": "._private.shared.algoritmeregister",
    "check_author_fields": "._private.shared.algoritmeregister",
    "ReleaseRequest": "._private.kernel.release",
    "Reviewer": "._private.kernel.review",
    "connect_reviewer": "._private.kernel.review",
    "VerifyReport": "._private.vault.outbox.verify",
    "verify_workspace": "._private.vault.outbox.verify",
    "ModelSpec": "._private.shared.modelspec",
    "AggregateQuery": "._private.shared.query",
    "col": "._private.shared.expr",
    "cut": "._private.shared.plan",
    "household_count": "._private.shared.plan",
    "household_sum": "._private.shared.plan",
    "errorbar_plot": "._private.kernel.studies.display",
    "load_ipython_extension": "._private.kernel.studies.ipython_ext",
    "unload_ipython_extension": "._private.kernel.studies.ipython_ext",
    "RunRecord": "._private.kernel.studies.record",
    "rerun_study": "._private.kernel.studies.runner",
    "run_study": "._private.kernel.studies.runner",
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
    "Budget",
    "DPResult",
    "Dataset",
    "FairnessAudit",
    "FittedModel",
    "Job",
    "ModelSpec",
    "ReleaseRequest",
    "Reviewer",
    "RunRecord",
    "VerifyReport",
    "Workspace",
    "audit_predictions",
    "author_fields_help",
    "check_author_fields",
    "check_frame",
    "col",
    "connect",
    "connect_reviewer",
    "cut",
    "dummy_frame",
    "errorbar_plot",
    "household_count",
    "household_sum",
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
    "RegisterFieldError",
    "ReleaseError",
    "SandboxError",
    "SandboxWarning",
    "ScenarioError",
    "SchemaError",
    "StudyError",
    "StudyRunError",
    "ComputeLimitError",
    "VaultBusyError",
    "VaultIdentityError",
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
