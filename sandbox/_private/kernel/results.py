"""What the client gets back from the vault: immutable DP results, fairness audits and costs.

A :class:`DPResult` is minted by the vault and recorded in its ledger under ``id`` with the sha256 of its
public content; the client object is a read-only view of that payload (the release gate later checks id and
hash). In a notebook it renders as an HTML table with the noise scale or 95% error bound beside each value.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Self

import pandas as pd

from sandbox._private.shared.errors import QueryError

from .mime import RESULT_ATTR

if TYPE_CHECKING:
    from sandbox.fairness import FairnessAudit

__all__ = ["DPResult", "AuditResult", "QueryCost", "Minted", "freeze", "thaw", "mark_frame"]

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
    """What a query or fit would cost, without spending anything, and what the vault warns about.

    ``parts`` splits a fit's epsilon: ``(("fit", ...), ("quality", ...))`` (the held-out quality figures are in the
    same charge); empty for a query.
    """

    epsilon: float
    delta: float
    warnings: tuple[str, ...] = ()
    parts: tuple[tuple[str, float], ...] = ()


def mark_frame(frame: pd.DataFrame, result: Minted) -> pd.DataFrame:
    """Tag a frame built from a vault result, so the notebook display keeps it when saving or storing a run.

    The tag (``frame.attrs[RESULT_ATTR]``) names the result; pandas keeps ``attrs`` through ``head()``, selections
    and copies. It is a hygiene marker for the save guard, not a security boundary (see :mod:`.mime`).
    """
    frame.attrs[RESULT_ATTR] = {
        "kind": result.kind,
        "id": result.id,
        "sha256": result.sha256,
        "dataset": result.dataset,
        "epsilon": result.epsilon,
    }
    return frame


@dataclass(frozen=True)
class Minted:
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
class DPResult(Minted):
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
        return mark_frame(_cells(self.values), self)

    @property
    def value(self) -> float:
        """The DP value of an ungrouped answer (one cell); grouped answers: use :meth:`to_pandas`."""
        rows = self.values.get("rows")
        if not isinstance(rows, Sequence) or len(rows) != 1 or self.query.get("by"):
            n = len(rows) if isinstance(rows, Sequence) else 0
            raise QueryError(
                f"This answer has {n} cells (grouped by {list(self.query.get('by') or [])}); .value is for one "
                "ungrouped cell. Use .to_pandas() for the table, or ask without by=."
            )
        value = rows[0]["value"]
        return float(value)

    @property
    def ci95(self) -> float | None:
        """Half-width of the 95% error interval of an ungrouped answer (``None`` when it has none)."""
        rows = self.values.get("rows")
        if not isinstance(rows, Sequence) or len(rows) != 1 or self.query.get("by"):
            raise QueryError("ci95 is for one ungrouped cell; the table's ci95 column is in .to_pandas().")
        half = rows[0].get("ci95")
        return None if half is None else float(half)

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
class AuditResult(Minted):
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
        return mark_frame(self.audit.by_group.copy(), self)

    @property
    def disparities(self) -> pd.DataFrame:
        """Disparities with intervals and verdicts."""
        return mark_frame(self.audit.disparities.copy(), self)

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
