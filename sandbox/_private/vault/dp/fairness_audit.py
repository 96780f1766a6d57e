"""The fairness audit of a fitted model, computed in the vault on protected rows and released as DP numbers.

``POST /v1/models/{model_id}/audit`` lands here. The model is looked up in the ledger (kind ``"model"``), its
dataset version is loaded, and the model predicts on the protected rows inside the vault. What leaves:

* per-group confusion counts ``[TP, FP, FN, TN]`` of each protected attribute and each policy intersection, over
  every group the public schema allows, and the overall counts as a vector of their own, with Laplace noise of
  scale ``(G + 1) / epsilon_counts`` for ``G`` facets (each facet's count vector, and the overall one, has L1
  sensitivity 1 for adding or removing one household), rounded and clipped at 0. Everything the analyst sees is
  decided from these noisy counts or fixed by the policy, never from the true counts (DESIGN invariant 10): a group
  whose NOISY size (the sum of its four noisy counts) is below ``disclosure.min_count`` is released as suppressed,
  never as numbers; the ``overall`` row is always the overall vector, whichever groups are suppressed; a group's
  status (``ok``, ``small``, ``suppressed``) follows from its noisy size and the policy. The bootstrap intervals of
  :func:`~sandbox.fairness.audit_from_counts` add fresh noise of the same scale, so they include the noise;
* the proxy check: for each model feature x protected attribute a noisy contingency table (feature category --
  numeric features in equal-width bins over their SCHEMA bounds -- x attribute value), L1 sensitivity
  ``features x attributes`` in total, from which the one-feature AUC and mutual information are computed. Only the
  AUC and mutual information leave, not the tables.

The audit's epsilon (``fairness.audit_epsilon`` unless the request names one) is split: :data:`COUNT_SHARE` for the
counts and the rest for the proxy tables. All of it is ONE ledger charge of kind ``"audit"`` keyed on the model id,
the resolved protected attributes and epsilon, so the identical request returns the stored audit at no cost. The
charge's private part lists the true household count of every group and whether it was released (``cells``),
for the reviewers' exact disclosure check (the gate's ``reviewer_findings``); it never reaches the analyst.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sandbox._private.shared.canonical import canonical_json
from sandbox._private.shared.errors import QueryError
from sandbox._private.shared.modelspec import ModelSpec
from sandbox._private.shared.policy import Policy
from sandbox._private.shared.query import check_epsilon
from sandbox._private.shared.schema import TableSchema
from sandbox._private.vault.ledger.ledger import ChargeRecord, ComputedAnswer, DatasetRecord
from sandbox._private.vault.service import VaultService, result_payload
from sandbox._private.vault.tokens import TokenInfo
from sandbox.fairness import (
    FACET_SEP,
    CodedAttribute,
    CountTable,
    FacetCounts,
    ProxyReport,
    audit_from_counts,
    proxy_table,
    schema_facet_counts,
)

from .engine import DPEngine, FittedAnswer
from .mechanisms import noisy_vector
from .tabledata import TableData

__all__ = [
    "AuditJob",
    "audit_model",
    "prepare_audit",
    "compute_audit",
    "noisy_counts",
    "resolve_attributes",
    "COUNT_SHARE",
    "PROXY_BINS",
    "MISSING_LABEL",
]

#: Share of the audit's epsilon spent on the confusion counts; the rest goes to the proxy tables.
COUNT_SHARE = 0.75
#: Equal-width bins over the schema bounds of a numeric feature in the proxy check.
PROXY_BINS = 10
#: Label of the group of rows with a missing value in a nullable protected attribute.
MISSING_LABEL = "missing"
_N_BOOT = 1000


@dataclass(frozen=True)
class AuditJob:
    """A resolved audit request: the model's ledger record and spec, the attributes, facets and epsilon."""

    model: ChargeRecord
    public: Mapping[str, Any]
    spec: ModelSpec
    dataset: DatasetRecord
    attributes: tuple[str, ...]
    facets: tuple[tuple[str, ...], ...]
    epsilon: float

    @property
    def query(self) -> dict[str, Any]:
        """What the ledger records (and keys the stored answer on)."""
        return {"model_id": self.model.id, "protected": list(self.attributes), "epsilon": self.epsilon}


