"""The review page's fragments: the list of requests, and one request laid out for sign-off.

A request reads from top to bottom as a reviewer decides: what is asked (title, purpose, author, status), what to
read before deciding (the "insufficient evidence" label, "not independently reviewed", a failing exact disclosure
check), each item (model card, fairness audit with charts and reports, DP table), the privacy spend and the
disclosure findings as tables, provenance, votes and comments, and last the decision with its comment. The
fragments are built from the same JSON that ``GET /v1/releases/{id}`` returns to the reviewer (plus the schemas'
labels and the datasets' budgets), so the page shows nothing the API does not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .review_audit import audit_section, insufficient_label
from .review_format import epsilon
from .review_html import Raw, badge, facts, section, status_text, table, tag
from .review_i18n import Labels, t
from .review_model import aggregate_table, model_card
from .review_tables import (
    checks_table,
    details_of,
    findings_of,
    flag_line,
    provenance_table,
    sdc_tables,
    spend_table,
)

__all__ = ["RequestPage", "request_fragment", "list_fragment", "DECISIONS"]

#: The buttons of the decision panel: (action, label key, css class).
DECISIONS = (
    ("approve", "approve", "primary"),
    ("return", "return", ""),
    ("reject", "reject", "danger"),
    ("comment", "comment", "quiet"),
)
_CLOSED = ("released", "rejected", "withdrawn")


@dataclass(frozen=True)
class RequestPage:
    """What the request fragment shows beside the request's own JSON.

    Attributes
    ----------
    view : mapping
        The request as ``GET /v1/releases/{id}`` returns it to this reviewer (with ``details``).
    labels : Labels
        The schemas' column labels in the page's language.
    report_paths : mapping of item id to path
        The report endpoint of each audit item (``/v1/releases/{id}/items/{item}/report``).
    budgets : sequence of mappings
        Budget status (``BudgetStatus.to_dict()``) of each dataset of the request.
    independence : mapping, optional
        ``{"independent": bool, "label": str, "reasons": [...]}`` when the vault can tell.
    standard_reason : str, optional
        The gate's standard text for a disclosure failure (offered by a button).
    """

    view: Mapping[str, Any]
    labels: Labels
    report_paths: Mapping[str, str] = field(default_factory=dict)
    budgets: Sequence[Mapping[str, Any]] = ()
    independence: Mapping[str, Any] | None = None
    standard_reason: str | None = None


def _warnings(page: RequestPage) -> list[Raw]:
    view, lang = page.view, page.labels.lang
    out = []
    for item_id, detail in details_of(view).items():
        if detail.get("ledger", {}).get("kind") == "audit":
            label = insufficient_label(detail.get("values") or {}, lang)
            if label:
                out.append(tag("p", f"{label} ({item_id})", cls="alert insufficient"))
    ind = page.independence
    if ind and not ind.get("independent", True):
        reasons = [str(r) for r in ind.get("reasons") or []]
        out.append(
            tag(
                "div",
                [tag("p", t("not_independent", lang), cls="strong"), tag("ul", [tag("li", r) for r in reasons])],
                cls="alert not-independent",
            )
        )
    findings = findings_of(view)
    if findings is not None and findings.get("approvable") is False:
        out.append(tag("p", t("not_approvable", lang), cls="alert fail"))
    if view.get("blocked"):
        out.append(tag("p", t("blocked", lang), cls="alert fail"))
    return out


def _header(view: Mapping[str, Any], lang: str) -> Raw:
    gate = view.get("gate") or {}
    status = f"{status_text(str(view.get('status')), lang)} · {t('round', lang)} {view.get('round', 1)}"
    reviews = t("reviews_in", lang, n=view.get("votes_in", 0), k=view.get("required_approvals", "?"))
    return tag(
        "header",
        [
            tag("h2", view.get("title", ""), id="detail-title"),
            facts(
                [
                    (t("purpose", lang), view.get("purpose")),
                    (t("justification", lang), view.get("justification") or "–"),
                    (t("author", lang), view.get("author")),
                    (t("col_status", lang), tag("span", status, id="detail-status", data_state=view.get("state"))),
                    (t("gate_verdict", lang), badge(str(gate.get("verdict") or ""), lang)),
                    (t("col_reviews", lang), reviews),
                    (t("created", lang), str(view.get("created", ""))[:19].replace("T", " ")),
                ]
            ),
        ],
        cls="request-head",
    )


def _items(page: RequestPage) -> list[Raw]:
    view, labels = page.view, page.labels
    details = details_of(view)
    out = []
    for item in (view.get("gate") or {}).get("items") or []:
        item_id = str(item.get("id"))
        detail = details.get(item_id, {})
        values, ledger = detail.get("values") or {}, detail.get("ledger") or {}
        kind = str(item.get("kind"))
        if kind == "model":
            out.append(model_card(values, ledger, str(view.get("author", "")), labels, item_id=item_id))
        elif kind == "audit":
            path = page.report_paths.get(item_id)
            out.append(audit_section(values, ledger, labels, item_id=item_id, report_path=path))
        elif kind == "aggregate":
            out.append(aggregate_table(values, labels, item_id=item_id))
    return out


def _votes(view: Mapping[str, Any], lang: str) -> Raw:
    votes = [
        tag(
            "li",
            [
                tag("strong", f"{v.get('reviewer')}: {t('a_' + str(v.get('decision')), lang)}"),
                " — ",
                v.get("comment") or "",
            ],
        )
        for v in view.get("votes") or []
    ]
    comments = [
        tag(
            "li",
            [
                tag("strong", f"{c.get('author')}" + (f" ({t('response', lang)})" if c.get("response") else "")),
                " — ",
                c.get("text", ""),
            ],
        )
        for c in view.get("comments") or []
    ]
    note = t("votes_hidden", lang) if view.get("state") in ("submitted", "partially_reviewed") else ""
    return tag(
        "div",
        [
            tag("ul", votes or [tag("li", t("no_votes", lang))], cls="votes"),
            tag("ul", comments, cls="comments"),
            tag("p", note, cls="note"),
        ],
    )


def _act_group(action: str, key: str, cls: str, lang: str, closed: bool) -> Raw:
    button = tag(
        "button", t(key, lang), type="button", cls=f"act {cls}".strip(), data_action=action, id=f"act-{action}",
        disabled=closed,
    )  # fmt: skip
    return tag(
        "span", [button, tag("span", "", cls="feedback", data_for=action, role="status", aria_live="polite")],
        cls="act-group",
    )  # fmt: skip


def _decision(page: RequestPage, warnings: Sequence[Raw]) -> Raw:
    """Build the comment box and the buttons, each with its feedback beside it (disabled once the request is closed)."""
    view, lang = page.view, page.labels.lang
    closed = view.get("state") in _CLOSED
    buttons = [_act_group(action, key, cls, lang, closed) for action, key, cls in DECISIONS]
    if page.standard_reason and not closed:
        buttons.append(
            tag("button", t("standard_reason", lang), type="button", cls="quiet", id="standard-reason",
                data_text=page.standard_reason)
        )  # fmt: skip
    parts: list[object] = [*warnings]
    if closed:
        parts.append(tag("p", t("closed", lang), cls="note closed"))
    else:
        parts += [
            tag("label", t("comment_label", lang), for_="comment"),
            tag("textarea", "", id="comment", rows="4", maxlength="10000"),
            tag("p", t("comment_rule", lang), cls="note"),
        ]
        if findings_of(view) is not None:
            parts.append(tag("p", t("no_quote", lang), cls="note strong"))
    parts.append(tag("div", buttons, cls="actions"))
    return tag("div", parts, cls="decision", data_request=view.get("id"))


def request_fragment(page: RequestPage) -> str:
    """Render the request laid out for reading and deciding (an HTML fragment for ``#detail``)."""
    lang = page.labels.lang
    view = page.view
    warnings = _warnings(page)
    sections = [
        ("items", "sec_tables", tag("div", _items(page), cls="items")),
        ("spend", "sec_spend", spend_table(view, page.budgets, lang)),
        ("sdc", "sec_sdc", sdc_tables(view, lang)),
        ("checks", "sec_gate", checks_table(view, lang)),
        ("provenance", "sec_provenance", provenance_table(view, lang)),
        ("votes", "sec_votes", _votes(view, lang)),
        ("decision", "sec_decision", _decision(page, warnings)),
    ]
    toc = tag("nav", [tag("a", t(key, lang), href=f"#{anchor}") for anchor, key, _ in sections], cls="toc")
    top = [tag("div", [tag("h3", t("warnings", lang)), *warnings], cls="warnings", id="warnings")] if warnings else []
    body = [_header(view, lang), toc, *top, *(section(a, k, lang, c) for a, k, c in sections)]
    return tag("article", body, cls="request", data_request=view.get("id"), data_state=view.get("state"))


def list_fragment(rows: Sequence[Mapping[str, Any]], lang: str, *, flags: Sequence[Mapping[str, Any]] = ()) -> str:
    """Render the table of requests, with the flags on analysts (an HTML fragment for ``#list``)."""
    parts: list[object] = []
    if not rows:
        parts.append(tag("p", t("no_requests", lang), cls="note"))
    else:
        body = []
        for r in rows:
            gate = r.get("gate") or {}
            exact = (r.get("reviewer_findings") or {}).get("disclosure_verdict")
            link = tag("a", r.get("title", ""), href=f"#{r.get('id')}", data_id=r.get("id"), cls="open-request")
            body.append(
                [link, r.get("author", ""), status_text(str(r.get("status")), lang),
                 f"{r.get('votes_in', 0)} {t('of', lang)} {r.get('required_approvals', '?')}",
                 badge(str(gate.get("verdict") or ""), lang), badge(exact, lang) if exact else "–",
                 epsilon(gate.get("total_epsilon"), lang)]
            )  # fmt: skip
        heads = [t(k, lang) for k in ("col_title", "col_author", "col_status", "col_reviews", "col_gate")]
        heads += [t("exact_verdict", lang), "ε"]
        parts.append(table(heads, body, numeric=[6], nowrap=[1, 3], cls="data requests"))
    if flags:
        parts += [
            tag("h3", t("flags_all", lang)),
            tag("ul", [tag("li", flag_line(f, lang)) for f in flags], cls="flags"),
        ]
    return tag("div", parts)
