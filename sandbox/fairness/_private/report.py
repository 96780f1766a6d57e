"""The self-contained HTML report of a fairness audit: what it belongs to, plain-language summary, figures, tables.

Sections follow what the Algoritmekader bias analysis asks: direct distinction, indirect distinction (proxies),
the chosen fairness definition and why, significance, limitations. The summary states the power of every decisive
gap and, before anything else, whether the evidence is insufficient to show the model fair. All text is escaped;
figures are inline PNG; the file references nothing outside itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from sandbox._private.shared.errors import OutputPathError

from .metrics import DISPARITIES
from .report_labels import DisplayNames, ReportMetadata, as_metadata
from .report_plots import disparities_png, group_rates_png
from .report_tables import badge, disparity_table, esc, group_table, html_table, num, shown_disparities
from .report_text import DEFINITION_NAMES, INSUFFICIENT_LABEL, METRIC_NAMES, STATUS_NAMES, text

if TYPE_CHECKING:
    from .audit import FairnessAudit

__all__ = ["render_html", "write_report"]

_MAX_FACET_PLOTS = 12
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#24292f;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.6em}
.badge{display:inline-block;padding:.15em .6em;border-radius:1em;color:#fff;font-weight:600}
.pass{background:#1a7f37}.review{background:#b08800}.fail{background:#cf222e}.info{background:#8c959f}
table{border-collapse:collapse;font-size:.82em;margin:.5em 0}td,th{border:1px solid #d0d7de;padding:.2em .45em;
vertical-align:top}th{background:#f6f8fa;text-align:left}td.num{text-align:right;white-space:nowrap}
.summary{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:.6em 1.1em}
.insufficient{border:2px solid #b08800;background:#fff8c5;border-radius:6px;padding:.5em 1em;font-weight:600}
.mismatch{color:#cf222e;font-weight:600}img{max-width:100%;height:auto}.small{color:#57606a;font-size:.85em}
"""


def _finding(row: pd.Series, by_group: pd.DataFrame, conf: int, lang: str, names: DisplayNames) -> str:
    """One plain-language sentence about a decisive disparity that did not pass."""
    name = METRIC_NAMES[str(row["metric"])][lang]
    facet = str(row["attribute"])
    if not row["group_a"]:
        return f"{names.facet(facet)}: {name} — {text('undefined', lang)}. {row['reason']}"
    rows = by_group[by_group["attribute"] == facet].set_index("group")[str(row["rate"])]
    return text(
        "finding",
        lang,
        attribute=names.facet(facet),
        definition=name,
        rate=text(f"plain_{row['rate']}", lang),
        a=names.group(facet, str(row["group_a"])),
        b=names.group(facet, str(row["group_b"])),
        va=float(rows[row["group_a"]]) * 100,
        vb=float(rows[row["group_b"]]) * 100,
        gap=float(row["difference"]) * 100,
        conf=conf,
        lo=float(row["difference_low"]) * 100,
        hi=float(row["difference_high"]) * 100,
        verdict=STATUS_NAMES[str(row["verdict"])][lang],
    ) + (f" {INSUFFICIENT_LABEL[lang]}." if row.get("evidence") == "insufficient" else "")


def _power(a: FairnessAudit, lang: str, names: DisplayNames) -> str:
    """State the power of every decisive gap; flag those that could miss a gap of the fail threshold's size."""
    ev = a.evidence
    if not ev.gaps:
        return ""
    items = []
    for g in ev.gaps:
        fields = {"attribute": names.facet(g.attribute), "definition": METRIC_NAMES[g.metric][lang]}
        fail = g.fail_threshold * 100
        if math.isnan(g.detectable_gap):
            line = text("power_none", lang, fail=fail, **fields)
        else:
            line = text("power_line", lang, gap=g.detectable_gap * 100, fail=fail, **fields)
        items.append(line + ("" if g.detects_threshold else text("power_miss", lang)))
    lis = "".join(f"<li>{esc(x)}</li>" for x in items)
    intro = text("power_intro", lang, power=round(ev.power * 100))
    return f'<div id="power"><p><strong>{esc(text("power", lang))}.</strong> {esc(intro)}</p><ul>{lis}</ul></div>'


