"""Mitigation for analysts on dummy or public data: fairlearn's ThresholdOptimizer and ExponentiatedGradient.

:func:`mitigate` fits the plain estimator and the mitigated one, and audits both on the same evaluation rows, so
"what did mitigation cost and what did it buy" is one call. It runs where the data is: on dummy data in the
analyst's kernel, or on public data. The vault's DP models are audited by the vault, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.postprocessing import ThresholdOptimizer
from fairlearn.reductions import DemographicParity, EqualizedOdds, ExponentiatedGradient, TruePositiveRateParity
from sklearn.base import clone

from sandbox._private.shared.errors import FairnessInputError
from sandbox._private.shared.policy import Policy, load_policy

from .audit import FairnessAudit, audit_predictions
from .inputs import as_binary
from .proxies import check_forbidden_features

__all__ = ["MitigationResult", "mitigate", "METHODS", "CONSTRAINTS"]

METHODS = ("threshold_optimizer", "exponentiated_gradient")
# our name -> (ThresholdOptimizer constraint, reductions Moment class)
CONSTRAINTS: dict[str, tuple[str, Any]] = {
    "demographic_parity": ("demographic_parity", DemographicParity),
    "equalized_odds": ("equalized_odds", EqualizedOdds),
    "equal_opportunity": ("true_positive_rate_parity", TruePositiveRateParity),
}
_BY_DEFINITION = {"equal_outcomes": "demographic_parity", "equal_error_rates": "equalized_odds"}


@dataclass(frozen=True)
class MitigationResult:
    """The mitigated predictor and the audits of the plain and the mitigated model on the same rows.

    ``predictor.predict(X, sensitive_features=...)`` (ThresholdOptimizer) or ``predictor.predict(X)``
    (ExponentiatedGradient) gives mitigated predictions; both are randomised, so pass ``random_state``.
    """

    method: str
    constraint: str
    predictor: Any
    baseline: Any
    before: FairnessAudit
    after: FairnessAudit
    evaluated_on: str

    def summary(self) -> pd.DataFrame:
        """Decisive disparities and accuracy before and after, side by side."""
        rows = []
        for label, audit in (("before", self.before), ("after", self.after)):
            d = audit.disparities
            d = d[(d["reference"] == "between_groups") & d["decisive"]]
            acc = audit.by_group.set_index("attribute").loc["overall", "accuracy"]
            for _, r in d.iterrows():
                rows.append(
                    {
                        "model": label,
                        "attribute": r["attribute"],
                        "metric": r["metric"],
                        "difference": r["difference"],
                        "verdict": r["verdict"],
                        "accuracy": float(acc),  # type: ignore[arg-type]
                    }
                )
        return pd.DataFrame(rows)


def _check_args(method: str, constraint: str) -> None:
    if method not in METHODS:
        raise FairnessInputError(f"method must be one of {METHODS}, got {method!r}")
    if constraint not in CONSTRAINTS:
        raise FairnessInputError(f"constraint must be one of {tuple(CONSTRAINTS)}, got {constraint!r}")


def _fit_mitigator(
    estimator: Any, method: str, constraint: str, X: pd.DataFrame, y: np.ndarray, sensitive: pd.DataFrame
) -> Any:
    name, moment = CONSTRAINTS[constraint]
    if method == "threshold_optimizer":
        m = ThresholdOptimizer(
            estimator=clone(estimator), constraints=name, objective="accuracy_score", predict_method="auto"
        )
        return m.fit(X, y, sensitive_features=sensitive)
    eg = ExponentiatedGradient(clone(estimator), constraints=moment(), eps=0.01)
    return eg.fit(X, y, sensitive_features=sensitive)


def _predict(predictor: Any, method: str, X: pd.DataFrame, sensitive: pd.DataFrame, seed: int) -> np.ndarray:
    if method == "threshold_optimizer":
        return np.asarray(predictor.predict(X, sensitive_features=sensitive, random_state=seed))
    return np.asarray(predictor.predict(X, random_state=seed))


def mitigate(
    estimator: Any,
    X: pd.DataFrame,
    y: Any,
    sensitive_features: pd.DataFrame,
    *,
    method: str = "threshold_optimizer",
    constraint: str | None = None,
    X_test: pd.DataFrame | None = None,
    y_test: Any = None,
    sensitive_test: pd.DataFrame | None = None,
    policy: Policy | None = None,
    n_boot: int = 1000,
    random_state: int = 0,
) -> MitigationResult:
    """Fit ``estimator`` plainly and with a fairness constraint; audit both on the same rows.

    Parameters
    ----------
    estimator : sklearn classifier
        Unfitted; it is cloned, never modified.
    X, y, sensitive_features : DataFrame, array-like, DataFrame
        Training rows (dummy or public data) and their protected attributes.
    method : {"threshold_optimizer", "exponentiated_gradient"}
        Post-processing of the scores per group, or the reductions approach that refits with constraints.
    constraint : {"demographic_parity", "equalized_odds", "equal_opportunity"}, optional
        Default follows the policy's definition: equal outcomes -> demographic parity, equal error rates ->
        equalized odds.
    X_test, y_test, sensitive_test : optional
        Held-out rows for the audits; without them the audits use the training rows (stated as a limitation).
    policy : Policy, optional
        Rules for the audits and the forbidden features (default policy if ``None``).
    n_boot : int
        Bootstrap resamples of each audit.
    random_state : int
        Seed of the randomised predictions and of the audits' resampling.

    Returns
    -------
    MitigationResult
    """
    pol = policy if policy is not None else load_policy()
    constraint = constraint or _BY_DEFINITION[pol.fairness.definition]
    _check_args(method, constraint)
    check_forbidden_features(X.columns, pol)
    y_arr = as_binary("y", y, len(X))
    held_out = X_test is not None
    if held_out and (y_test is None or sensitive_test is None):
        raise FairnessInputError("X_test needs y_test and sensitive_test too (the audits need truth and groups)")
    if X_test is not None and sensitive_test is not None:
        Xe, ye, se = X_test, as_binary("y_test", y_test, len(X_test)), sensitive_test
    else:
        Xe, ye, se = X, y_arr, sensitive_features
    baseline = clone(estimator).fit(X, y_arr)
    predictor = _fit_mitigator(estimator, method, constraint, X, y_arr, sensitive_features)
    where = "held-out rows" if held_out else "the training rows (no X_test given: the audits are optimistic)"
    audits = [
        audit_predictions(ye, p, se, policy=policy, n_boot=n_boot, random_state=random_state)
        for p in (np.asarray(baseline.predict(Xe)), _predict(predictor, method, Xe, se, random_state))
    ]
    return MitigationResult(method, constraint, predictor, baseline, audits[0], audits[1], where)
