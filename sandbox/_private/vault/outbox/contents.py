"""What a release contains: files rendered from the ledger's stored answers, the ledger entries, provenance.

Everything comes from the ledger (the vault's own copy), never from the client: tables become CSV, Parquet
and a small HTML page; models and fairness audits become JSON; an audit also gets its HTML report (the one
stored with it, or a rendering of its disparities).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from sandbox._private.vault.ledger.ledger import ChargeRecord, Ledger

from .files import ReleaseFile
from .render import html_file, json_file, table_files, table_html


def analyst_gate(gate: Mapping[str, Any]) -> dict[str, Any]:
    """Return the gate report as the analyst may see it: without the reviewer-only exact findings.

    Reports of format ``sandbox.gate/2`` are computed from DP values and public facts; only their
    ``reviewer_findings`` are removed. Older reports (made before the gate answered from DP values) keep their
    verdicts, and lose the exact numbers behind disclosure findings (true small counts, shares).
    """
    if gate.get("format") == "sandbox.gate/2":
        return {k: v for k, v in gate.items() if k != "reviewer_findings"}
    items = [
        {
            **i,
            "reasons": i.get("analyst_reasons", []),
            "sdc": None if i.get("sdc") is None else {"verdict": i["sdc"]["verdict"]},
        }
        for i in gate.get("items", [])
    ]
    return {**gate, "items": items}


__all__ = ["build_release", "ledger_entry", "analyst_gate"]


def ledger_entry(record: ChargeRecord) -> dict[str, Any]:
    """Return the manifest's record of one ledger entry (ids, epsilon, query, result sha256)."""
    return {
        "id": record.id,
        "kind": record.kind,
        "dataset": record.dataset,
        "version": record.version,
        "epsilon": record.epsilon,
        "delta": record.delta,
        "mechanism": record.mechanism,
        "query": json.loads(record.query_json),
        "result_sha256": record.result_sha256,
        "analyst": record.analyst,
        "run_id": record.run_id,
        "created": record.created,
    }


def _aggregate_files(record: ChargeRecord, public: Mapping[str, Any]) -> list[ReleaseFile]:
    rows = public.get("rows") or []
    columns = public.get("columns") or (sorted({k for r in rows for k in r}) if rows else ["value"])
    base = f"{record.id}_{public.get('kind', 'table')}"
    page = table_html(f"{record.dataset}: {public.get('kind', 'table')} ({record.id})", rows, columns)
    return [*table_files(base, rows, columns), html_file(f"{base}.html", page)]


def _audit_files(record: ChargeRecord, public: Mapping[str, Any]) -> list[ReleaseFile]:
    files = [json_file(f"{record.id}_fairness_audit.json", public)]
    reports = [
        html_file(f"{record.id}_fairness_report{'' if lang == 'en' else '_' + lang}.html", page)
        for lang, page in _audit_reports(public)
    ]
    return [*files, *reports]


def _audit_reports(public: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Rebuild the audit's own report (Dutch and English) from its released numbers; a plain table otherwise."""
    from sandbox.fairness import FairnessAudit

    try:
        audit = FairnessAudit.from_dict(dict(public))
    except (KeyError, TypeError, ValueError):
        rows = public.get("disparities") or []
        columns = sorted({k for r in rows for k in r}) if rows else ["verdict"]
        verdict = public.get("verdict") or {}
        title = f"Fairness audit of model {public.get('model_id')}: {verdict.get('status', '?')}"
        return [("en", table_html(title, rows or [{"verdict": verdict.get("status")}], columns))]
    return [("nl", audit.to_html(lang="nl")), ("en", audit.to_html(lang="en"))]


def _files(record: ChargeRecord) -> list[ReleaseFile]:
    public = json.loads(record.public_json)
    if record.kind == "aggregate":
        return _aggregate_files(record, public)
    if record.kind == "audit":
        return _audit_files(record, public)
    return [json_file(f"{record.id}_{record.kind}.json", public)]


def build_release(
    ledger: Ledger, item_ids: Sequence[str], gate: Mapping[str, Any]
) -> tuple[list[ReleaseFile], list[dict[str, Any]], dict[str, Any]]:
    """Render the files of a request's items, their ledger entries and the run provenance."""
    records = [ledger.result(i) for i in item_ids]
    for r in records:
        r.verify()
    files = [f for r in records for f in _files(r)]
    files.append(json_file("gate_report.json", analyst_gate(dict(gate))))  # findings without true counts
    datasets = {(r.dataset, r.version) for r in records}
    provenance = {
        "datasets": [_dataset_provenance(ledger, name, version) for name, version in sorted(datasets)],
        "run_ids": sorted({r.run_id for r in records if r.run_id}),
        "analysts": sorted({r.analyst for r in records}),
        "vault_pid": os.getpid(),
        "sandbox_version": _version(),
    }
    return files, [ledger_entry(r) for r in records], provenance


def _dataset_provenance(ledger: Ledger, name: str, version: int) -> dict[str, Any]:
    d = ledger.dataset(name, version)
    # the version names the registered data; its files' sha256 stays in the ledger: a hash of the protected rows is
    # neither public nor DP, and a release is public (DESIGN invariant 10)
    return {"name": name, "version": version, "schema_sha256": d.schema_sha256}


def _version() -> str:
    from sandbox import __version__

    return __version__
