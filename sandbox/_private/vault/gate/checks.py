"""The release gate: what may leave, checked item by item before a request is offered to reviewers.

For every item the client names (a result id and the sha256 of the result it holds, optionally the values
themselves) the gate:

1. checks **provenance** against the ledger: the id was minted by this vault, the hash (and the values, when
   sent) match the stored answer, the caller is its analyst, it is not already released or in another open
   request. Anything else (a DataFrame, an edited result, a forged or foreign id, a double release) is refused
   outright with :class:`ReleaseError`; no request is created;
2. runs the **disclosure (SDC)** rules on every table item twice: on DP values only for the analyst
   (:mod:`.dp_sdc`: the released noisy counts, or a DP disclosure test the service charged first), and on the
   true cell statistics for the reviewers (:mod:`.findings`);
3. requires that a **model** comes with a **fairness audit of that same model** in the same request, carries
   the audit's verdict and its **proxy check** (no proxy check, or a flagged proxy, needs a reviewer); the audit's
   numbers are DP, so its verdict may be shown;
4. checks that the request's **total epsilon** is within ``policy.budget.epsilon_per_release_max``.

Each item gets pass / review / fail with reasons, from public facts and DP values only (DESIGN invariant 10); a
request with any failing item (or a failing request-level check) is *blocked*: it can never be submitted to
reviewers. The exact findings never change what the analyst is told; they are kept for the reviewers, who cannot
approve a request whose exact disclosure checks fail.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sandbox._private.shared.canonical import canonical_json
from sandbox._private.shared.errors import InternalError, NotFoundError, ReleaseError
from sandbox._private.shared.policy import Policy
from sandbox._private.shared.schema import TableSchema
from sandbox._private.shared.verdict import Status, worst
from sandbox._private.vault.ledger.ledger import ChargeRecord

from .dp_sdc import DPCheck, TestPlan, dp_check, parsed, plan_test
from .findings import ItemFindings, build_findings, exact_findings

__all__ = [
    "ItemRef",
    "ItemCheck",
    "GateReport",
    "OpenItem",
    "FORMAT",
    "resolve_items",
    "plan_tests",
    "check_records",
    "check_release",
]

#: Format of the analyst's gate report (``gate`` in a request's view).
FORMAT = "sandbox.gate/2"
SchemaOf = Callable[[ChargeRecord], "TableSchema | None"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_RESULT_ID = re.compile(r"r_[A-Za-z0-9_-]{1,64}")
_NOT_A_RESULT = (
    "only results minted by the vault can be released (the objects returned by count(), mean(), fit(), "
    "audit(), ...), not {what}; pass those objects, or their ids, to ws.release()."
)


@dataclass(frozen=True)
class ItemRef:
    """What the client claims about one item: its id, the sha256 it holds, and optionally the values."""

    id: str
    sha256: str
    values: Any = None

    @classmethod
    def parse(cls, obj: Any) -> ItemRef:
        """Validate one item of a release body (a JSON object ``{"id", "sha256"[, "values"]}``)."""
        if not isinstance(obj, Mapping):
            raise ReleaseError(_NOT_A_RESULT.format(what=f"a {type(obj).__name__}"))
        rid, digest = obj.get("id"), obj.get("sha256")
        if not isinstance(rid, str) or not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise ReleaseError(_NOT_A_RESULT.format(what=f"an object with id={rid!r} and sha256={digest!r}"))
        if not _RESULT_ID.fullmatch(rid):
            raise ReleaseError(
                f"result {rid[:80]!r} was not minted by this vault (ids look like 'r_...'); release results this "
                "vault returned to you."
            )
        unknown = set(obj) - {"id", "sha256", "values", "kind"}
        if unknown:
            raise ReleaseError(f"release item {rid}: unknown fields {sorted(unknown)}; send only id and sha256.")
        return cls(rid, digest, obj.get("values"))


@dataclass(frozen=True)
class OpenItem:
    """A result that is already in a request: which one, and its status."""

    request_id: str
    status: str


@dataclass(frozen=True)
class ItemCheck:
    """The gate's verdict on one item.

    ``verdict`` and ``reasons`` are what the analyst sees: public facts and DP values only. ``exact`` holds the
    findings on the true cell statistics, for reviewers (never in :meth:`to_json`).
    """

    result_id: str
    kind: str
    dataset: str
    epsilon: float
    verdict: Status
    reasons: tuple[str, ...]
    sdc: DPCheck | None = None
    audit_id: str | None = None
    exact: ItemFindings | None = field(default=None, repr=False)
    fairness: Mapping[str, Any] | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        """Return the analyst's JSON form (for the ledger, the API, the CLI and the reviewer page)."""
        return {
            "id": self.result_id,
            "kind": self.kind,
            "dataset": self.dataset,
            "epsilon": self.epsilon,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "sdc": None if self.sdc is None else self.sdc.to_json(),
            "audit_id": self.audit_id,
        }


