"""The fairness report of an audit item of a release request, rendered by the vault for reviewers.

:func:`render_report` rebuilds the audit from its stored DP values (:meth:`sandbox.fairness.FairnessAudit.from_dict`)
and renders its report in Dutch or English, headed by what it belongs to (request, model, target, features,
dataset version, author, the policy in force) and with the schema's labels of the protected attributes. Nothing is
computed on rows: the report is post-processing of the audit the ledger charged.

A report opens in a browser tab, which cannot send the reviewer's token; :class:`ReportTickets` therefore mints a
one-use link for it (``sbr_...``, :data:`TICKET_SECONDS` s), and :func:`report_csp` allows exactly the report's own
styles (by their sha256) and its inline images, and no script at all.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sandbox._private.shared.errors import FairnessInputError, NotFoundError, ReleaseError

from .review_html import sub
from .review_i18n import Labels

__all__ = ["render_report", "audit_item", "report_filename", "report_csp", "ReportTickets", "Ticket", "TICKET_SECONDS"]

#: Seconds a one-use report link stays valid.
TICKET_SECONDS = 60.0
_STYLE = re.compile(r"<style>(.*?)</style>", re.DOTALL)


def audit_item(view: Mapping[str, Any], item_id: str) -> Mapping[str, Any]:
    """Return the stored values of audit item ``item_id`` of the request ``view``; ``NotFoundError`` otherwise."""
    items = (view.get("gate") or {}).get("items") or []
    audits = [str(i.get("id")) for i in items if i.get("kind") == "audit"]
    kinds = {str(i.get("id")): str(i.get("kind")) for i in items}
    if item_id not in kinds:
        raise NotFoundError(
            f"request {view.get('id')} has no item {item_id!r}; its fairness audit items are {audits or 'none'}."
        )
    if kinds[item_id] != "audit":
        raise NotFoundError(
            f"item {item_id} of request {view.get('id')} is a {kinds[item_id]}, not a fairness audit; reports exist "
            f"for its audit items {audits or '(none)'}."
        )
    detail = (view.get("details") or {}).get(item_id) or {}
    values = detail.get("values")
    if not isinstance(values, Mapping):
        raise NotFoundError(f"the stored values of audit {item_id} are missing from request {view.get('id')}.")
    return values


def _model_values(view: Mapping[str, Any], model_id: object) -> Mapping[str, Any]:
    detail = (view.get("details") or {}).get(str(model_id)) or {}
    values = detail.get("values")
    return values if isinstance(values, Mapping) else {}


def render_report(
    view: Mapping[str, Any], item_id: str, lang: str, *, schemas: Sequence[str] = (), policy_sha256: str = ""
) -> str:
    """Render the report of audit ``item_id`` of request ``view`` (as a reviewer sees it) in ``lang``.

    Parameters
    ----------
    view : mapping
        The request with its item details (``ReleaseService.show(..., detail=True)``).
    item_id : str
        An audit item of the request.
    lang : {"nl", "en"}
        The report's language.
    schemas : sequence of str
        Schema JSON texts of the request's datasets (for the attributes' labels).
    policy_sha256 : str
        The policy the release is judged under (the report warns when the audit applied another).

    Raises
    ------
    NotFoundError
        The request has no such item, or it is not a fairness audit.
    ReleaseError
        The stored audit cannot be read as an audit.
    """
    from sandbox.fairness import FairnessAudit

    values = audit_item(view, item_id)
    try:
        audit = FairnessAudit.from_dict(dict(values))
    except (KeyError, TypeError, ValueError, FairnessInputError) as exc:
        raise ReleaseError(f"audit {item_id} cannot be read as a fairness audit ({exc}); its values are in the "
                           "request's details.") from None  # fmt: skip
    model = _model_values(view, values.get("model_id"))
    spec = sub(model, "spec")
    features = [str(f) for f in spec.get("features") or values.get("model_features") or []]
    metadata = {
        "request": f"{view.get('id', '')} · {view.get('title', '')}",
        "model": f"{values.get('model_id', '')} · {model.get('estimator', '')}".strip(" ·"),
        "target": str(model.get("target") or spec.get("target") or ""),
        "features": features,
        "dataset": str(values.get("dataset", "")),
        "dataset_version": str(values.get("version", "")),
        "author": str(view.get("author", "")),
        "policy_sha256": policy_sha256,
    }
    labels = Labels.from_schemas(schemas, lang)
    attributes = {a for facet in values.get("facets") or [] for a in facet if isinstance(a, str)}
    attribute_labels = {a: labels.column(a) for a in attributes if labels.column(a) != a}
    return audit.to_html(lang, metadata=metadata, attribute_labels=attribute_labels)


def report_filename(request_id: str, item_id: str, lang: str) -> str:
    """Name a saved report: ``<request>_<audit item>_fairness_report_<lang>.html``."""
    return f"{request_id}_{item_id}_fairness_report_{lang}.html"


def report_csp(page: str) -> str:
    """Return a CSP for the report ``page``: its own ``<style>`` blocks (by sha256), inline images, no script."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.encode()).digest()).decode() + "'" for m in _STYLE.findall(page)
    )
    return (
        f"default-src 'none'; style-src {hashes or chr(39) + 'none' + chr(39)}; img-src data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


@dataclass(frozen=True)
class Ticket:
    """What a one-use report link opens: a report of one audit item, for one reviewer."""

    reviewer: str
    role: str
    request_id: str
    item_id: str
    lang: str


class ReportTickets:
    """One-use links to reports, kept in the vault's memory by their sha256 (a restart ends them)."""

    def __init__(self, seconds: float = TICKET_SECONDS) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._open: dict[str, tuple[Ticket, float]] = {}

    @staticmethod
    def _digest(code: str) -> str:
        return hashlib.sha256(code.encode("utf-8", "replace")).hexdigest()

    def issue(self, ticket: Ticket) -> str:
        """Mint a link code for ``ticket``, valid once for :attr:`seconds`."""
        code = "sbr_" + secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            self._open = {k: v for k, v in self._open.items() if v[1] >= now}
            self._open[self._digest(code)] = (ticket, now + self.seconds)
        return code

    def redeem(self, code: str) -> Ticket:
        """Use up ``code`` and return its ticket; an unknown, used or expired code is a ``NotFoundError``."""
        with self._lock:
            found = self._open.pop(self._digest(code), None)
        if found is None or found[1] < time.monotonic():
            raise NotFoundError(
                f"this report link is unknown, used or expired (links last {self.seconds:g} s and open once); open "
                "the report again from the review page."
            )
        return found[0]
