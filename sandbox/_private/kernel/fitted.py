"""A DP model fitted in the vault, as the analyst holds it: its public parameters, scikit-learn's attributes.

Only the parameters (JSON) leave the vault. From them, :class:`FittedModel` gives what a scikit-learn user
reaches for first — ``coef_``, ``intercept_``, ``classes_``, ``feature_names_in_``, ``n_features_in_``,
``get_feature_names_out()``, ``predict``, ``predict_proba`` and ``score`` — computed here, on dummy or public
data that the analyst passes in. In a notebook it shows as a compact model card (estimator, target, features,
ε, classes, the held-out DP quality figures and the largest coefficients), not a dump of the JSON.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sandbox._private.shared.errors import QueryError
from sandbox._private.shared.query import check_epsilon

from .quality import ModelQuality
from .results import AuditResult, Minted, thaw

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["FittedModel"]

_CARD_COEFS = 8  # largest coefficients shown on the model card


@dataclass(frozen=True)
class FittedModel(Minted):
    """A DP model fitted in the vault; only its parameters (JSON) leave.

    ``predict``, ``predict_proba`` and ``score`` run here, on dummy or public data, from those parameters; the
    attributes follow scikit-learn's names (``coef_`` and ``intercept_`` for the linear models, ``classes_``
    for classifiers).
    """

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> FittedModel:
        return cls(**cls._fields_from(payload))

    # -- what was fitted --------------------------------------------------------------------------------------
    @property
    def params(self) -> Mapping[str, Any]:
        """The fitted parameters as the vault released them (read-only)."""
        return self.values

    @property
    def spec(self) -> Mapping[str, Any]:
        """The model spec (estimator, target, features, parameters, preprocessing)."""
        spec: Mapping[str, Any] = self.query["spec"]
        return spec

    @property
    def estimator(self) -> str:
        """The estimator's name in the allow-list (``logistic_regression``, ``gaussian_nb``, ...)."""
        return str(self.values["estimator"])

    @property
    def target(self) -> str:
        """The target column."""
        return str(self.values["target"])

    @property
    def is_classifier(self) -> bool:
        """Whether the model predicts classes (every estimator but the linear regression)."""
        return self.values.get("task") == "classification"

    @property
    def quality(self) -> ModelQuality | None:
        """DP quality figures on held-out households (accuracy, AUC, calibration, or RMSE), charged with the fit.

        ``None`` for a model fitted under a policy with ``models.quality_epsilon_share: 0``.
        """
        block = self.values.get("quality")
        return None if block is None else ModelQuality.from_dict(block, self.id)

    # -- scikit-learn's attributes ----------------------------------------------------------------------------
    def _linear(self, what: str) -> Any:
        if self.estimator not in ("logistic_regression", "linear_regression"):
            raise AttributeError(
                f"{what} exists for linear models only; this is a {self.estimator} (see .params for its parameters)."
            )
        return self.values["params"]

    @property
    def coef_(self) -> np.ndarray:
        """Coefficients, one per column of :meth:`get_feature_names_out` (shape like scikit-learn's)."""
        return np.asarray(thaw(self._linear("coef_")["coef"]), dtype=np.float64)

    @property
    def intercept_(self) -> np.ndarray | float:
        """Intercept: an array for the logistic regression, a number for the linear regression."""
        value = thaw(self._linear("intercept_")["intercept"])
        return np.asarray(value, dtype=np.float64) if isinstance(value, list) else float(value)

    @property
    def classes_(self) -> np.ndarray:
        """Class labels in the order of ``predict_proba``'s columns (from the public schema)."""
        if not self.is_classifier:
            raise AttributeError(f"{self.estimator} is a regression model and has no classes_.")
        return np.asarray(thaw(self.values["classes"]), dtype=object)

    @property
    def feature_names_in_(self) -> np.ndarray:
        """The input columns ``predict`` expects (the spec's features)."""
        return np.asarray(list(self.spec["features"]), dtype=object)

    @property
    def n_features_in_(self) -> int:
        """Number of input columns."""
        return len(self.spec["features"])

    def get_feature_names_out(self) -> np.ndarray:
        """Columns of the design matrix after the public preprocessing (one-hot categories), as ``coef_``."""
        return np.asarray(list(self.values["feature_names"]), dtype=object)

    # -- predictions on dummy or public data ------------------------------------------------------------------
    def _frame(self, frame: Any) -> pd.DataFrame:
        if not isinstance(frame, pd.DataFrame):
            raise QueryError(f"predict needs a pandas DataFrame of dummy or public rows, got {type(frame).__name__}.")
        return frame

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predictions for the rows of ``frame`` (dummy or public data with the spec's feature columns)."""
        from sandbox._private.shared import model_params

        return np.asarray(model_params.predict_from_params(thaw(self.values), self._frame(frame)))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities (classifiers only), columns in the order of :attr:`classes_`."""
        from sandbox._private.shared import model_params

        return np.asarray(model_params.predict_proba_from_params(thaw(self.values), self._frame(frame)))

    def score(self, frame: pd.DataFrame, y: Sequence[Any] | np.ndarray | pd.Series | None = None) -> float:
        """Accuracy (classifiers) or R² (linear regression) on ``frame``, as scikit-learn's ``score``.

        Parameters
        ----------
        frame : DataFrame
            Dummy or public rows with the feature columns.
        y : array-like, optional
            True targets; by default ``frame[target]``.
        """
        frame = self._frame(frame)
        if y is None:
            if self.target not in frame:
                raise QueryError(f"score needs the true targets: pass y=..., or a frame with column {self.target!r}.")
            y = frame[self.target]
        truth = np.asarray(y, dtype=object if self.is_classifier else np.float64)
        pred = self.predict(frame)
        if truth.shape[0] != pred.shape[0]:
            raise QueryError(f"y has {truth.shape[0]} values but the frame has {pred.shape[0]} rows.")
        if self.is_classifier:
            return float(np.mean(pred == truth)) if truth.size else float("nan")
        residual = float(np.sum((truth - pred) ** 2))
        total = float(np.sum((truth - truth.mean()) ** 2)) if truth.size else 0.0
        return 1.0 - residual / total if total > 0 else float("nan")

    # -- in the vault ------------------------------------------------------------------------------------------
    def audit(self, protected: Sequence[str] | str | None = None, epsilon: float | None = None) -> AuditResult:
        """Audit this model for fairness in the vault, on the protected rows; the released numbers are DP.

        Parameters
        ----------
        protected : str or sequence of str, optional
            Protected attributes to audit (``None``: every protected attribute of the policy the table has).
            Intersections the policy declares are audited when all their attributes are included.
        epsilon : float, optional
            Privacy loss of the audit (``None``: the policy's ``fairness.audit_epsilon``). Charged in the ledger;
            the identical request again returns the stored audit at no cost.

        Returns
        -------
        AuditResult
            Pass it to ``ws.release([...])`` together with the model.

        Raises
        ------
        QueryError
            Unknown attribute, not a binary classifier, invalid epsilon.
        BudgetExceededError
            Not enough budget left on the dataset (or for you).
        """
        transport = getattr(self, "_transport", None)
        if transport is None:
            raise QueryError(
                f"model {self.id} is not connected to a vault; get it from hh.fit(...) or ws.result({self.id!r})."
            )
        if epsilon is not None:
            epsilon = check_epsilon(epsilon)
        attrs = [protected] if isinstance(protected, str) else None if protected is None else list(protected)
        payload = transport.charge(f"/v1/models/{self.id}/audit", {"protected": attrs, "epsilon": epsilon})
        return AuditResult.from_payload(payload)._bind(transport)

    # -- display -----------------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        spec = self.query.get("spec", {})
        return (
            f"FittedModel({spec.get('estimator')} target={spec.get('target')} on {self.dataset} v{self.version}, "
            f"ε={self.epsilon:g}, id={self.id})"
        )

    def _coefficient_rows(self) -> list[tuple[str, float]]:
        if self.estimator not in ("logistic_regression", "linear_regression"):
            return []
        coef = self.coef_
        row = coef if coef.ndim == 1 else coef[0] if coef.shape[0] == 1 else np.abs(coef).max(axis=0)
        names = [str(n) for n in self.get_feature_names_out()]
        order = np.argsort(-np.abs(row), kind="stable")[:_CARD_COEFS]
        return [(names[i], float(row[i])) for i in order]

    def _repr_html_(self) -> str:
        spec = self.spec
        esc = html.escape
        facts = [
            ("estimator", f"{self.estimator} ({self.mechanism})"),
            ("target", self.target),
            ("features", ", ".join(str(f) for f in spec["features"])),
            ("dataset", f"{self.dataset} v{self.version}"),
            ("privacy", f"ε = {self.epsilon:g}" + (" (stored answer, cost 0)" if self.reused else "")),
        ]
        if self.is_classifier:
            facts.append(("classes", ", ".join(str(c) for c in self.classes_)))
        facts.append(("id", self.id))
        rows = "".join(f"<tr><th style='text-align:left'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts)
        quality = self.quality
        summary = ""
        if quality is not None:  # one line; the calibration table is in model.quality
            figs = " · ".join(f"{k} {v}" for k, v in quality.figures())
            summary = (
                f"<p><b>Held-out quality</b> (DP, ε {quality.epsilon:g} of the fit's, ± noise sd): {esc(figs)}; "
                "calibration in <code>.quality</code></p>"
            )
        coefs = self._coefficient_rows()
        table = ""
        if coefs:
            body = "".join(f"<tr><td><code>{esc(n)}</code></td><td>{v:+.3f}</td></tr>" for n, v in coefs)
            table = (
                f"<p>Largest coefficients (of {len(self.get_feature_names_out())}; all in <code>.coef_</code>)</p>"
                f"<table><thead><tr><th>column</th><th>coefficient</th></tr></thead><tbody>{body}</tbody></table>"
            )
        return f"<p><b>DP model</b> fitted in the vault</p><table>{rows}</table>{summary}{table}"
