"""The fairness audit on the review page: verdict, the "insufficient evidence" label, charts, tables, report links.

Everything is drawn from the audit's released (DP) numbers as the request's JSON carries them: the decisive gaps
between groups (``disparities`` with ``reference == "between_groups"``) and the rates per group (``by_group``) with
their intervals. Equal opportunity is the true-positive half of equalized odds; when both decide, its rows are not
repeated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .review_charts import GapRow, RateRow, gap_chart, rate_chart
from .review_format import count, epsilon, interval, is_number, number
from .review_html import Raw, badge, facts, sub, table, tag
from .review_i18n import Labels, t, t_or

__all__ = ["audit_section", "insufficient_label", "decisive_gaps", "RATES_OF"]

#: The group rates each fairness metric compares.
RATES_OF: dict[str, tuple[str, ...]] = {
    "demographic_parity": ("selection_rate",),
    "equal_opportunity": ("true_positive_rate",),
    "equalized_odds": ("true_positive_rate", "false_positive_rate"),
    "predictive_parity": ("precision",),
}
_FALLBACK_INSUFFICIENT = {
    "en": "insufficient evidence: this audit cannot show the model is fair",
    "nl": "onvoldoende bewijs: deze audit kan niet aantonen dat het model eerlijk is",
}


def _rows(values: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    rows = values.get(key)
    return [r for r in rows if isinstance(r, Mapping)] if isinstance(rows, list) else []


def insufficient_label(values: Mapping[str, Any], lang: str) -> str | None:
    """Return the audit's "insufficient evidence" label in ``lang``, or ``None`` when the audit does not carry it."""
    evidence = sub(values, "evidence")
    verdict = sub(values, "verdict")
    if not (evidence.get("insufficient") or verdict.get("insufficient_evidence")):
        return None
    label = evidence.get("label")
    if isinstance(label, Mapping) and isinstance(label.get(lang), str):
        return str(label[lang])
    return _FALLBACK_INSUFFICIENT[lang]


def _decisive(values: Mapping[str, Any]) -> list[str]:
    metrics = [str(m) for m in values.get("decisive_metrics") or []]
    if "equalized_odds" in metrics and "equal_opportunity" in metrics:
        metrics.remove("equal_opportunity")
    return metrics


def decisive_gaps(values: Mapping[str, Any], labels: Labels) -> list[GapRow]:
    """Return the decisive gaps between groups, one per attribute and metric (equal opportunity folded into odds)."""
    metrics = _decisive(values)
    many = len(metrics) > 1
    out = []
    for r in _rows(values, "disparities"):
        if r.get("reference") != "between_groups" or str(r.get("metric")) not in metrics:
            continue
        label = labels.facet(str(r.get("attribute", "")))
        if many:
            label += f" · {t_or('m_' + str(r.get('metric')), labels.lang, str(r.get('metric')))}"
        out.append(
            GapRow(
                label,
                r.get("difference"),
                r.get("difference_low"),
                r.get("difference_high"),
                r.get("review_threshold"),
                r.get("fail_threshold"),
                str(r.get("verdict") or ""),
            )
        )
    return out


def _rate_rows(groups: Sequence[Mapping[str, Any]], rate: str, labels: Labels) -> list[RateRow]:
    rows: list[RateRow] = []
    current = None
    for g in groups:
        attribute = str(g.get("attribute", ""))
        if attribute == "overall":
            continue
        if attribute != current:
            rows.append(RateRow(labels.facet(attribute), header=True))
            current = attribute
        rows.append(
            RateRow(
                str(g.get("group", "")),
                g.get(rate),
                g.get(f"{rate}_low"),
                g.get(f"{rate}_high"),
                suppressed=g.get("status") == "suppressed",
            )
        )
    return rows


def _rates(values: Mapping[str, Any]) -> list[str]:
    rates: list[str] = []
    for m in _decisive(values):
        rates += [r for r in RATES_OF.get(m, ()) if r not in rates]
    return rates or ["selection_rate"]


def _charts(values: Mapping[str, Any], labels: Labels, item_id: str) -> Raw:
    lang = labels.lang
    groups = _rows(values, "by_group")
    overall = next((g for g in groups if g.get("attribute") == "overall"), {})
    conf = values.get("confidence_level")
    note = t("interval_note", lang, conf=number(100 * conf, lang, 0) if is_number(conf) else "95")
    gap = tag("figure", Raw(gap_chart(decisive_gaps(values, labels), lang, f"gap-{item_id}")), cls="chart-box wide")
    charts = []
    for rate in _rates(values):
        name = t_or(f"m_{rate}", lang, rate)
        svg = rate_chart(
            _rate_rows(groups, rate, labels), name, lang, overall=overall.get(rate), chart_id=f"rate-{rate}-{item_id}"
        )
        if svg:
            charts.append(tag("figure", Raw(svg), cls="chart-box"))
    return tag("div", [tag("p", note, cls="note"), gap, tag("div", charts, cls="charts")])


