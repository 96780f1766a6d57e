"""Fairness audit of binary classifiers: group metrics, disparities, verdict per policy, power, proxies, report.

Everything is computed from per-group confusion counts, so the same audit runs on predictions
(:func:`audit_predictions`) and on DP-noised counts released by the vault (:func:`audit_from_counts`). Point
estimates equal fairlearn's ``MetricFrame``; where a rate is undefined the audit says so and why. Each group rate
has an exact interval valid at its size; the gaps between groups have intervals that hold simultaneously over all
groups and facets (so "significant" has the false-alarm rate it claims), each gap states the smallest gap it
detects with 80% power, and a review that comes only from too little data says so (:attr:`FairnessAudit.evidence`).
"""

from __future__ import annotations

from ._private.audit import FairnessAudit, audit_from_counts, audit_predictions, confusion_counts
from ._private.counts import CountTable, FacetCounts
from ._private.dp_audit import CodedAttribute, noisy_count_table, proxy_table, schema_facet_counts
from ._private.evidence import DetectableGap, Evidence
from ._private.mitigation import MitigationResult, mitigate
from ._private.proxies import ProxyReport, check_forbidden_features, proxy_check
from ._private.report_labels import ReportMetadata
from ._private.rules import FACET_SEP
from ._private.verdict import Verdict

__all__ = [
    # the audit
    "audit_predictions",
    "audit_from_counts",
    "FairnessAudit",
    "Verdict",
    "Evidence",
    "DetectableGap",
    "ReportMetadata",
    # counts and DP tables (for the vault's audit on protected rows)
    "CountTable",
    "FacetCounts",
    "confusion_counts",
    "CodedAttribute",
    "noisy_count_table",
    "proxy_table",
    "schema_facet_counts",
    "FACET_SEP",
    # features: direct and indirect distinction
    "proxy_check",
    "ProxyReport",
    "check_forbidden_features",
    # mitigation on dummy or public data
    "mitigate",
    "MitigationResult",
]