@dataclass(frozen=True)
class GateReport:
    """The gate's verdict on a whole request: every item, the request-level checks, the total epsilon."""

    items: tuple[ItemCheck, ...]
    reasons: tuple[str, ...]
    request_verdict: Status
    total_epsilon: float
    datasets: tuple[str, ...] = ()

    @property
    def verdict(self) -> Status:
        """Return the worst of the items' verdicts and the request-level verdict."""
        return worst([self.request_verdict, *(i.verdict for i in self.items)])

    @property
    def blocked(self) -> bool:
        """Whether the request can never be offered to reviewers."""
        return self.verdict == "fail"

    @property
    def test_epsilon(self) -> float:
        """Epsilon of the DP disclosure tests behind the analyst's view (charged separately, not in the items)."""
        return float(sum(i.sdc.epsilon for i in self.items if i.sdc is not None))

    def to_json(self) -> dict[str, Any]:
        """Return the analyst's JSON form: DP values and public facts only."""
        return {
            "format": FORMAT,
            "verdict": self.verdict,
            "blocked": self.blocked,
            "reasons": list(self.reasons),
            "total_epsilon": self.total_epsilon,
            "test_epsilon": self.test_epsilon,
            "datasets": list(self.datasets),
            "items": [i.to_json() for i in self.items],
        }

    def reviewer_findings(self) -> dict[str, Any]:
        """Return the exact findings for reviewers (see :mod:`.findings`), with a fresh salt."""
        exact = [i.exact for i in self.items if i.exact is not None]
        return build_findings(exact, {i.result_id: i.verdict for i in self.items})


def _provenance(ref: ItemRef, lookup: Callable[[str], ChargeRecord], analyst: str) -> ChargeRecord:
    try:
        record = lookup(ref.id)
    except NotFoundError:
        raise ReleaseError(
            f"result {ref.id} was not minted by this vault (unknown id: forged, or from another vault or "
            "workspace); release results this vault returned to you."
        ) from None
    record.verify()
    if ref.sha256 != record.result_sha256:
        raise ReleaseError(
            f"result {ref.id}: the client holds sha256 {ref.sha256[:12]}..., the ledger recorded "
            f"{record.result_sha256[:12]}...: the result was edited after the vault returned it. Release the "
            "object the vault returned, unmodified (ws.result(id) fetches it again)."
        )
    if ref.values is not None:
        digest = hashlib.sha256(canonical_json(ref.values).encode()).hexdigest()
        if digest != record.result_sha256:
            raise ReleaseError(
                f"result {ref.id}: its values were changed on the client (they hash to {digest[:12]}..., the "
                f"ledger recorded {record.result_sha256[:12]}...). Release the object the vault returned, unmodified."
            )
    if record.analyst != analyst:
        raise ReleaseError(
            f"result {ref.id} belongs to analyst {record.analyst!r}, not to {analyst!r}; only its own analyst can "
            "ask to release it."
        )
    return record


