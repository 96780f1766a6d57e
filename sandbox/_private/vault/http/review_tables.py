"""The review page's tables of a request: privacy spend, disclosure findings, gate checks and provenance.

The disclosure table shows the reviewer-only exact findings (``reviewer_findings`` of the reviewer's view, see
:mod:`sandbox._private.vault.gate`) when the request carries them, with the verdict the analyst was told beside the
exact one; otherwise the gate's SDC check of each item as stored with the request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .review_format import epsilon, significant
from .review_html import Raw, badge, kind_text, table, tag
from .review_i18n import t

__all__ = [
    "details_of",
    "findings_of",
    "flag_line",
    "spend_table",
    "sdc_tables",
    "checks_table",
    "provenance_table",
]


def details_of(view: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Return the request's item details (ledger entry and public values) by item id."""
    raw = view.get("details")
    return {str(k): v for k, v in raw.items() if isinstance(v, Mapping)} if isinstance(raw, Mapping) else {}


def findings_of(view: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Return the reviewer-only exact findings of the request, if the view carries them."""
    found = view.get("reviewer_findings")
    return found if isinstance(found, Mapping) else None


def flag_line(f: Mapping[str, Any], lang: str) -> str:
    """Say what a flag on an analyst counts (``GET /v1/gate/flags``), without the request ids."""
    return t("flag_line", lang, analyst=f.get("analyst", ""), dataset=f.get("dataset", ""), day=f.get("day", ""),
             blocked=f.get("blocked", 0), exact=f.get("exact_fail", 0), requests=f.get("requests", 0))  # fmt: skip


def spend_table(view: Mapping[str, Any], budgets: Sequence[Mapping[str, Any]], lang: str) -> Raw:
    """Render the privacy spend per item and in total, and the budget left of each dataset."""
    gate = view.get("gate") or {}
    details = details_of(view)
    rows = []
    for item in gate.get("items") or []:
        led = details.get(str(item.get("id")), {}).get("ledger") or {}
        delta = led.get("delta")
        rows.append(
            [
                item.get("id"),
                kind_text(str(item.get("kind")), lang),
                f"{led.get('dataset', item.get('dataset', ''))} v{led.get('version', '?')}",
                epsilon(item.get("epsilon"), lang),
                significant(delta, lang, 2) if delta else "0",
                led.get("mechanism", ""),
            ]
        )
    rows.append(
        [tag("strong", t("total", lang)), "", "", tag("strong", epsilon(gate.get("total_epsilon"), lang)), "", ""]
    )
    heads = [t("item", lang), t("kind", lang), t("dataset", lang), "ε", "δ", t("mechanism", lang)]
    parts: list[object] = [table(heads, rows, numeric=[3, 4], nowrap=[0, 2], cls="data spend")]
    for b in budgets:
        line = t(
            "budget_line",
            lang,
            dataset=b.get("dataset", ""),
            spent=epsilon(b.get("epsilon_spent"), lang),
            total=epsilon(b.get("epsilon_total"), lang),
            remaining=epsilon(b.get("epsilon_remaining"), lang),
        )
        parts.append(tag("p", line, cls="note budget"))
    return tag("div", parts)


def _cells(cells: Sequence[Mapping[str, Any]], lang: str) -> list[list[object]]:
    return [
        [
            "(" + ", ".join(str(k) for k in c.get("key") or []) + ")",
            badge(str(c.get("verdict", "")), lang),
            "; ".join(str(r) for r in c.get("reasons") or []),
        ]
        for c in cells
    ]


def sdc_tables(view: Mapping[str, Any], lang: str) -> Raw:
    """Render the disclosure findings: the exact reviewer-only findings when present, else the gate's SDC check."""
    findings = findings_of(view)
    gate = view.get("gate") or {}
    parts: list[object] = []
    if findings is not None and isinstance(findings.get("items"), list):
        parts.append(tag("p", t("exact_only", lang), cls="note"))
        rows = [
            [
                f.get("id"),
                kind_text(str(f.get("kind")), lang),
                badge(str(f.get("gate_verdict", "")), lang),
                badge(str(f.get("disclosure_verdict", "")), lang),
                "; ".join(str(r) for r in f.get("reasons") or []),
            ]
            for f in findings["items"]
            if isinstance(f, Mapping)
        ]
        heads = [t("item", lang), t("kind", lang), t("analyst_told", lang), t("exact_verdict", lang), t("reason", lang)]
        parts.append(table(heads, rows, cls="data sdc", nowrap=[0, 1]))
        cells = [c for f in findings["items"] if isinstance(f, Mapping) for c in f.get("cells") or []]
        flags = [f for f in findings.get("flags") or [] if isinstance(f, Mapping)]
    else:
        rows = [
            [
                i.get("id"),
                kind_text(str(i.get("kind")), lang),
                badge(str((i.get("sdc") or {}).get("verdict", "")), lang),
                "; ".join(str(r) for r in (i.get("sdc") or {}).get("reasons") or []),
            ]
            for i in gate.get("items") or []
            if i.get("sdc") is not None
        ]
        parts.append(_per_item(rows, lang, "data sdc"))
        cells = [c for i in gate.get("items") or [] for c in (i.get("sdc") or {}).get("cells") or []]
        flags = []
    if cells:
        parts.append(
            table(
                [t("cell", lang), t("verdict", lang), t("reason", lang)],
                _cells(cells, lang),
                cls="data cells",
                nowrap=[0],
            )
        )
    elif not rows:
        parts.append(tag("p", t("no_findings", lang), cls="note"))
    if flags:
        parts += [tag("h5", t("flags", lang)), tag("ul", [tag("li", flag_line(f, lang)) for f in flags], cls="flags")]
    return tag("div", parts)


def _per_item(rows: Sequence[Sequence[object]], lang: str, cls: str) -> Raw:
    """Build a table of item, kind, verdict and reasons."""
    heads = [t("item", lang), t("kind", lang), t("verdict", lang), t("reason", lang)]
    return table(heads, rows, cls=cls, nowrap=[0, 1])


def checks_table(view: Mapping[str, Any], lang: str) -> Raw:
    """Render the gate's verdict and reasons per item."""
    gate = view.get("gate") or {}
    rows = [
        [
            i.get("id"),
            kind_text(str(i.get("kind")), lang),
            badge(str(i.get("verdict")), lang),
            tag("ul", [tag("li", r) for r in i.get("reasons") or []]),
        ]
        for i in gate.get("items") or []
    ]
    parts: list[object] = [tag("ul", [tag("li", r) for r in gate.get("reasons") or []])] if gate.get("reasons") else []
    parts.append(_per_item(rows, lang, "data checks"))
    return tag("div", parts)


def provenance_table(view: Mapping[str, Any], lang: str) -> Raw:
    """Render each item's ledger entry: mechanism, run, author, time, result hash and the query as recorded."""
    rows = []
    for item_id, d in details_of(view).items():
        led = d.get("ledger") or {}
        query = json.dumps(led.get("query"), sort_keys=True, ensure_ascii=False)
        rows.append(
            [
                item_id,
                led.get("mechanism", ""),
                led.get("run_id") or "–",
                led.get("analyst", ""),
                str(led.get("created", ""))[:19].replace("T", " "),
                tag("code", str(led.get("result_sha256", ""))[:16]),
                tag("code", query, cls="query"),
            ]
        )
    heads = [
        t("item", lang),
        t("mechanism", lang),
        t("run", lang),
        t("author", lang),
        t("created", lang),
        t("result_sha", lang),
        t("query", lang),
    ]
    return table(heads, rows, cls="data provenance", nowrap=[0, 1, 2, 3, 4, 5])
