"""Reviewer-only facts of a release request: the exact disclosure findings on the true cell statistics.

The gate checks every table and audit item twice. The analyst's view (:mod:`.dp_sdc`) uses DP values only; the
exact rules of :mod:`.sdc` run on the true statistics the vault stored with each answer (households per cell,
contributions; the true size of every audit group that was released) and their findings go to reviewers only.

Contract with the review page and ``sandbox review`` (the shape of ``reviewer_findings``)
-----------------------------------------------------------------------------------------
``GET /v1/releases/{id}`` and ``GET /v1/releases`` with a **reviewer or admin** token carry, for a request the
viewer did not write, a top-level key ``reviewer_findings``::

    {
      "format": "sandbox.reviewer-findings/1",
      "disclosure_verdict": "pass" | "review" | "fail",   # worst exact disclosure verdict over the items
      "approvable": bool,          # false when disclosure_verdict is "fail": approve is refused, reject or return
      "items": [
        {"id": "r_...", "kind": "aggregate" | "audit" | "model",
         "gate_verdict": "pass" | "review" | "fail",       # what the analyst was told (DP values only)
         "disclosure_verdict": "pass" | "review" | "fail", # the exact rules
         "reasons": ["cell (single, none) rests on 1 households; the minimum is 10: ...", ...],  # exact figures
         "cells": [{"key": [...], "verdict": ..., "reasons": [...]}],  # the first 100 cells that did not pass
         "cells_not_listed": 0}                                         # how many more did not pass
      ],
      "flags": [{"analyst", "dataset", "day", "requests", "blocked", "exact_fail", "request_ids"}],  # see below
      "salt": "<32 hex>",          # makes the journal's hash of these findings unguessable
      "sha256": "<64 hex>"         # the hash the audit log recorded for them (of everything above but flags)
    }

``flags`` lists the author's days on a dataset with at least ``policy.gate.flag_blocked_per_day`` requests that
were blocked or failed the exact checks (``GET /v1/gate/flags`` lists every analyst's). The analyst's view never has
``reviewer_findings``; the audit log records only ``sha256`` (salted, so a small count cannot be found by trying the
few possible values), and the figures live in the ledger database (table ``gate_requests``), which only the vault
reads.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sandbox._private.shared.canonical import canonical_sha256
from sandbox._private.shared.policy import Policy
from sandbox._private.shared.verdict import Status, worst
from sandbox._private.vault.ledger.ledger import ChargeRecord

from .dp_sdc import parsed
from .sdc import CellStats, TableCheck, cells_from_private, check_table

__all__ = ["FORMAT", "ItemFindings", "exact_findings", "build_findings", "findings_digest", "approvable"]

FORMAT = "sandbox.reviewer-findings/1"
_MAX_CELLS = 100  # cells listed per item (a 1000-bin histogram may fail everywhere); the rest are counted


@dataclass(frozen=True)
class ItemFindings:
    """The exact disclosure findings of one item (tables and audits; ``sdc`` is ``None`` for the rest)."""

    result_id: str
    kind: str
    sdc: TableCheck | None

    @property
    def verdict(self) -> Status:
        """The exact disclosure verdict (``pass`` for items without cells)."""
        return "pass" if self.sdc is None else self.sdc.verdict

    def to_json(self, gate_verdict: str) -> dict[str, Any]:
        """Return the item's entry in ``reviewer_findings``."""
        sdc = None if self.sdc is None else self.sdc.to_json()
        cells = [] if sdc is None else sdc["cells"]
        return {
            "id": self.result_id,
            "kind": self.kind,
            "gate_verdict": gate_verdict,
            "disclosure_verdict": self.verdict,
            "reasons": [] if sdc is None else sdc["reasons"],
            "cells": cells[:_MAX_CELLS],
            "cells_not_listed": max(0, len(cells) - _MAX_CELLS),
        }


def _loads(text: str) -> Mapping[str, Any]:
    return parsed(text)


def _audit_cells(private: Mapping[str, Any]) -> list[CellStats]:
    """Return the released groups of an audit with their true household counts (suppressed groups never left)."""
    out = []
    for cell in private.get("cells", []):
        if isinstance(cell, Mapping) and cell.get("released", True):
            out.append(CellStats(tuple(str(k) for k in cell.get("key", ())), int(cell["units"])))
    return out


def exact_findings(record: ChargeRecord, policy: Policy) -> ItemFindings:
    """Apply the exact disclosure rules to the true statistics the vault stored with the item."""
    private = _loads(record.private_json)
    if not isinstance(private.get("cells"), list) or record.kind not in ("aggregate", "audit"):
        return ItemFindings(record.id, record.kind, None)
    cells = cells_from_private(private) if record.kind == "aggregate" else _audit_cells(private)
    return ItemFindings(record.id, record.kind, check_table(cells, policy.disclosure, policy.privacy_unit))


def build_findings(items: Sequence[ItemFindings], gate_verdicts: Mapping[str, str]) -> dict[str, Any]:
    """Return the stored ``reviewer_findings`` of a new request (a fresh salt; ``sha256`` over all of it)."""
    verdict = worst(i.verdict for i in items)
    body: dict[str, Any] = {
        "format": FORMAT,
        "disclosure_verdict": verdict,
        "approvable": verdict != "fail",
        "items": [i.to_json(gate_verdicts.get(i.result_id, "pass")) for i in items],
        "salt": secrets.token_hex(16),
    }
    return {**body, "sha256": findings_digest(body)}


def findings_digest(findings: Mapping[str, Any]) -> str:
    """Return the salted sha256 the audit log records for a request's findings (``flags`` and ``sha256`` left out)."""
    return canonical_sha256({k: v for k, v in findings.items() if k not in ("sha256", "flags")})


def approvable(findings: Mapping[str, Any] | None) -> bool:
    """Whether reviewers may approve: never when an item fails the exact disclosure rules."""
    return findings is None or bool(findings.get("approvable", True))
