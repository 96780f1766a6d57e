"""What the client gets back from the vault: immutable DP results, fitted models and costs.

A :class:`DPResult` is minted by the vault and recorded in its ledger under ``id`` with the sha256 of its
public content; the client object is a read-only view of that payload (the release gate later checks id and
hash). In a notebook it renders as an HTML table with the noise scale or 95% error bound beside each value.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pandas as pd

from sandbox._private.shared.errors import QueryError
from sandbox._private.shared.query import check_epsilon

if TYPE_CHECKING:
    from sandbox.fairness import FairnessAudit

__all__ = ["DPResult", "FittedModel", "AuditResult", "QueryCost", "freeze"]

_HTML_ROWS = 200  # rows shown in a notebook; to_pandas() has them all


def freeze(value: Any) -> Any:
    """Return a deep read-only copy of a JSON value: dicts become mapping proxies, lists become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Return the plain-JSON form of a :func:`freeze` value."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class QueryCost:
    """What a query or fit would cost, without spending anything."""

    epsilon: float
    delta: float


@dataclass(frozen=True)
class _Minted:
    """Fields every vault-minted answer has."""

    id: str
    sha256: str
    dataset: str
    version: int
    kind: str
    query: Mapping[str, Any]
    epsilon: float
    delta: float
    mechanism: str
    values: Mapping[str, Any]
    charged_epsilon: float
    reused: bool
    created: str
    run_id: str | None

    @classmethod
    def _fields_from(cls, payload: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": str(payload["id"]),
            "sha256": str(payload["sha256"]),
            "dataset": str(payload["dataset"]),
            "version": int(payload["version"]),
            "kind": str(payload["kind"]),
            "query": freeze(payload["query"]),
            "epsilon": float(payload["epsilon"]),
            "delta": float(payload["delta"]),
            "mechanism": str(payload["mechanism"]),
            "values": freeze(payload["values"]),
            "charged_epsilon": float(payload.get("charged_epsilon", 0.0)),
            "reused": bool(payload.get("reused", False)),
            "created": str(payload.get("created", "")),
            "run_id": payload.get("run_id"),
        }

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON payload as the vault sent it."""
        return {k: thaw(getattr(self, k)) for k in self.__dataclass_fields__}

    def _bind(self, transport: Any) -> Self:
        """Remember the vault connection this result came from (for follow-up calls such as ``audit``)."""
        object.__setattr__(self, "_transport", transport)
        return self


def _cells(values: Mapping[str, Any]) -> pd.DataFrame:
    """One row per cell: group keys (and bin edges), ``value``, ``noise_scale``, ``ci95``."""
    rows = values.get("rows")
    if isinstance(rows, Sequence) and not isinstance(rows, str):
        cols = values.get("columns")
        return pd.DataFrame([thaw(r) for r in rows], columns=list(cols) if cols else None)
    flat = {k: thaw(v) for k, v in values.items() if not isinstance(v, Mapping | tuple)}
    return pd.DataFrame([flat])


def _error_text(cell: Mapping[str, Any]) -> str:
    for key, label in (("ci95", "±"), ("error95", "±"), ("noise_scale", "scale ")):
        v = cell.get(key)
        if isinstance(v, int | float) and math.isfinite(v):
            return f"{label}{v:.4g}"
    return ""


@dataclass(frozen=True)
class DPResult(_Minted):
    """A differentially private aggregate, minted and stored by the vault.

    Attributes
    ----------
    id, sha256 : str
        Ledger id and sha256 of the public content; the release gate checks both.
    epsilon, delta : float
        The privacy loss this answer carries (``charged_epsilon`` is 0 when it was a stored answer).
    query : mapping
        The query as the vault recorded it.
    values : mapping
        The DP values and their noise descriptions, read-only.
    """

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> DPResult:
        return cls(**cls._fields_from(payload))

    def to_pandas(self) -> pd.DataFrame:
        """One row per cell: group keys (and bin edges), the DP value and its noise description."""
        return _cells(self.values)

    def __repr__(self) -> str:
        q = self.query
        return (
            f"DPResult({q.get('kind')}({q.get('column') or ''}) by={list(q.get('by') or [])} of {self.dataset} "
            f"v{self.version}, ε={self.epsilon:g}, δ={self.delta:g}, id={self.id})"
        )

    def _repr_html_(self) -> str:
        df = self.to_pandas()
        head = (
            f"<p><b>{html.escape(str(self.query.get('kind')))}</b>"
            f"({html.escape(str(self.query.get('column') or ''))}) on {html.escape(self.dataset)} "
            f"v{self.version} &mdash; ε={self.epsilon:g}, δ={self.delta:g}, "
            f"mechanism {html.escape(self.mechanism)}, id <code>{html.escape(self.id)}</code>"
            f"{' (stored answer, cost 0)' if self.reused else ''}</p>"
        )
        cols = [str(c) for c in df.columns if c not in ("noise_scale", "ci95")]
        rows = []
        for rec in df.head(_HTML_ROWS).to_dict(orient="records"):
            cell = {str(k): v for k, v in rec.items()}
            tds = "".join(f"<td>{html.escape(_fmt(cell.get(c)))}</td>" for c in cols)
            rows.append(f"<tr>{tds}<td>{html.escape(_error_text(cell))}</td></tr>")
        header = "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "<th>95% error (or noise scale)</th>"
        more = f"<p>{len(df) - _HTML_ROWS} more rows: use .to_pandas()</p>" if len(df) > _HTML_ROWS else ""
        return f"{head}<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else str(v)


@dataclass(frozen=True)
class FittedModel(_Minted):
    """A DP model fitted in the vault; only its parameters (JSON) leave.

    ``predict`` and ``predict_proba`` run here, on dummy or public data, from those parameters.
    """

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> FittedModel:
        return cls(**cls._fields_from(payload))

    @property
    def params(self) -> Mapping[str, Any]:
        """The fitted parameters as the vault released them (read-only)."""
        return self.values

    @property
    def spec(self) -> Mapping[str, Any]:
        spec: Mapping[str, Any] = self.query["spec"]
        return spec

    def _frame(self, frame: Any) -> pd.DataFrame:
        if not isinstance(frame, pd.DataFrame):
            raise QueryError(f"predict needs a pandas DataFrame of dummy or public rows, got {type(frame).__name__}.")
        return frame

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predictions for the rows of ``frame`` (dummy or public data with the spec's feature columns)."""
        from sandbox._private.shared import model_params

        return np.asarray(model_params.predict_from_params(thaw(self.values), self._frame(frame)))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities (classifiers only), columns in the order of ``params['classes']``."""
        from sandbox._private.shared import model_params

        return np.asarray(model_params.predict_proba_from_params(thaw(self.values), self._frame(frame)))

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

    def __repr__(self) -> str:
        spec = self.query.get("spec", {})
        return (
            f"FittedModel({spec.get('estimator')} target={spec.get('target')} on {self.dataset} v{self.version}, "
            f"ε={self.epsilon:g}, id={self.id})"
        )

    def _repr_html_(self) -> str:
        body = html.escape(json.dumps(thaw(self.values), indent=1)[:4000])
        return f"<p>{html.escape(repr(self))}</p><pre>{body}</pre>"


@dataclass(frozen=True)
class AuditResult(_Minted):
    """A fairness audit of a fitted model, computed in the vault on protected rows; every count in it is DP.

    ``values`` is the audit as the vault stored it (``FairnessAudit.to_dict()`` plus ``model_id``); :attr:`audit`
    rebuilds the :class:`~sandbox.fairness.FairnessAudit`, so ``verdict``, ``by_group``, ``disparities`` and
    ``to_html(lang=)`` work as for an audit of predictions. Groups below the disclosure minimum appear as
    suppressed, without numbers.
    """

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> AuditResult:
        return cls(**cls._fields_from(payload))

    @property
    def model_id(self) -> str:
        """Ledger id of the audited model."""
        return str(self.values["model_id"])

    @property
    def audit(self) -> FairnessAudit:
        """The audit as a :class:`~sandbox.fairness.FairnessAudit` (rebuilt once from ``values``)."""
        cached = self.__dict__.get("_audit")
        if cached is None:
            from sandbox.fairness import FairnessAudit

            cached = FairnessAudit.from_dict(thaw(self.values))
            object.__setattr__(self, "_audit", cached)
        return cached

    @property
    def verdict(self) -> Any:
        """The policy's verdict (pass / review / fail) with its reasons."""
        return self.audit.verdict

    @property
    def by_group(self) -> pd.DataFrame:
        """Group metrics with intervals (suppressed groups without numbers)."""
        return self.audit.by_group

    @property
    def disparities(self) -> pd.DataFrame:
        """Disparities with intervals and verdicts."""
        return self.audit.disparities

    def to_html(self, lang: str = "en") -> str:
        """Render the self-contained HTML report (``lang`` 'en' or 'nl')."""
        return self.audit.to_html(lang)

    def __repr__(self) -> str:
        return (
            f"AuditResult(model={self.values.get('model_id')}, verdict={self.verdict.status!r}, "
            f"ε={self.epsilon:g}, id={self.id})"
        )

    def _repr_html_(self) -> str:
        head = (
            f"<p>Fairness audit of model <code>{html.escape(self.model_id)}</code> on {html.escape(self.dataset)} "
            f"v{self.version} &mdash; ε={self.epsilon:g}, id <code>{html.escape(self.id)}</code>"
            f"{' (stored answer, cost 0)' if self.reused else ''}</p>"
        )
        return head + self.audit._repr_html_()
