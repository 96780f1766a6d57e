"""The :class:`FairnessAudit` value object and the two ways to make one: from predictions or from counts."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from sandbox._private.shared.errors import FairnessInputError
from sandbox._private.shared.policy import Policy

from .bootstrap import make_rng
from .calibration import calibration_by_group
from .counts import CountTable, FacetCounts, count_table
from .engine import AuditTables, compute_tables
from .evidence import Evidence, audit_evidence
from .inputs import as_binary, as_scores, encode_sensitive
from .proxies import ProxyReport, proxy_check
from .report_labels import ReportMetadata
from .rules import AuditRules, resolve_rules
from .verdict import Verdict

__all__ = ["FairnessAudit", "audit_predictions", "audit_from_counts", "confusion_counts", "check_n_boot"]
__all__ += ["INTERVAL_METHOD"]

_MIN_BOOT, _MAX_BOOT = 50, 100_000
#: How the intervals are made (also in the dict form, for readers of a released audit).
INTERVAL_METHOD = (
    "group rates: Clopper-Pearson (exact counts) or bootstrap-t with the DP noise (noisy counts), each group on its "
    "own; gaps between groups: simultaneous intervals over all pairs of groups of all facets of a metric "
    "(Clopper-Pearson bounds combined by MOVER at the level of a bootstrap max-t critical value), so the gap test's "
    "false-alarm rate with equal groups is at most 1 - confidence_level for the whole audit"
)


def check_n_boot(n_boot: int) -> int:
    """Validate the number of bootstrap resamples."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or not _MIN_BOOT <= n_boot <= _MAX_BOOT:
        raise FairnessInputError(
            f"n_boot must be an integer in [{_MIN_BOOT}, {_MAX_BOOT}], got {n_boot!r}; 1000 gives stable 95% intervals"
        )
    return int(n_boot)