def _summary(a: FairnessAudit, lang: str, names: DisplayNames) -> str:
    r, bg, d = a.rules, a.tables.by_group, a.tables.disparities
    decisive = f" {text('and', lang)} ".join(METRIC_NAMES[m][lang] for m in r.decisive_metrics)
    parts = [f"<p><strong>{esc(text('verdict', lang))}:</strong> {badge(a.verdict.status, lang)}</p>"]
    if a.evidence.insufficient:
        parts.append(
            f'<p class="insufficient" id="insufficient-evidence">{esc(INSUFFICIENT_LABEL[lang])}</p>'
            f"<p>{esc(text('insufficient_why', lang))}</p>"
        )
    intro = text(
        "summary_intro", lang, policy=r.policy_name, definition=DEFINITION_NAMES[r.definition][lang], decisive=decisive
    )
    parts.append(f"<p>{esc(intro)}</p>")
    rows = d[d["decisive"] & (d["reference"] == "between_groups") & (d["verdict"] != "pass")]
    if rows.empty:
        parts.append(f"<p>{esc(text('summary_pass', lang))}</p>")
    else:
        conf = round(r.confidence_level * 100)
        items = "".join(f"<li>{esc(_finding(row, bg, conf, lang, names))}</li>" for _, row in rows.iterrows())
        parts.append(f"<p>{esc(text('summary_findings', lang))}</p><ul>{items}</ul>")
    parts.append(_power(a, lang, names))
    groups = bg[bg["attribute"] != "overall"]
    counts = text(
        "summary_groups",
        lang,
        n_groups=len(groups),
        n_facets=len(r.facets),
        n_small=int((groups["status"] == "small").sum()),
        min_size=r.min_group_size,
        n_sup=int((groups["status"] == "suppressed").sum()),
    )
    parts.append(f"<p>{esc(counts)}</p>")
    return f'<section id="summary" class="summary"><h2>{esc(text("summary", lang))}</h2>{"".join(parts)}</section>'


def _labelled(frame: pd.DataFrame, names: DisplayNames) -> pd.DataFrame:
    out = frame.copy()
    out["group"] = [names.group(f, g) for f, g in zip(frame["attribute"], frame["group"], strict=True)]
    return out


def _figures(a: FairnessAudit, lang: str, names: DisplayNames) -> str:
    metric_names = {k: v[lang] for k, v in METRIC_NAMES.items()}
    rates = list(dict.fromkeys(r for m in a.rules.decisive_metrics for r in DISPARITIES[m]))
    conf = round(a.rules.confidence_level * 100)
    shown = shown_disparities(a.tables.disparities).assign(attribute=lambda x: [names.facet(f) for f in x["attribute"]])
    imgs = [
        f"<h3>{esc(text('plot_disp', lang))}</h3>",
        f'<img class="plot" alt="{esc(text("plot_disp", lang))}" '
        f'src="data:image/png;base64,{disparities_png(shown, metric_names, 0.1)}">',
        f"<h3>{esc(text('plot_groups', lang, conf=conf))}</h3>",
    ]
    by_group = _labelled(a.tables.by_group, names)
    for facet in [" × ".join(f) for f in a.rules.facets][:_MAX_FACET_PLOTS]:
        png = group_rates_png(by_group, facet, rates, metric_names, title=names.facet(facet))
        imgs.append(f'<img class="plot" alt="{esc(names.facet(facet))}" src="data:image/png;base64,{png}">')
    return f'<section id="figures"><h2>{esc(text("plots", lang))}</h2>{"".join(imgs)}</section>'


def _direct(a: FairnessAudit, lang: str, names: DisplayNames) -> str:
    if a.model_features is None:
        body = text("direct_unknown", lang)
    else:
        found = [names.facet(f) for f in a.model_features if f in set(a.rules.facets_attributes)]
        body = (
            text("direct_found", lang, found=", ".join(found))
            if found
            else text("direct_none", lang, forbidden=", ".join(a.rules.forbidden_features))
        )
    return f'<section id="direct"><h2>{esc(text("direct", lang))}</h2><p>{esc(body)}</p></section>'


def _indirect(a: FairnessAudit, lang: str, names: DisplayNames) -> str:
    title = f"<h2>{esc(text('indirect', lang))}</h2>"
    if a.proxies is None:
        return f'<section id="indirect">{title}<p>{esc(text("indirect_none", lang))}</p></section>'
    t = a.proxies.table.sort_values("auc", ascending=False)
    cells = pd.DataFrame(
        {
            "f": [f"<td>{esc(x)}</td>" for x in t["feature"]],
            "a": [f"<td>{esc(names.facet(x))}</td>" for x in t["attribute"]],
            "auc": [f'<td class="num">{num(x, lang=lang)}</td>' for x in t["auc"]],
            "g": [
                f"<td>{esc(names.group(a_, g))}</td>"
                for a_, g in zip(t["attribute"], t["most_exposed_group"], strict=True)
            ],
            "macro": [f'<td class="num">{num(x, lang=lang)}</td>' for x in t["auc_macro"]],
            "mi": [f'<td class="num">{num(x, lang=lang, digits=4)}</td>' for x in t["mutual_information_bits"]],
            "fl": [f"<td>{esc(text('yes' if x else 'no', lang))}</td>" for x in t["flagged"]],
        }
    )
    intro = f"<p>{esc(text('indirect_intro', lang, thr=a.proxies.threshold))}</p>"
    heads = [text("feature", lang), text("attribute", lang), "AUC", text("group", lang), "AUC (macro)", "MI (bits)"]
    table = html_table(cells, [*heads, text("flagged", lang)])
    return f'<section id="indirect">{title}{intro}{table}</section>'


def _definition(a: FairnessAudit, lang: str) -> str:
    r = a.rules
    reason = r.definition_reason or text("definition_none", lang)
    decisive = ", ".join(METRIC_NAMES[m][lang] for m in r.decisive_metrics)
    return (
        f'<section id="definition"><h2>{esc(text("definition", lang))}</h2>'
        f"<p><strong>{esc(DEFINITION_NAMES[r.definition][lang])}</strong> ({esc(decisive)})</p>"
        f"<p>{esc(reason)}</p></section>"
    )