def _loads(text: str) -> Mapping[str, Any]:
    return parsed(text)


def _audit_target(record: ChargeRecord) -> str | None:
    for source in (_loads(record.public_json), _loads(record.query_json)):
        if isinstance(source.get("model_id"), str):
            return str(source["model_id"])
    return None


def _proxy_findings(audit: Mapping[str, Any], threshold: float) -> list[tuple[Status, str]]:
    proxies = audit.get("proxies")
    if not isinstance(proxies, list):
        return [("review", "the fairness audit carries no proxy check; a reviewer must judge the features")]
    found: list[tuple[Status, str]] = []
    for row in proxies:
        if isinstance(row, Mapping) and row.get("flagged"):
            found.append(
                (
                    "review",
                    f"feature {row.get('feature')!r} predicts protected attribute {row.get('attribute')!r} with "
                    f"AUC {float(row.get('auc') or 0):.2f} (threshold {threshold:.2f}): a possible proxy; a "
                    "reviewer must judge it, or drop the feature",
                )
            )
    return found


def _fairness_findings(model: ChargeRecord, audit: ChargeRecord | None, policy: Policy) -> list[tuple[Status, str]]:
    if audit is None:
        return [
            (
                "fail",
                f"model {model.id} has no fairness audit in this request: run audit() on the model and release "
                "the audit together with it",
            )
        ]
    public = _loads(audit.public_json)
    verdict = public.get("verdict")
    status = verdict.get("status") if isinstance(verdict, Mapping) else verdict
    if status not in ("pass", "review", "fail"):
        return [("fail", f"fairness audit {audit.id} has no verdict; run the audit again in the vault")]
    found: list[tuple[Status, str]] = []
    if status != "pass":
        why = "; ".join(str(r) for r in (verdict.get("reasons", []) if isinstance(verdict, Mapping) else []))
        found.append((status, f"fairness audit {audit.id} says {status}" + (f": {why}" if why else "")))
    return found + _proxy_findings(public, policy.fairness.proxy_auc_threshold)


def _check_item(
    record: ChargeRecord,
    audits: Mapping[str, ChargeRecord],
    policy: Policy,
    test: ChargeRecord | None,
    schema: TableSchema | None,
) -> ItemCheck:
    found: list[tuple[Status, str]] = []
    sdc = dp_check(record, test, policy, schema)
    if sdc is not None:
        found += [(sdc.verdict, r) for r in sdc.reasons]
    audit = audits.get(record.id)
    if record.kind == "model":
        found += _fairness_findings(record, audit, policy)
    elif record.kind not in ("aggregate", "audit"):
        found.append(("fail", f"result {record.id} is of kind {record.kind!r}, which the gate cannot check"))
    return ItemCheck(
        result_id=record.id,
        kind=record.kind,
        dataset=f"{record.dataset} v{record.version}",
        epsilon=record.epsilon,
        verdict=worst(v for v, _ in found),
        reasons=tuple(r for _, r in found if r),
        sdc=sdc,
        audit_id=audit.id if audit else None,
        exact=exact_findings(record, policy),
        fairness=_loads(audit.public_json) if audit else None,
    )