@dataclass(frozen=True)
class FairnessAudit:
    """The result of a fairness audit: group metrics, disparities, verdict, each number with an interval.

    Build it with :func:`audit_predictions` or :func:`audit_from_counts`. ``by_group`` and ``disparities`` return
    fresh DataFrames; ``verdict`` is the policy's decision with its reasons; ``evidence`` says whether the data
    could show the model fair and how large a gap each decisive test detects with 80% power; ``to_html`` renders
    the report.
    """

    rules: AuditRules
    tables: AuditTables
    n_boot: int
    noise_scale: float = 0.0
    calibration: pd.DataFrame | None = None
    proxies: ProxyReport | None = None
    model_features: tuple[str, ...] | None = None
    limitations: tuple[str, ...] = field(default_factory=tuple)

    def __repr__(self) -> str:
        return (
            f"FairnessAudit(verdict={self.verdict.status!r}, definition={self.rules.definition!r}, "
            f"facets={[' × '.join(f) for f in self.rules.facets]}, n_boot={self.n_boot})"
        )

    @property
    def by_group(self) -> pd.DataFrame:
        """One row per group of each facet (and 'overall'): counts and rates with ``_low``/``_high`` bounds."""
        return self.tables.by_group.copy()

    @property
    def disparities(self) -> pd.DataFrame:
        """One row per facet, disparity and reference ('between_groups' or 'to_overall'), with verdicts."""
        return self.tables.disparities.copy()

    @property
    def verdict(self) -> Verdict:
        """The overall verdict under the policy's fairness definition, with reasons."""
        return self.tables.verdict

    @property
    def evidence(self) -> Evidence:
        """Power of each decisive gap, and whether a ``review`` comes only from too little data."""
        return audit_evidence(self.tables.disparities, self.verdict.status)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (NaN become ``None``; the note columns say why)."""
        evidence = self.evidence
        out = {
            "format": "sandbox.fairness_audit/1",
            "verdict": {
                "status": self.verdict.status,
                "reasons": list(self.verdict.reasons),
                # a review that comes only from too little data: show evidence.label before anyone approves
                "insufficient_evidence": evidence.insufficient,
            },
            "evidence": evidence.to_dict(),
            "interval_method": INTERVAL_METHOD,
            "policy": {"name": self.rules.policy_name, "sha256": self.rules.policy_sha256},
            "definition": self.rules.definition,
            "definition_reason": self.rules.definition_reason,
            "decisive_metrics": list(self.rules.decisive_metrics),
            "confidence_level": self.rules.confidence_level,
            "min_group_size": self.rules.min_group_size,
            "n_boot": self.n_boot,
            "noise_scale": self.noise_scale,
            "facets": [list(f) for f in self.rules.facets],
            "by_group": _records(self.tables.by_group),
            "disparities": _records(self.tables.disparities),
            "calibration": None if self.calibration is None else _records(self.calibration),
            "proxies": None if self.proxies is None else _records(self.proxies.table),
            "model_features": None if self.model_features is None else list(self.model_features),
            "limitations": list(self.limitations),
            # what from_dict needs to rebuild the audit exactly (rules not shown above, column orders)
            "rules": _rules_dict(self.rules, self.proxies),
            "columns": {k: None if v is None else [str(c) for c in v.columns] for k, v in self._frames().items()},
        }
        json.dumps(out, allow_nan=False)  # fail here, not in the caller, if anything is not serialisable
        return out

    def _frames(self) -> dict[str, pd.DataFrame | None]:
        proxies = None if self.proxies is None else self.proxies.table
        return {
            "by_group": self.tables.by_group,
            "disparities": self.tables.disparities,
            "calibration": self.calibration,
            "proxies": proxies,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FairnessAudit:
        """Rebuild an audit from :meth:`to_dict` (for example the values of an audit released by the vault).

        Raises
        ------
        FairnessInputError
            If ``data`` is not a ``sandbox.fairness_audit/1`` dict with its ``rules`` and ``columns``.
        """
        from .audit_dict import audit_from_dict

        return audit_from_dict(data)

    def to_html(
        self,
        lang: str = "en",
        *,
        metadata: ReportMetadata | Mapping[str, Any] | None = None,
        labels: Mapping[str, Mapping[str, str]] | None = None,
        attribute_labels: Mapping[str, str] | None = None,
    ) -> str:
        """Render the self-contained HTML report: what it belongs to, summary first, plots inline, then tables.

        Parameters
        ----------
        lang : {"en", "nl"}
            Language of the report's words.
        metadata : ReportMetadata or mapping, optional
            Which request, model, target, features, dataset version, author and policy the report belongs to;
            shown at the top. A mapping takes the field names of :class:`ReportMetadata`.
        labels : mapping of attribute to {category: label}, optional
            Display labels of the categories (for example the schema's Dutch labels for a Dutch report); groups
            of intersections are labelled part by part. Categories without a label are shown as they are.
        attribute_labels : mapping of attribute to label, optional
            Display names of the protected attributes (for example the schema's ``label_nl``).
        """
        from .report import render_html

        return render_html(self, lang, metadata=metadata, labels=labels, attribute_labels=attribute_labels)

    def write_html(
        self,
        path: str,
        lang: str = "en",
        *,
        metadata: ReportMetadata | Mapping[str, Any] | None = None,
        labels: Mapping[str, Mapping[str, str]] | None = None,
        attribute_labels: Mapping[str, str] | None = None,
    ) -> None:
        """Write :meth:`to_html` (same parameters) to ``path`` (UTF-8)."""
        from .report import write_report

        write_report(self, path, lang, metadata=metadata, labels=labels, attribute_labels=attribute_labels)

    def _repr_html_(self) -> str:
        from .report import render_html

        return render_html(self, "en", fragment=True)


def _clean(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        return None if math.isnan(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): _clean(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _rules_dict(rules: AuditRules, proxies: ProxyReport | None) -> dict[str, Any]:
    return {
        "min_count": rules.min_count,
        "thresholds": {k: {"review": t.review, "fail": t.fail} for k, t in rules.thresholds.items()},
        "proxy_auc_threshold": rules.proxy_auc_threshold,
        "forbidden_features": list(rules.forbidden_features),
        "not_audited": list(rules.not_audited),
        "protected_as_features": [] if proxies is None else list(proxies.protected_as_features),
    }


def _limitations(rules: AuditRules, noise_scale: float, extra: Sequence[str]) -> tuple[str, ...]:
    out = list(extra)
    if rules.not_audited:
        out.append(f"protected attributes of the policy not given, so not audited: {', '.join(rules.not_audited)}")
    if noise_scale > 0:
        out.append(
            f"counts carry differential-privacy noise (Laplace scale {noise_scale:g}); intervals and detectable "
            "gaps include it"
        )
    return tuple(out)


def audit_from_counts(
    counts: CountTable | pd.DataFrame,
    *,
    noise_scale: float = 0.0,
    suppressed: Iterable[tuple[str, str]] = (),
    policy: Policy | None = None,
    n_boot: int = 1000,
    random_state: int | np.random.Generator | None = None,
    limitations: Sequence[str] = (),
) -> FairnessAudit:
    """Audit from per-group confusion counts (for example DP-noised counts computed in the vault).

    Parameters
    ----------
    counts : CountTable or DataFrame
        Per-group ``tp, fp, fn, tn`` for each facet (see :meth:`CountTable.to_frame` for the long format).
    noise_scale : float
        Laplace scale of the DP noise added to each count (before rounding and clipping at 0); the intervals and
        the detectable gaps then include noise of that scale. Overrides the table's own ``noise_scale`` when
        positive.
    suppressed : iterable of (attribute, group)
        Groups below the disclosure minimum: reported as suppressed, never as numbers.
    policy : Policy, optional
        Rules to apply; ``None`` uses the default policy for the attributes present.
    n_boot : int
        Bootstrap resamples that set the critical value of the simultaneous gap intervals (and, with noise, the
        groups' own intervals); 1000 gives stable 95% intervals.
    random_state : int, Generator or None
        Seed of the SFC64 generator used for resampling (the DP noise of the counts is not re-drawn).
    limitations : sequence of str
        Extra limitations to state in the report.

    Returns
    -------
    FairnessAudit
    """
    table = counts if isinstance(counts, CountTable) else CountTable.from_frame(counts, noise_scale=noise_scale)
    if suppressed:
        table = _mark_suppressed(table, set(suppressed))
    if noise_scale > 0:
        table = CountTable(table.facets, table.overall, float(noise_scale))
    attrs = list(dict.fromkeys(a for f in table.facets for a in f.attributes))
    rules = _rules_for_table(policy, attrs, table)
    tables = compute_tables(table, rules, check_n_boot(n_boot), make_rng(random_state))
    return FairnessAudit(
        rules, tables, int(n_boot), table.noise_scale, limitations=_limitations(rules, table.noise_scale, limitations)
    )


def _rules_for_table(policy: Policy | None, attrs: list[str], table: CountTable) -> AuditRules:
    rules = resolve_rules(policy, attrs)
    return replace(rules, facets=tuple(f.attributes for f in table.facets))


def _mark_suppressed(table: CountTable, pairs: set[tuple[str, str]]) -> CountTable:
    known = {(f.name, lab) for f in table.facets for lab in f.labels}
    unknown = sorted(pairs - known)
    if unknown:
        raise FairnessInputError(f"suppressed names groups that are not in the counts: {unknown}")
    facets = tuple(
        FacetCounts(
            f.attributes,
            f.groups,
            f.counts,
            f.suppressed | np.array([(f.name, lab) in pairs for lab in f.labels], dtype=bool),
        )
        for f in table.facets
    )
    return CountTable(facets, table.overall, table.noise_scale)


def confusion_counts(y_true: Any, y_pred: Any, sensitive_features: Any, *, policy: Policy | None = None) -> CountTable:
    """Per-group confusion counts of every facet the policy audits (for the vault: noise them, then audit).

    Parameters
    ----------
    y_true, y_pred : array-like of 0/1 or bool
        True and predicted labels.
    sensitive_features : DataFrame, named Series or mapping
        Protected attributes, no missing values.
    policy : Policy, optional
        Decides the facets (attributes and intersections); ``None`` uses the default policy.

    Returns
    -------
    CountTable
        Exact counts (``noise_scale`` 0). Add DP noise, clip at 0, then pass to :func:`audit_from_counts` with
        ``noise_scale`` and the suppressed groups.
    """
    yt = as_binary("y_true", y_true)
    yp = as_binary("y_pred", y_pred, yt.shape[0])
    attrs = encode_sensitive(sensitive_features, yt.shape[0])
    return count_table(yt, yp, attrs, resolve_rules(policy, attrs).facets)


def audit_predictions(
    y_true: Any,
    y_pred: Any,
    sensitive_features: Any,
    *,
    y_score: Any = None,
    policy: Policy | None = None,
    n_boot: int = 1000,
    random_state: int | np.random.Generator | None = None,
    features: pd.DataFrame | None = None,
) -> FairnessAudit:
    """Audit binary predictions against the truth for each protected attribute and intersection.

    Parameters
    ----------
    y_true, y_pred : array-like of 0/1 or bool
        True and predicted labels (1 = positive, e.g. "problematic debt").
    sensitive_features : DataFrame, named Series or mapping
        One column per protected attribute, no missing values.
    y_score : array-like of float, optional
        Predicted probabilities; adds calibration by group.
    policy : Policy, optional
        Rules (definition, thresholds, attributes, intersections). ``None``: the default policy's rules for the
        attributes given.
    n_boot : int
        Bootstrap resamples (multinomial on per-group confusion counts) that set the critical value of the
        simultaneous gap intervals, and the calibration intervals. Group rates get exact intervals.
    random_state : int, Generator or None
        Seed for the SFC64 generator of the resampling.
    features : DataFrame, optional
        The model's features (on the same rows): adds the direct-distinction check (forbidden features and
        protected attributes used as features) and the proxy check to the audit.

    Returns
    -------
    FairnessAudit

    Raises
    ------
    FairnessInputError
        On length mismatch, non-binary labels, missing sensitive values or an attribute the policy does not know.
    QueryError
        If ``features`` contains a feature the policy forbids.
    """
    yt = as_binary("y_true", y_true)
    yp = as_binary("y_pred", y_pred, yt.shape[0])
    if yt.shape[0] == 0:
        raise FairnessInputError("y_true is empty; an audit needs predictions")
    attrs = encode_sensitive(sensitive_features, yt.shape[0])
    rules = resolve_rules(policy, attrs)
    table = count_table(yt, yp, attrs, rules.facets)
    rng = make_rng(random_state)
    tables = compute_tables(table, rules, check_n_boot(n_boot), rng)
    calibration = None
    if y_score is not None:
        calibration = calibration_by_group(yt, as_scores(y_score, yt.shape[0]), attrs, rules, n_boot, rng)
    proxies, model_features = None, None
    if features is not None:
        proxies = proxy_check(features, sensitive_features, policy=policy)
        model_features = tuple(str(c) for c in features.columns)
    return FairnessAudit(
        rules, tables, int(n_boot), 0.0, calibration, proxies, model_features, _limitations(rules, 0.0, ())
    )