def _significance(a: FairnessAudit, lang: str) -> str:
    conf = round(a.rules.confidence_level * 100)
    noise = text("with_noise", lang) if a.noise_scale > 0 else ""
    intro = text("significance_intro", lang, conf=conf, alpha=100 - conf, n_boot=a.n_boot, noise=noise)
    return (
        f'<section id="significance"><h2>{esc(text("significance", lang))}</h2>'
        f"<p>{esc(intro)}</p><p>{esc(text('rule', lang))}</p></section>"
    )


def _limitations(a: FairnessAudit, lang: str) -> str:
    items = [text("limit_base", lang), *a.limitations]
    notes = a.tables.by_group["note"]
    items += sorted({n for n in notes if n and "undefined" in n})[:20]
    lis = "".join(f"<li>{esc(x)}</li>" for x in items)
    return f'<section id="limitations"><h2>{esc(text("limitations", lang))}</h2><ul>{lis}</ul></section>'


def _tables(a: FairnessAudit, lang: str, names: DisplayNames) -> str:
    metrics = ["count", "base_rate", "selection_rate", "true_positive_rate", "false_positive_rate"]
    metrics += ["false_negative_rate", "precision", "accuracy"]
    parts = [
        f"<h2>{esc(text('tables', lang))}</h2>",
        f"<h3>{esc(text('disparities', lang))}</h3>",
        disparity_table(a, lang, names),
        f"<h3>{esc(text('by_group', lang))}</h3>",
        group_table(a, lang, a.tables.by_group, metrics, names),
    ]
    if a.calibration is not None:
        calib = ["count", "mean_score", "base_rate", "calibration_difference", "ece"]
        parts += [f"<h3>{esc(text('calibration', lang))}</h3>", group_table(a, lang, a.calibration, calib, names)]
    return f'<section id="tables">{"".join(parts)}</section>'


def _about(a: FairnessAudit, lang: str, meta: ReportMetadata | None) -> str:
    head = (
        f'<p class="small">policy {esc(a.rules.policy_name)} · sha256 {esc(a.rules.policy_sha256[:12] or "-")}'
        f" · n_boot {a.n_boot}</p>"
    )
    if meta is None or not meta.items():
        return head
    rows = "".join(f"<tr><th>{esc(text('meta_' + k, lang))}</th><td>{esc(v)}</td></tr>" for k, v in meta.items())
    own = a.rules.policy_sha256
    if meta.policy_sha256 and own and meta.policy_sha256 != own:
        warning = text("meta_policy_mismatch", lang, release=meta.policy_sha256[:12], audit=own[:12])
        rows += f'<tr><th>{esc(text("meta_warning", lang))}</th><td class="mismatch">{esc(warning)}</td></tr>'
    return f'{head}<section id="about"><h2>{esc(text("about", lang))}</h2><table>{rows}</table></section>'


def render_html(
    audit: FairnessAudit,
    lang: str = "en",
    *,
    fragment: bool = False,
    metadata: ReportMetadata | Mapping[str, Any] | None = None,
    labels: Mapping[str, Mapping[str, str]] | None = None,
    attribute_labels: Mapping[str, str] | None = None,
) -> str:
    """Render the report (see :meth:`FairnessAudit.to_html`); ``fragment=True`` omits the document shell."""
    text("title", lang)  # validates lang
    meta = as_metadata(metadata)
    names = DisplayNames.build(labels, attribute_labels)
    body = "".join(
        [
            f"<h1>{esc(text('title', lang))}</h1>",
            _about(audit, lang, meta),
            _summary(audit, lang, names),
            _figures(audit, lang, names),
            _direct(audit, lang, names),
            _indirect(audit, lang, names),
            _definition(audit, lang),
            _significance(audit, lang),
            _limitations(audit, lang),
            _tables(audit, lang, names),
        ]
    )
    if fragment:
        return f'<div class="sandbox-fairness"><style>{_CSS}</style>{body}</div>'
    return (
        f'<!DOCTYPE html><html lang="{esc(lang)}"><head><meta charset="utf-8">'
        f"<title>{esc(text('title', lang))}</title><style>{_CSS}</style></head><body>{body}</body></html>"
    )


def write_report(
    audit: FairnessAudit,
    path: str | Path,
    lang: str = "en",
    *,
    metadata: ReportMetadata | Mapping[str, Any] | None = None,
    labels: Mapping[str, Mapping[str, str]] | None = None,
    attribute_labels: Mapping[str, str] | None = None,
) -> Path:
    """Write the report to ``path``; an unwritable location is an :class:`OutputPathError` naming it."""
    page = render_html(audit, lang, metadata=metadata, labels=labels, attribute_labels=attribute_labels)
    p = Path(path)
    try:
        p.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise OutputPathError(
            f"cannot write the report to {str(p)!r}: {exc.strerror}; choose a writable path"
        ) from None
    return p
