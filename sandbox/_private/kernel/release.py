"""The analyst's side of the release gate: ``ws.release(...)`` and the :class:`ReleaseRequest` it returns.

Only references leave the analyst's kernel: each item is sent as the id and sha256 the vault minted, with the
values the kernel holds so the gate can tell an edited result from the one it stored. Everything that is
released is rendered in the vault from the ledger's own copy.
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox._private.shared.algoritmeregister import check_author_fields
from sandbox._private.shared.errors import ReleaseError, SandboxError, SandboxWarning
from sandbox._private.shared.schema import TableSchema

from .results import thaw
from .spend import record_release
from .transport import Transport

__all__ = ["ReleaseRequest", "release", "item_reference"]


def item_reference(item: Any) -> dict[str, Any]:
    """Return the JSON reference of a vault result; refuse anything else (frames, arrays, plain dicts)."""
    rid, digest = getattr(item, "id", None), getattr(item, "sha256", None)
    if isinstance(rid, str) and isinstance(digest, str):
        values = getattr(item, "values", None)
        ref: dict[str, Any] = {"id": rid, "sha256": digest}
        if isinstance(values, Mapping):
            ref["values"] = thaw(values)
        return ref
    raise ReleaseError(
        f"only results minted by the vault can be released, not a {type(item).__name__}; pass the objects "
        "returned by count(), mean(), fit(), audit(), ... (ws.result(id) fetches one by id)."
    )


@dataclass
class ReleaseRequest:
    """A release request as the vault reports it: status, the gate's verdict per item and the reasons.

    ``status`` is ``blocked`` (a check failed; see :attr:`reasons`), ``pending_review``, ``approved``,
    ``released``, ``returned``, ``rejected`` or ``withdrawn``.

    Everything here is computed from public facts and DP values only, so it is the same whether or not any one
    household is in the data: the disclosure rules are applied to the released noisy counts, or to a DP
    disclosure test the gate charged in the ledger (:attr:`test_epsilon`). The reviewers also see the rules applied
    to the true counts; a request that fails those goes to review all the same, and the reviewers reject or return
    it. Requests per dataset and day are capped by the policy (``gate.max_requests_per_day``).
    """

    data: dict[str, Any]
    _t: Transport
    #: The fairness reports written for you when the request was made (``workspace/reports/<request id>/``).
    reports: list[Path] = field(default_factory=list)

    @property
    def id(self) -> str:
        """Return the request id."""
        return str(self.data["id"])

    @property
    def status(self) -> str:
        """Return the public status."""
        return str(self.data["status"])

    @property
    def items(self) -> list[dict[str, Any]]:
        """Return the gate's verdict per item (id, kind, verdict, reasons, epsilon)."""
        return list(self.data["gate"]["items"])

    @property
    def test_epsilon(self) -> float:
        """Return the epsilon the gate charged for its DP disclosure tests of this request's items."""
        return float(self.data["gate"].get("test_epsilon", 0.0))

    @property
    def reasons(self) -> list[str]:
        """Return every reason the gate gave (request-level first, then per item)."""
        out = list(self.data["gate"]["reasons"])
        return out + [f"{i['id']}: {r}" for i in self.items for r in i["reasons"]]

    @property
    def warnings(self) -> list[str]:
        """Return the gate's warnings that do not block the request: the Algoritmeregister draft's unfilled fields."""
        return [str(w) for w in (self.data["gate"].get("register") or {}).get("warnings", [])]

    @property
    def register(self) -> dict[str, Any]:
        """Return the Algoritmeregister section: your ``fields`` and per model its ``unfilled`` fields (or ``{}``)."""
        return dict(self.data["gate"].get("register") or {})

    def refresh(self) -> ReleaseRequest:
        """Fetch the current state from the vault."""
        self.data = dict(self._t.get(f"/v1/releases/{self.id}"))
        return self

    def _act(self, action: str, comment: str = "") -> ReleaseRequest:
        self.data = dict(self._t.post(f"/v1/releases/{self.id}/actions", {"action": action, "comment": comment}))
        return self

    def respond(self, comment: str) -> ReleaseRequest:
        """Answer the reviewers of a returned request."""
        return self._act("respond", comment)

    def resubmit(self) -> ReleaseRequest:
        """Resubmit a returned request after responding."""
        return self._act("resubmit")

    def withdraw(self) -> ReleaseRequest:
        """Withdraw the request (its items may then be released in another one)."""
        return self._act("withdraw")

    def __repr__(self) -> str:
        return f"ReleaseRequest({self.id}, status={self.status!r}, items={len(self.items)})"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(i['kind'])}</td><td><code>{html.escape(i['id'])}</code></td>"
            f"<td>{html.escape(i['verdict'])}</td><td>{html.escape('; '.join(i['reasons']))}</td></tr>"
            for i in self.items
        )
        notes = "".join(f"<li>{html.escape(w)}</li>" for w in self.warnings)
        return (
            f"<b>{html.escape(self.data['title'])}</b> — {html.escape(self.status)}"
            f"<table><tr><th>kind</th><th>id</th><th>gate</th><th>reasons</th></tr>{rows}</table>"
            + (f"<p>Warnings (they do not block the request):</p><ul>{notes}</ul>" if notes else "")
        )


