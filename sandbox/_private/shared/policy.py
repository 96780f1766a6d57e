"""Policies: budget, privacy unit, disclosure (SDC) rules, fairness rules, forbidden features, review rules.

A policy is a YAML file in ``policies/``. It is validated on load (unknown keys and impossible values are errors
that name the field and the fix), and its sha256 (of the exact file bytes) is recorded with every release.
Each section is a frozen pydantic model so the parameter rules are declared once and drive the message.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import PolicyError

__all__ = [
    "Policy",
    "BudgetRules",
    "ContributionRules",
    "DisclosureRules",
    "FairnessRules",
    "MetricThreshold",
    "ReviewRules",
    "LimitRules",
    "GateRules",
    "WorkerRules",
    "ModelRules",
    "load_policy",
    "default_policy_path",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class BudgetRules(_Section):
    """Privacy budget per dataset (and optionally per analyst), and the per-query cap."""

    epsilon_per_dataset: float = Field(10.0, gt=0, allow_inf_nan=False)
    epsilon_per_analyst: float | None = Field(None, gt=0, allow_inf_nan=False)
    epsilon_per_query_max: float = Field(2.0, gt=0, allow_inf_nan=False)
    delta_per_dataset: float = Field(1e-6, ge=0, lt=1, allow_inf_nan=False)
    delta_per_query_max: float = Field(1e-7, ge=0, lt=1, allow_inf_nan=False)
    epsilon_per_release_max: float = Field(5.0, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _caps(self) -> BudgetRules:
        if self.epsilon_per_query_max > self.epsilon_per_dataset:
            raise ValueError(
                f"epsilon_per_query_max ({self.epsilon_per_query_max}) exceeds epsilon_per_dataset "
                f"({self.epsilon_per_dataset}); lower the cap or raise the budget"
            )
        if self.epsilon_per_analyst is not None and self.epsilon_per_analyst > self.epsilon_per_dataset:
            raise ValueError(
                f"epsilon_per_analyst ({self.epsilon_per_analyst}) exceeds epsilon_per_dataset "
                f"({self.epsilon_per_dataset})"
            )
        return self


class ContributionRules(_Section):
    """How much one privacy unit may contribute to a person- or event-level query."""

    max_rows_per_unit: int = Field(8, ge=1, le=1000)


class DisclosureRules(_Section):
    """Statistical disclosure control rules applied by the gate (as ACRO does)."""

    min_count: int = Field(10, ge=1)
    dominance_n: int = Field(2, ge=1)
    dominance_k: float = Field(0.85, gt=0, le=1)
    p_ratio: float = Field(0.10, ge=0, le=1)
    zeros: Literal["pass", "review", "fail"] = "review"


class MetricThreshold(_Section):
    """Limits on a disparity: above ``review`` needs a reviewer's judgement, above ``fail`` blocks."""

    review: float = Field(ge=0, allow_inf_nan=False)
    fail: float = Field(ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _order(self) -> MetricThreshold:
        if self.review > self.fail:
            raise ValueError(f"review ({self.review}) must not exceed fail ({self.fail})")
        return self


def _default_thresholds() -> dict[str, MetricThreshold]:
    return {
        "demographic_parity_difference": MetricThreshold(review=0.05, fail=0.10),
        "equalized_odds_difference": MetricThreshold(review=0.05, fail=0.10),
        "equal_opportunity_difference": MetricThreshold(review=0.05, fail=0.10),
        "predictive_parity_difference": MetricThreshold(review=0.05, fail=0.10),
    }


class FairnessRules(_Section):
    """Which fairness definition applies, for which attributes, and how strict."""

    definition: Literal["equal_outcomes", "equal_error_rates"] = "equal_error_rates"
    definition_reason: str = ""
    protected_attributes: tuple[str, ...] = (
        "gender",
        "age_band",
        "migration_background",
        "household_type",
        "disability",
    )
    intersections: tuple[tuple[str, ...], ...] = (("gender", "migration_background"),)
    min_group_size: int = Field(50, ge=1)
    thresholds: dict[str, MetricThreshold] = Field(default_factory=_default_thresholds)
    confidence_level: float = Field(0.95, gt=0, lt=1)
    proxy_auc_threshold: float = Field(0.70, ge=0.5, le=1)
    audit_epsilon: float = Field(0.5, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _intersections_known(self) -> FairnessRules:
        known = set(self.protected_attributes)
        for combo in self.intersections:
            if len(combo) < 2:
                raise ValueError(f"intersection {list(combo)} needs at least two attributes")
            unknown = [a for a in combo if a not in known]
            if unknown:
                raise ValueError(f"intersection {list(combo)} names {unknown}, which are not in protected_attributes")
        return self


class ReviewRules(_Section):
    """How many distinct reviewers (never the author) must approve each kind of release."""

    approvals_table: int = Field(1, ge=1, le=10)
    approvals_model: int = Field(2, ge=1, le=10)


class LimitRules(_Section):
    """Resource limits that keep one request from exhausting the vault."""

    max_groups: int = Field(10_000, ge=1)
    max_dummy_rows: int = Field(1_000_000, ge=1)
    max_request_bytes: int = Field(1_000_000, ge=1024)
    max_items_per_release: int = Field(50, ge=1)


class GateRules(_Section):
    """What the release gate allows an analyst: requests per day, the flag for reviewers, the DP disclosure test."""

    #: Release requests one analyst may create per dataset per UTC day (blocked ones included).
    max_requests_per_day: int = Field(20, ge=1, le=10_000)
    #: Blocked requests (or requests whose exact checks fail) of one analyst on one dataset in one UTC day from which
    #: reviewers are shown a flag.
    flag_blocked_per_day: int = Field(3, ge=1, le=10_000)
    #: Epsilon of the DP disclosure test the gate charges for a table item whose released values are not noisy
    #: household counts (sums, means, variances, quantiles, person-level counts); 0 leaves those rules to reviewers.
    sdc_test_epsilon: float = Field(0.1, ge=0, le=2.0, allow_inf_nan=False)


class WorkerRules(_Section):
    """The vault's worker processes: how many, how much each job may use, and how many jobs one analyst may have."""

    query_processes: int = Field(0, ge=0, le=64)
    fit_processes: int = Field(4, ge=1, le=64)
    queue_per_lane: int = Field(64, ge=0, le=10_000)
    max_running_per_analyst: int = Field(2, ge=1, le=64)
    max_waiting_per_analyst: int = Field(32, ge=1, le=10_000)
    query_cpu_seconds: float = Field(60.0, ge=1, allow_inf_nan=False)
    query_wall_seconds: float = Field(120.0, ge=1, allow_inf_nan=False)
    fit_cpu_seconds: float = Field(3600.0, ge=1, allow_inf_nan=False)
    fit_wall_seconds: float = Field(1800.0, ge=1, allow_inf_nan=False)


class ModelRules(_Section):
    """How a model fit is charged: the share of its epsilon spent on its held-out quality figures."""

    #: Share of a fit's epsilon spent in the vault on the noisy counts behind its quality figures (accuracy, AUC,
    #: calibration, or RMSE) on the held-out households; the rest fits the model. One charge covers both. 0 turns
    #: the figures and the held-out split off (the model is then fitted on every household).
    quality_epsilon_share: float = Field(0.1, ge=0, le=0.5, allow_inf_nan=False)


class Policy(_Section):
    """A complete, validated policy. Build it with :func:`load_policy`."""

    version: Literal[1] = 1
    name: str = "default"
    privacy_unit: Literal["household", "person"] = "household"
    budget: BudgetRules = Field(default_factory=BudgetRules)
    contribution: ContributionRules = Field(default_factory=ContributionRules)
    disclosure: DisclosureRules = Field(default_factory=DisclosureRules)
    fairness: FairnessRules = Field(default_factory=FairnessRules)
    forbidden_features: tuple[str, ...] = ("nationality",)
    review: ReviewRules = Field(default_factory=ReviewRules)
    limits: LimitRules = Field(default_factory=LimitRules)
    gate: GateRules = Field(default_factory=GateRules)
    workers: WorkerRules = Field(default_factory=WorkerRules)
    models: ModelRules = Field(default_factory=ModelRules)
    sha256: str = Field("", description="sha256 of the file the policy was loaded from (set by the loader)")

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "<policy>", sha256: str = "") -> Policy:
        """Validate a parsed YAML mapping; errors name the field and the fix."""
        if not isinstance(data, dict):
            raise PolicyError(f"{source}: a policy must be a YAML mapping, got {type(data).__name__}.")
        if "sha256" in data:
            raise PolicyError(f"{source}: 'sha256' is computed by the loader; remove it from the file.")
        try:
            return cls.model_validate({**data, "sha256": sha256})
        except ValidationError as exc:
            raise PolicyError(_explain(exc, source)) from None


def _explain(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field; remove it or check its spelling against policies/default.yaml"
        lines.append(f"  {loc}: {msg} (got {err.get('input')!r})")
    return f"{source}: invalid policy:\n" + "\n".join(lines)


def default_policy_path() -> Path:
    """Return the policy shipped with the sandbox: ``policies/default.yaml`` at the top of the checkout.

    The sandbox is installed editable (``pip install -e .``), so the checkout's ``policies/`` folder is the
    one the package reads.
    """
    return Path(__file__).resolve().parents[3] / "policies" / "default.yaml"


def load_policy(path: str | Path | None = None) -> Policy:
    """Load and validate a policy file.

    Parameters
    ----------
    path : str or Path, optional
        A YAML policy. ``None`` loads the shipped default.

    Returns
    -------
    Policy
        The validated policy, with ``sha256`` of the exact file bytes.

    Raises
    ------
    PolicyError
        If the file cannot be read, is not YAML, or a field is invalid (the message names the field).
    """
    p = Path(path) if path is not None else default_policy_path()
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise PolicyError(f"Cannot read policy file {str(p)!r}: {exc.strerror}. Check the path.") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{p}: not valid YAML: {exc}") from None
    return Policy.from_mapping(data, source=str(p), sha256=hashlib.sha256(raw).hexdigest())