def _model_record(service: VaultService, model_id: str) -> ChargeRecord:
    record = service.ledger.result(model_id)
    record.verify()
    if record.kind != "model":
        raise QueryError(
            f"result {model_id} is a {record.kind!r} result, not a fitted model; audit the id of a FittedModel "
            "(the object hh.fit(...) returns)."
        )
    return record


def _check_binary(public: Mapping[str, Any], model_id: str) -> None:
    classes = public.get("classes")
    if public.get("task") != "classification" or not isinstance(classes, list) or len(classes) != 2:
        raise QueryError(
            f"model {model_id} is a {public.get('task')} model with classes {classes}; the fairness audit needs a "
            "binary classifier (two classes, the second one the positive decision)."
        )


def resolve_attributes(requested: Sequence[str] | None, schema: TableSchema, policy: Policy) -> tuple[str, ...]:
    """Return the protected attributes to audit: the request's, or the policy's that the table has (category/bool)."""
    known = list(policy.fairness.protected_attributes)
    usable = [c.name for c in schema.columns if c.kind in ("category", "bool")]
    if requested is None:
        attrs = [a for a in known if a in usable]
        if not attrs:
            raise QueryError(
                f"table {schema.name!r} has none of the policy's protected attributes {known} as a category or bool "
                "column; name the attributes to audit with protected=[...]."
            )
        return tuple(attrs)
    unknown = [a for a in requested if a not in known]
    if unknown:
        raise QueryError(
            f"{unknown} are not protected attributes of policy {policy.name!r}; the known ones are {known}. "
            "Choose among them, or add the attribute to fairness.protected_attributes in the policy."
        )
    absent = [a for a in requested if a not in usable]
    if absent:
        raise QueryError(
            f"table {schema.name!r} has no category or bool column {absent}; of the protected attributes it has "
            f"{[a for a in known if a in usable]}."
        )
    if not requested:
        raise QueryError(f"protected=[] audits nothing; name at least one of {known}, or pass None for all.")
    return tuple(dict.fromkeys(requested))


def prepare_audit(
    service: VaultService, model_id: str, protected: Sequence[str] | None, epsilon: float | None
) -> AuditJob:
    """Validate an audit request against the ledger, the schema and the policy; no rows are touched."""
    policy = service.policy
    record = _model_record(service, model_id)
    public = json.loads(record.public_json)
    _check_binary(public, model_id)
    dataset = service.ledger.dataset(record.dataset, record.version)
    schema = TableSchema.from_json(dataset.schema_json)
    attrs = resolve_attributes(protected, schema, policy)
    eps = check_epsilon(
        policy.fairness.audit_epsilon if epsilon is None else epsilon, cap=policy.budget.epsilon_per_query_max
    )
    inter = tuple(tuple(c) for c in policy.fairness.intersections if set(c) <= set(attrs))
    facets = tuple((a,) for a in attrs) + inter
    spec = ModelSpec.from_dict(public["spec"])
    return AuditJob(record, public, spec, dataset, attrs, facets, float(eps))


def _coded(table: TableData, name: str, mask: np.ndarray) -> CodedAttribute:
    col = table.schema.column(name)
    labels = [str(k) for k in table.schema.group_keys(name)]
    codes = table.codes[name][mask].astype(np.int64)
    if col.nullable:
        codes = np.where(codes < 0, len(labels), codes)
        labels.append(MISSING_LABEL)
    return CodedAttribute(name, codes, tuple(labels))