def _refs(items: Sequence[Any], policy: Policy) -> list[ItemRef]:
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise ReleaseError(_NOT_A_RESULT.format(what=f"a {type(items).__name__}") + " Pass a list of results.")
    if not items:
        raise ReleaseError("a release needs at least one item; pass a list of results.")
    cap = policy.limits.max_items_per_release
    if len(items) > cap:
        raise ReleaseError(f"a release may hold at most {cap} items, got {len(items)}; split it into several.")
    refs = [ItemRef.parse(i) for i in items]
    ids = [r.id for r in refs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ReleaseError(f"items {dupes} are listed twice; list each result once.")
    return refs


def resolve_items(
    items: Sequence[Any],
    *,
    analyst: str,
    lookup: Callable[[str], ChargeRecord],
    policy: Policy,
    open_item: Callable[[str], OpenItem | None] = lambda _id: None,
) -> list[ChargeRecord]:
    """Check the items' shape and provenance and return their ledger records (see :func:`check_release`)."""
    refs = _refs(items, policy)
    records = [_provenance(ref, lookup, analyst) for ref in refs]
    for record in records:
        held = open_item(record.id)
        if held is not None:
            raise ReleaseError(
                f"result {record.id} is already in request {held.request_id} ({held.status}); an item is released "
                "only once: withdraw that request first, or leave the item out."
            )
    return records


def plan_tests(records: Sequence[ChargeRecord], policy: Policy, schema_of: SchemaOf) -> dict[str, TestPlan]:
    """Return the DP disclosure tests the gate must charge before it can answer (item id -> plan)."""
    plans = {r.id: plan_test(r, policy, schema_of(r)) for r in records}
    return {rid: p for rid, p in plans.items() if p is not None}


def check_records(
    records: Sequence[ChargeRecord],
    policy: Policy,
    *,
    tests: Mapping[str, ChargeRecord] | None = None,
    schema_of: SchemaOf = lambda _r: None,
) -> GateReport:
    """Check resolved records; ``tests`` holds the charged DP test of every item :func:`plan_tests` named."""
    tests = dict(tests or {})
    missing = sorted(set(plan_tests(records, policy, schema_of)) - set(tests))
    if missing:
        raise InternalError(f"the gate must charge the DP disclosure tests of {missing} before checking them.")
    audits = {m: r for r in records if r.kind == "audit" and (m := _audit_target(r)) is not None}
    checks = tuple(_check_item(r, audits, policy, tests.get(r.id), schema_of(r)) for r in records)
    total = sum(r.epsilon for r in records)
    cap = policy.budget.epsilon_per_release_max
    reasons: list[str] = []
    if total > cap + 1e-9:
        reasons.append(
            f"the items spend ε={total:.3f} together; one release may carry at most ε={cap:.3f} "
            "(policy budget.epsilon_per_release_max): release fewer items or split the release"
        )
    datasets = tuple(sorted({r.dataset for r in records}))
    return GateReport(checks, tuple(reasons), "fail" if reasons else "pass", total, datasets)


def check_release(
    items: Sequence[Any],
    *,
    analyst: str,
    lookup: Callable[[str], ChargeRecord],
    policy: Policy,
    open_item: Callable[[str], OpenItem | None] = lambda _id: None,
    tests: Mapping[str, ChargeRecord] | None = None,
    schema_of: SchemaOf = lambda _r: None,
) -> GateReport:
    """Check a release request's items.

    Parameters
    ----------
    items : sequence
        The items as sent by the client: JSON objects ``{"id", "sha256"[, "values"]}``.
    analyst : str
        The caller (must be the analyst of every item).
    lookup : callable
        ``lookup(result_id) -> ChargeRecord``, raising :class:`NotFoundError` for unknown ids (the ledger).
    policy : Policy
        The policy in force.
    open_item : callable, optional
        ``open_item(result_id)`` returns the request that already holds the result (released or still open).
    tests : mapping, optional
        The charged DP disclosure test (a ledger record of kind ``"sdc_test"``) of every item that needs one.
    schema_of : callable, optional
        The public schema of an item's dataset version (bounds of the DP tests, signs of magnitude columns).

    Returns
    -------
    GateReport
        Verdicts per item and for the request; ``blocked`` when anything fails.

    Raises
    ------
    ReleaseError
        If an item is not a vault result, its hash or values differ from the ledger, it belongs to another
        analyst, or it is already released or in another open request.
    """
    records = resolve_items(items, analyst=analyst, lookup=lookup, policy=policy, open_item=open_item)
    return check_records(records, policy, tests=tests, schema_of=schema_of)