def _gap_table(values: Mapping[str, Any], labels: Labels) -> Raw:
    lang = labels.lang
    metrics = _decisive(values)
    rows = []
    for r in _rows(values, "disparities"):
        if r.get("reference") != "between_groups" or str(r.get("metric")) not in metrics:
            continue
        rows.append(
            [
                labels.facet(str(r.get("attribute", ""))),
                t_or(f"m_{r.get('metric')}", lang, str(r.get("metric"))),
                f"{r.get('group_a', '')} / {r.get('group_b', '')}",
                interval(r.get("difference"), r.get("difference_low"), r.get("difference_high"), lang),
                f"{number(r.get('review_threshold'), lang, 2)} / {number(r.get('fail_threshold'), lang, 2)}",
                badge(str(r.get("verdict") or ""), lang),
            ]
        )
    heads = [t(k, lang) for k in ("attribute", "definition", "groups", "difference")]
    heads += [f"{t('review_threshold', lang)} / {t('fail_threshold', lang)}", t("verdict", lang)]
    return table(heads, rows, numeric=[3, 4])


def _group_table(values: Mapping[str, Any], labels: Labels) -> Raw:
    lang = labels.lang
    rates = _rates(values)
    rows = []
    for g in _rows(values, "by_group"):
        sup = g.get("status") == "suppressed"
        cells: list[object] = [labels.facet(str(g.get("attribute", ""))), str(g.get("group", ""))]
        cells.append(t("suppressed", lang) if sup else count(g.get("count"), lang))
        for rate in rates:
            cells.append("" if sup else interval(g.get(rate), g.get(f"{rate}_low"), g.get(f"{rate}_high"), lang))
        rows.append(cells)
    heads = [t("attribute", lang), t("group", lang), t("count", lang)] + [t_or(f"m_{r}", lang, r) for r in rates]
    return table(heads, rows, numeric=list(range(2, 3 + len(rates))))


def _proxies(values: Mapping[str, Any], labels: Labels) -> Raw:
    lang = labels.lang
    proxies = _rows(values, "proxies")
    if not proxies:
        return tag("p", t("no_proxies", lang), cls="note")
    rows = [
        [
            labels.column(str(p.get("feature", ""))),
            labels.facet(str(p.get("attribute", ""))),
            number(p.get("auc"), lang, 2),
            str(p.get("most_exposed_group") or ""),
            tag("span", t("yes", lang), cls="badge v-review") if p.get("flagged") else t("no", lang),
        ]
        for p in sorted(proxies, key=lambda p: -(p.get("auc") or 0) if is_number(p.get("auc")) else 0)
    ]
    heads = [t("feature", lang), t("attribute", lang), t("auc", lang), t("group", lang), t("flagged", lang)]
    return table(heads, rows, numeric=[2])


def _report_links(path: str | None, lang: str) -> Raw:
    """Build links to the report in both languages.

    ``href`` is the API (for a reviewer's client), ``data-ticket`` the one-use link the page's script asks for,
    because a new tab cannot carry the token.
    """
    if not path:
        return Raw("")
    buttons = [
        tag("a", t(f"report_{code}", lang), href=f"{path}?lang={code}", data_ticket=f"{path}-link?lang={code}",
            cls="report-link", hreflang=code)
        for code in ("nl", "en")
    ]  # fmt: skip
    return tag("div", [tag("p", buttons, cls="report-links"), tag("p", t("report_note", lang), cls="note")])


def audit_section(
    values: Mapping[str, Any], ledger: Mapping[str, Any], labels: Labels, *, item_id: str, report_path: str | None
) -> Raw:
    """Render a fairness audit item: verdict and label first, then charts, tables, proxies and the reports."""
    lang = labels.lang
    verdict = sub(values, "verdict")
    reasons = [str(r) for r in verdict.get("reasons") or []]
    label = insufficient_label(values, lang)
    decisive = ", ".join(t_or(f"m_{m}", lang, m) for m in values.get("decisive_metrics") or [])
    head = facts(
        [
            (t("fair_verdict", lang), badge(str(verdict.get("status") or ""), lang)),
            (t("definition", lang), f"{values.get('definition', '')}" + (f" ({decisive})" if decisive else "")),
            ("ε", epsilon(values.get("epsilon", ledger.get("epsilon")), lang)),
            (t("dataset", lang), f"{ledger.get('dataset', '')} ({t('version', lang)} {ledger.get('version', '?')})"),
        ]
    )
    parts: list[object] = [tag("h4", t("audit_of", lang, id=item_id, model=values.get("model_id", "?"))), head]
    if label:
        parts.append(tag("p", label, cls="alert insufficient", role="alert"))
    if reasons:
        summary = tag("summary", f"{t('reason', lang)} ({len(reasons)})")
        parts.append(tag("details", [summary, tag("ul", [tag("li", r) for r in reasons])], cls="reasons"))
    parts.append(_report_links(report_path, lang))
    parts += [_charts(values, labels, item_id), tag("h5", t("gap_chart", lang)), _gap_table(values, labels)]
    parts += [tag("h5", t("groups", lang)), _group_table(values, labels)]
    parts += [tag("h5", t("proxies", lang)), _proxies(values, labels)]
    return tag("div", parts, cls="card audit-card", data_item=item_id)