def _feature_codes(table: TableData, name: str, mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Codes of a model feature for the proxy table, categories from the schema; the last code is 'missing'."""
    col = table.schema.column(name)
    if col.kind in ("category", "bool"):
        n = len(table.schema.group_keys(name))
        codes = table.codes[name][mask].astype(np.int64)
        return np.where(codes < 0, n, codes), n + 1
    lo, hi = col.bounds
    v = table.numeric(name)[mask]
    edges = np.linspace(lo, hi, PROXY_BINS + 1)[1:-1]
    codes = np.searchsorted(edges, np.nan_to_num(v, nan=lo), side="right").astype(np.int64)
    return np.where(np.isnan(v), PROXY_BINS, codes), PROXY_BINS + 1


def _laplace(epsilon: float) -> Any:
    def noise(vector: np.ndarray, sensitivity: float) -> tuple[np.ndarray, float]:
        noisy, n = noisy_vector(vector, epsilon=epsilon, delta=0.0, sensitivity=sensitivity, integer=False)
        return noisy, float(n.scale)

    return noise


#: Adds noise to a 1-d vector of exact counts with the given L1 sensitivity; returns (noisy, Laplace scale).
NoiseFn = Callable[[np.ndarray, float], tuple[np.ndarray, float]]


def noisy_counts(
    exact: Sequence[Any], epsilon: float, min_count: int, noise: NoiseFn
) -> tuple[CountTable, list[tuple[str, str]]]:
    """Noise every facet's counts and the overall counts (L1 sensitivity ``G + 1``); suppress on the noisy sizes.

    Parameters
    ----------
    exact : sequence of FacetExact
        The exact counts of each facet (:func:`sandbox.fairness.schema_facet_counts`); each partitions the rows.
    epsilon : float
        Privacy loss of the whole table.
    min_count : int
        Disclosure minimum: a group whose noisy size is below it is suppressed.
    noise : callable
        ``noise(vector, sensitivity) -> (noisy vector, Laplace scale)`` at ``epsilon``.

    Returns
    -------
    (CountTable, suppressed)
        The released table and the ``(facet name, group label)`` pairs suppressed; both are post-processing of the
        noisy counts alone.
    """
    sensitivity = float(len(exact) + 1)
    facets, suppressed = [], []
    scale = 0.0
    for f in exact:
        noisy, scale = noise(f.counts.ravel().astype(np.float64), sensitivity)
        released = np.clip(np.rint(noisy), 0.0, None).reshape(f.counts.shape)
        small = released.sum(axis=1) < min_count
        fc = FacetCounts(f.attributes, f.groups, released, small)
        suppressed += [(fc.name, lab) for lab, s in zip(fc.labels, small, strict=True) if s]
        facets.append(fc)
    overall_exact = exact[0].counts.sum(axis=0).astype(np.float64)
    overall, scale = noise(overall_exact, sensitivity)
    return CountTable(tuple(facets), np.clip(np.rint(overall), 0.0, None), scale), suppressed


def _bootstrap_rng() -> np.random.Generator:
    """Fresh generator for the audit's bootstrap (post-processing of the noisy counts; never seeded by a client)."""
    return np.random.Generator(np.random.SFC64())


def _proxies(
    job: AuditJob,
    table: TableData,
    mask: np.ndarray,
    attrs: Mapping[str, CodedAttribute],
    eps: float,
    threshold: float,
    protected: Sequence[str],
) -> tuple[ProxyReport, float]:
    """Return the DP proxy report and the Laplace scale of its tables."""
    feats = list(job.spec.features)
    noise = _laplace(eps)
    sensitivity = float(len(feats) * len(job.attributes))
    tables = {}
    for f in feats:
        codes, k = _feature_codes(table, f, mask)
        for a in job.attributes:
            enc = attrs[a]
            exact = np.bincount(codes * len(enc.labels) + enc.codes, minlength=k * len(enc.labels)).astype(float)
            noisy, _ = noise(exact, sensitivity)
            tables[(f, a)] = np.clip(noisy, 0.0, None).reshape(k, len(enc.labels))
    labels = {a: enc.labels for a, enc in attrs.items()}
    report = proxy_table(tables, labels, threshold)
    direct = tuple(f for f in feats if f in set(protected))  # direct distinction: a protected attribute as feature
    return replace(report, protected_as_features=direct), sensitivity / eps


def _binary(values: np.ndarray, positive: Any) -> np.ndarray:
    """1 where a label equals the positive class (labels are schema values: bools or category strings)."""
    hit = np.asarray(values, dtype=object) == positive
    if np.shape(hit) != np.shape(values):  # pragma: no cover - numpy refused the element-wise comparison
        hit = np.fromiter((v == positive for v in values), dtype=bool, count=len(values))
    return np.asarray(hit, dtype=np.int64)


def compute_audit(job: AuditJob, table: TableData, engine: DPEngine) -> ComputedAnswer:
    """Predict on the protected rows, release DP counts and the DP proxy check; see the module docstring."""
    policy = engine.policy
    fitted = FittedAnswer(public=dict(job.public), private={}, spec=job.spec)
    mask = engine.model_rows(fitted, table)
    y_true, y_pred, _ = engine.predict_in_vault(fitted, table)
    positive = job.public["classes"][1]
    attrs = {a: _coded(table, a, mask) for a in job.attributes}
    exact = schema_facet_counts(_binary(y_true, positive), _binary(y_pred, positive), attrs, job.facets)
    eps_counts = job.epsilon * COUNT_SHARE
    counts, suppressed = noisy_counts(exact, eps_counts, policy.disclosure.min_count, _laplace(eps_counts))
    proxies, proxy_scale = _proxies(
        job,
        table,
        mask,
        attrs,
        job.epsilon - eps_counts,
        policy.fairness.proxy_auc_threshold,
        policy.fairness.protected_attributes,
    )
    limitations = (
        f"epsilon {job.epsilon:g} split: {eps_counts:g} for the confusion counts of {len(exact)} facets and the "
        f"overall row (Laplace scale {counts.noise_scale:g} per count), {job.epsilon - eps_counts:g} for the proxy "
        f"tables (Laplace scale {proxy_scale:g} per cell)",
        "the overall counts are a noisy vector of their own, so they need not equal the sum of a facet's groups; "
        f"groups whose noisy size is below {policy.disclosure.min_count} are suppressed",
        f"proxy AUC is computed in-sample on noisy tables of schema categories (numeric features in {PROXY_BINS} "
        "equal-width bins over their schema bounds)",
    )
    audit = audit_from_counts(
        counts,
        noise_scale=counts.noise_scale,
        policy=policy,
        n_boot=_N_BOOT,
        random_state=_bootstrap_rng(),
        limitations=limitations,
    )
    audit = replace(audit, proxies=proxies, model_features=tuple(job.spec.features))
    public = {
        **audit.to_dict(),
        "model_id": job.model.id,
        "dataset": job.dataset.name,
        "version": job.dataset.version,
        "epsilon": job.epsilon,
        "mechanism": "Laplace",
    }
    units = [
        (FACET_SEP.join(f.attributes), FACET_SEP.join(g), int(u))
        for f in exact
        for g, u in zip(f.groups, f.units, strict=True)
    ]
    hidden = set(suppressed)
    private = {
        "format": "sandbox.audit-private/2",
        "cells": [{"key": [n, g], "units": u, "released": (n, g) not in hidden} for n, g, u in units],
        "suppressed": len(suppressed),
        "n_rows": int(mask.sum()),
    }
    return ComputedAnswer(public, private, "Laplace")


def audit_model(
    service: VaultService,
    model_id: str,
    protected: Sequence[str] | None,
    epsilon: float | None,
    caller: TokenInfo,
    run_id: str | None,
) -> dict[str, Any]:
    """Audit a fitted model in the vault and charge it (one ledger charge of kind ``"audit"``).

    Parameters
    ----------
    service : VaultService
        The vault (ledger, policy, tables).
    model_id : str
        Ledger id of a fitted model (kind ``"model"``).
    protected : sequence of str or None
        Protected attributes to audit; ``None``: every protected attribute of the policy the table has.
    epsilon : float or None
        Privacy loss of the audit; ``None``: the policy's ``fairness.audit_epsilon``.
    caller : TokenInfo
        The analyst, charged for the audit.
    run_id : str or None
        Recorded with the charge.

    Returns
    -------
    dict
        The stored answer in the same form as ``/v1/query`` answers (``values`` is the audit's ``to_dict()`` plus
        ``model_id``); ``reused`` and ``charged_epsilon`` 0 for a repeated identical request.

    Raises
    ------
    NotFoundError
        No result with that id.
    QueryError
        The id is not a binary classifier, an attribute is unknown, or epsilon is invalid.
    BudgetExceededError
        The dataset's (or the analyst's) remaining budget is smaller than epsilon.
    """
    job = prepare_audit(service, model_id, protected, epsilon)
    engine = service.engine
    table = service.model_table(job.dataset, job.public, job.attributes)  # the rows the model was fitted on
    outcome = service.ledger.charge(
        job.dataset,
        kind="audit",
        query_key=canonical_json({"kind": "audit", **job.query}),
        query=job.query,
        epsilon=job.epsilon,
        delta=0.0,
        analyst=caller.name,
        run_id=run_id,
        compute=lambda: compute_audit(job, table, engine),
        analyst_limit=service.policy.budget.epsilon_per_analyst,
    )
    out = result_payload(outcome.record, reused=outcome.reused, charged=outcome.charged_epsilon)
    out["epsilon_remaining"] = outcome.epsilon_remaining
    return out