def release(
    transport: Transport,
    items: Sequence[Any],
    *,
    title: str,
    purpose: str,
    justification: str = "",
    register: Mapping[str, Any] | None = None,
    reports_to: Path | None = None,
) -> ReleaseRequest:
    """Ask the vault to release ``items``; see :class:`ReleaseRequest` for the outcome.

    With ``reports_to`` (the workspace's ``reports`` folder), the fairness report of every audit item is written
    there in Dutch and English, under the request's id (:mod:`.reports`); :attr:`ReleaseRequest.reports` lists them.

    ``register`` holds your fields of the model's Algoritmeregister draft (``sb.author_fields_help()`` lists
    them); the vault fills the rest from the request, the spec, the DP audit and the policy, and writes the draft
    to the outbox with the model. Fields still unfilled are in :attr:`ReleaseRequest.warnings`.

    Raises
    ------
    RegisterFieldError
        A register field the standard does not have, may not come from you, or whose value is over its limit
        (checked here and again in the vault; nothing is sent or stored).
    ReleaseError
        If an item is not a vault result (checked here and again in the vault), or the vault refuses the
        request (edited, forged or foreign results, an item already released, an unsafe title).
    """
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise ReleaseError(f"ws.release takes a list of results, got a {type(items).__name__}.")
    refs = [item_reference(i) for i in items]
    check_author_fields(register)
    body: dict[str, Any] = {
        "items": refs,
        "title": title,
        "purpose": purpose,
        "justification": justification,
    }
    if register:
        body["register"] = _json_ready(register)
    request = ReleaseRequest(dict(transport.post("/v1/releases", body)), transport)
    if reports_to is not None:
        request.reports = _write_reports(transport, request, items, reports_to)
    # A study run lists the release requests it made in its run record.
    record_release(request.id, status=request.status, items=[str(ref["id"]) for ref in refs])
    return request


def _json_ready(value: Any) -> Any:
    """Return ``value`` with tuples as lists and mappings as dicts (a study's parameters may hold either)."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


def _write_reports(transport: Transport, request: ReleaseRequest, items: Sequence[Any], folder: Path) -> list[Path]:
    """Write the request's fairness reports for its author; a folder that cannot be written only warns."""
    from .reports import request_reports, write_request_reports

    if not any(getattr(i, "kind", None) == "audit" for i in items):
        return []
    schemas: dict[str, TableSchema | None] = {}

    def schema_of(name: str) -> TableSchema | None:
        if name not in schemas:
            schemas[name] = TableSchema.from_dict(transport.get(f"/v1/datasets/{name}/schema")) if name else None
        return schemas[name]

    try:  # the request is made: a report that cannot be written warns, and never loses the request
        policy_sha256 = str(transport.get("/v1/health").get("policy_sha256") or "")
        pages = request_reports(request.data, items, schema_of, policy_sha256)
        return write_request_reports(folder / request.id, pages)
    except SandboxError as exc:  # OutputPathError, a schema or health answer missing, an unreadable audit
        warnings.warn(
            f"release request {request.id} was made, but its fairness reports were not written: {exc}",
            SandboxWarning,
            stacklevel=3,
        )
        return []
