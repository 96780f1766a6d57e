"""Rebuild a :class:`~.audit.FairnessAudit` from its ``to_dict()`` form (``sandbox.fairness_audit/1``).

The vault releases an audit as JSON; the analyst's kernel rebuilds the audit object from it so that the report,
the verdict and the tables work in a notebook. JSON has no NaN (``to_dict`` writes ``None``, and the note columns
say why), so numeric columns get their NaN back here; column order comes from the ``columns`` block.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from sandbox._private.shared.errors import FairnessInputError
from sandbox._private.shared.policy import MetricThreshold

from .audit import FairnessAudit
from .engine import AuditTables
from .proxies import ProxyReport
from .rules import AuditRules
from .verdict import Verdict

__all__ = ["audit_from_dict"]

_FORMAT = "sandbox.fairness_audit/1"


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.number) and not isinstance(v, bool)


def _column(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present) and len(present) == len(values):
        return np.asarray(values, dtype=bool)
    if all(_is_number(v) for v in present) and (present or values):
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    return values


def _frame(records: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """Build a frame in ``columns`` order from records; numbers with ``None`` become float columns with NaN."""
    return pd.DataFrame({c: _column([r.get(c) for r in records]) for c in columns}, columns=list(columns))


def _rules(data: Mapping[str, Any]) -> AuditRules:
    r = data["rules"]
    policy = data["policy"]
    return AuditRules(
        policy_name=str(policy["name"]),
        policy_sha256=str(policy["sha256"]),
        definition=str(data["definition"]),
        definition_reason=str(data["definition_reason"]),
        facets=tuple(tuple(str(a) for a in f) for f in data["facets"]),
        min_group_size=int(data["min_group_size"]),
        min_count=int(r["min_count"]),
        thresholds={str(k): MetricThreshold(**v) for k, v in r["thresholds"].items()},
        confidence_level=float(data["confidence_level"]),
        proxy_auc_threshold=float(r["proxy_auc_threshold"]),
        forbidden_features=tuple(str(f) for f in r["forbidden_features"]),
        not_audited=tuple(str(a) for a in r["not_audited"]),
    )


def _optional(data: Mapping[str, Any], key: str) -> pd.DataFrame | None:
    records, columns = data.get(key), data["columns"].get(key)
    if records is None or columns is None:
        return None
    return _frame(records, columns)


def audit_from_dict(data: Mapping[str, Any]) -> FairnessAudit:
    """Rebuild the audit that :meth:`FairnessAudit.to_dict` wrote.

    Raises
    ------
    FairnessInputError
        If ``data`` is not a ``sandbox.fairness_audit/1`` dict with ``rules`` and ``columns``.
    """
    if not isinstance(data, Mapping) or data.get("format") != _FORMAT:
        got = data.get("format") if isinstance(data, Mapping) else type(data).__name__
        raise FairnessInputError(f"expected a {_FORMAT!r} dict from FairnessAudit.to_dict(), got {got!r}")
    try:
        rules = _rules(data)
        cols = data["columns"]
        verdict = Verdict(str(data["verdict"]["status"]), tuple(str(r) for r in data["verdict"]["reasons"]))
        tables = AuditTables(
            _frame(data["by_group"], cols["by_group"]), _frame(data["disparities"], cols["disparities"]), verdict
        )
    except (KeyError, TypeError) as exc:
        raise FairnessInputError(
            f"the audit dict lacks {exc}; it was not written by FairnessAudit.to_dict() of this version"
        ) from None
    proxy_frame = _optional(data, "proxies")
    proxies = None
    if proxy_frame is not None:
        protected = tuple(str(a) for a in data["rules"].get("protected_as_features", ()))
        proxies = ProxyReport(proxy_frame, rules.proxy_auc_threshold, protected)
    features = data.get("model_features")
    return FairnessAudit(
        rules,
        tables,
        int(data["n_boot"]),
        float(data["noise_scale"]),
        _optional(data, "calibration"),
        proxies,
        None if features is None else tuple(str(f) for f in features),
        tuple(str(x) for x in data.get("limitations", ())),
    )
