"""The self-contained HTML report of a fairness audit: plain-language summary first, then figures and tables.

Sections follow what the Algoritmekader bias analysis asks: direct distinction, indirect distinction (proxies),
the chosen fairness definition and why, significance, limitations. All text is escaped; figures are inline PNG;
the file references nothing outside itself.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from sandbox._private.shared.errors import OutputPathError

from .metrics import DISPARITIES
from .report_plots import disparities_png, group_rates_png
from .report_text import DEFINITION_NAMES, METRIC_NAMES, STATUS_NAMES, text

if TYPE_CHECKING:
    from .audit import FairnessAudit

__all__ = ["render_html", "write_report"]

_MAX_FACET_PLOTS = 12
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#24292f;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.6em}
.badge{display:inline-block;padding:.15em .6em;border-radius:1em;color:#fff;font-weight:600}
.pass{background:#1a7f37}.review{background:#b08800}.fail{background:#cf222e}
table{border-collapse:collapse;font-size:.82em;margin:.5em 0}td,th{border:1px solid #d0d7de;padding:.2em .45em;
vertical-align:top}th{background:#f6f8fa;text-align:left}td.num{text-align:right;white-space:nowrap}
.summary{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:.6em 1.1em}
img{max-width:100%;height:auto}.small{color:#57606a;font-size:.85em}
"""


def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def _num(v: Any, lo: Any = None, hi: Any = None, lang: str = "en", digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return _e(text("undefined", lang))
    out = f"{float(v):.{digits}f}"
    if lo is not None and not (isinstance(lo, float) and math.isnan(lo)):
        out += f" [{float(lo):.{digits}f}, {float(hi):.{digits}f}]"
    return out


def _badge(status: str, lang: str) -> str:
    return f'<span class="badge {_e(status)}">{_e(STATUS_NAMES[status][lang])}</span>'


def _finding(row: pd.Series, by_group: pd.DataFrame, conf: int, lang: str) -> str:
    """One plain-language sentence about a decisive disparity that did not pass."""
    name = METRIC_NAMES[str(row["metric"])][lang]
    if not row["group_a"]:
        return f"{row['attribute']}: {name} — {text('undefined', lang)}. {row['reason']}"
    rows = by_group[by_group["attribute"] == row["attribute"]].set_index("group")[str(row["rate"])]
    return text(
        "finding",
        lang,
        attribute=row["attribute"],
        definition=name,
        rate=text(f"plain_{row['rate']}", lang),
        a=row["group_a"],
        b=row["group_b"],
        va=float(rows[row["group_a"]]) * 100,
        vb=float(rows[row["group_b"]]) * 100,
        gap=float(row["difference"]) * 100,
        conf=conf,
        lo=float(row["difference_low"]) * 100,
        hi=float(row["difference_high"]) * 100,
        verdict=STATUS_NAMES[str(row["verdict"])][lang],
    )


def _summary(a: FairnessAudit, lang: str) -> str:
    r, bg, d = a.rules, a.tables.by_group, a.tables.disparities
    decisive = f" {text('and', lang)} ".join(METRIC_NAMES[m][lang] for m in r.decisive_metrics)
    parts = [
        f"<p><strong>{_e(text('verdict', lang))}:</strong> {_badge(a.verdict.status, lang)}</p>",
        "<p>"
        + _e(
            text(
                "summary_intro",
                lang,
                policy=r.policy_name,
                definition=DEFINITION_NAMES[r.definition][lang],
                decisive=decisive,
            )
        )
        + "</p>",
    ]
    rows = d[d["decisive"] & (d["reference"] == "between_groups") & (d["verdict"] != "pass")]
    if rows.empty:
        parts.append(f"<p>{_e(text('summary_pass', lang))}</p>")
    else:
        conf = round(r.confidence_level * 100)
        items = "".join(f"<li>{_e(_finding(row, bg, conf, lang))}</li>" for _, row in rows.iterrows())
        parts.append(f"<p>{_e(text('summary_findings', lang))}</p><ul>{items}</ul>")
    groups = bg[bg["attribute"] != "overall"]
    parts.append(
        "<p>"
        + _e(
            text(
                "summary_groups",
                lang,
                n_groups=len(groups),
                n_facets=len(r.facets),
                n_small=int((groups["status"] == "small").sum()),
                min_size=r.min_group_size,
                n_sup=int((groups["status"] == "suppressed").sum()),
            )
        )
        + "</p>"
    )
    return f'<section id="summary" class="summary"><h2>{_e(text("summary", lang))}</h2>{"".join(parts)}</section>'


def _figures(a: FairnessAudit, lang: str) -> str:
    names = {k: v[lang] for k, v in METRIC_NAMES.items()}
    rates = list(dict.fromkeys(r for m in a.rules.decisive_metrics for r in DISPARITIES[m]))
    conf = round(a.rules.confidence_level * 100)
    imgs = [
        f"<h3>{_e(text('plot_disp', lang))}</h3>",
        f'<img class="plot" alt="{_e(text("plot_disp", lang))}" '
        f'src="data:image/png;base64,{disparities_png(a.tables.disparities, names, 0.1)}">',
        f"<h3>{_e(text('plot_groups', lang, conf=conf))}</h3>",
    ]
    for facet in [" × ".join(f) for f in a.rules.facets][:_MAX_FACET_PLOTS]:
        png = group_rates_png(a.tables.by_group, facet, rates, names)
        imgs.append(f'<img class="plot" alt="{_e(facet)}" src="data:image/png;base64,{png}">')
    return f'<section id="figures"><h2>{_e(text("plots", lang))}</h2>{"".join(imgs)}</section>'


def _direct(a: FairnessAudit, lang: str) -> str:
    if a.model_features is None:
        body = text("direct_unknown", lang)
    else:
        found = [f for f in a.model_features if f in set(a.rules.facets_attributes)]
        body = (
            text("direct_found", lang, found=", ".join(found))
            if found
            else text("direct_none", lang, forbidden=", ".join(a.rules.forbidden_features))
        )
    return f'<section id="direct"><h2>{_e(text("direct", lang))}</h2><p>{_e(body)}</p></section>'


def _table(frame: pd.DataFrame, headers: list[str]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(c for c in row) + "</tr>" for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _indirect(a: FairnessAudit, lang: str) -> str:
    title = f"<h2>{_e(text('indirect', lang))}</h2>"
    if a.proxies is None:
        return f'<section id="indirect">{title}<p>{_e(text("indirect_none", lang))}</p></section>'
    t = a.proxies.table.sort_values("auc", ascending=False)
    cells = pd.DataFrame(
        {
            "f": [f"<td>{_e(x)}</td>" for x in t["feature"]],
            "a": [f"<td>{_e(x)}</td>" for x in t["attribute"]],
            "auc": [f'<td class="num">{_num(x, lang=lang)}</td>' for x in t["auc"]],
            "g": [f"<td>{_e(x)}</td>" for x in t["most_exposed_group"]],
            "macro": [f'<td class="num">{_num(x, lang=lang)}</td>' for x in t["auc_macro"]],
            "mi": [f'<td class="num">{_num(x, lang=lang, digits=4)}</td>' for x in t["mutual_information_bits"]],
            "fl": [f"<td>{_e(text('yes' if x else 'no', lang))}</td>" for x in t["flagged"]],
        }
    )
    intro = f"<p>{_e(text('indirect_intro', lang, thr=a.proxies.threshold))}</p>"
    table = _table(
        cells,
        [
            text("feature", lang),
            text("attribute", lang),
            "AUC",
            text("group", lang),
            "AUC (macro)",
            "MI (bits)",
            text("flagged", lang),
        ],
    )
    return f'<section id="indirect">{title}{intro}{table}</section>'


def _definition(a: FairnessAudit, lang: str) -> str:
    r = a.rules
    reason = r.definition_reason or text("definition_none", lang)
    decisive = ", ".join(METRIC_NAMES[m][lang] for m in r.decisive_metrics)
    return (
        f'<section id="definition"><h2>{_e(text("definition", lang))}</h2>'
        f"<p><strong>{_e(DEFINITION_NAMES[r.definition][lang])}</strong> ({_e(decisive)})</p>"
        f"<p>{_e(reason)}</p></section>"
    )


def _significance(a: FairnessAudit, lang: str) -> str:
    conf = round(a.rules.confidence_level * 100)
    return (
        f'<section id="significance"><h2>{_e(text("significance", lang))}</h2>'
        f"<p>{_e(text('significance_intro', lang, conf=conf, n_boot=a.n_boot))}</p>"
        f"<p>{_e(text('rule', lang))}</p></section>"
    )


def _limitations(a: FairnessAudit, lang: str) -> str:
    items = [text("limit_base", lang), *a.limitations]
    notes = a.tables.by_group["note"]
    items += sorted({n for n in notes if n and "undefined" in n})[:20]
    lis = "".join(f"<li>{_e(x)}</li>" for x in items)
    return f'<section id="limitations"><h2>{_e(text("limitations", lang))}</h2><ul>{lis}</ul></section>'


def _disparity_table(a: FairnessAudit, lang: str) -> str:
    d = a.tables.disparities
    cells = pd.DataFrame(
        {
            "a": [f"<td>{_e(x)}</td>" for x in d["attribute"]],
            "m": [
                f"<td>{_e(METRIC_NAMES[x][lang])}{' *' if dec else ''}</td>"
                for x, dec in zip(d["metric"], d["decisive"], strict=True)
            ],
            "r": [f"<td>{_e(text(x, lang))}</td>" for x in d["reference"]],
            "d": [
                f'<td class="num">{_num(v, lo, hi, lang)}</td>'
                for v, lo, hi in zip(d["difference"], d["difference_low"], d["difference_high"], strict=True)
            ],
            "q": [
                f'<td class="num">{_num(v, lo, hi, lang)}</td>'
                for v, lo, hi in zip(d["ratio"], d["ratio_low"], d["ratio_high"], strict=True)
            ],
            "g": [f"<td>{_e(ga)} / {_e(gb)}</td>" for ga, gb in zip(d["group_a"], d["group_b"], strict=True)],
            "t": [
                f'<td class="num">{_num(r_, lang=lang, digits=2)} / {_num(f_, lang=lang, digits=2)}</td>'
                for r_, f_ in zip(d["review_threshold"], d["fail_threshold"], strict=True)
            ],
            "v": [f"<td>{_badge(v, lang) if v else '—'}</td>" for v in d["verdict"]],
            "why": [f'<td class="small">{_e(x)}</td>' for x in d["reason"]],
        }
    )
    return _table(
        cells,
        [
            text(k, lang)
            for k in (
                "attribute",
                "metric",
                "reference",
                "difference",
                "ratio",
                "groups",
                "thresholds",
                "verdict",
                "reason",
            )
        ],
    )


def _group_table(a: FairnessAudit, lang: str, frame: pd.DataFrame, metrics: list[str]) -> str:
    cols: dict[str, list[str]] = {
        "a": [f"<td>{_e(x)}</td>" for x in frame["attribute"]],
        "g": [f"<td>{_e(x)}</td>" for x in frame["group"]],
    }
    if "status" in frame:
        cols["s"] = [f"<td>{_e(text(x, lang))}</td>" for x in frame["status"]]
    for m in metrics:
        sup = frame["status"] == "suppressed" if "status" in frame else pd.Series(False, index=frame.index)
        lows = frame[f"{m}_low"] if f"{m}_low" in frame else [None] * len(frame)
        highs = frame[f"{m}_high"] if f"{m}_high" in frame else [None] * len(frame)
        digits = 0 if m == "count" else 3
        cols[m] = [
            f'<td class="num">{_e(text("suppressed", lang)) if s else _num(v, lo, hi, lang, digits)}</td>'
            for s, v, lo, hi in zip(sup, frame[m], lows, highs, strict=True)
        ]
    cols["n"] = [f'<td class="small">{_e(x)}</td>' for x in frame["note"]]
    heads = [text("attribute", lang), text("group", lang)] + ([text("status", lang)] if "status" in frame else [])
    heads += [METRIC_NAMES[m][lang] for m in metrics] + [text("note", lang)]
    return _table(pd.DataFrame(cols), heads)


def _tables(a: FairnessAudit, lang: str) -> str:
    metrics = [
        "count",
        "base_rate",
        "selection_rate",
        "true_positive_rate",
        "false_positive_rate",
        "false_negative_rate",
        "precision",
        "accuracy",
    ]
    parts = [
        f"<h2>{_e(text('tables', lang))}</h2>",
        f"<h3>{_e(text('disparities', lang))}</h3>",
        _disparity_table(a, lang),
        f"<h3>{_e(text('by_group', lang))}</h3>",
        _group_table(a, lang, a.tables.by_group, metrics),
    ]
    if a.calibration is not None:
        parts += [
            f"<h3>{_e(text('calibration', lang))}</h3>",
            _group_table(a, lang, a.calibration, ["count", "mean_score", "base_rate", "calibration_difference", "ece"]),
        ]
    return f'<section id="tables">{"".join(parts)}</section>'


def render_html(audit: FairnessAudit, lang: str = "en", *, fragment: bool = False) -> str:
    """Render the report; ``fragment=True`` omits the document shell (for notebooks)."""
    text("title", lang)  # validates lang
    body = "".join(
        [
            f"<h1>{_e(text('title', lang))}</h1>",
            f'<p class="small">policy {_e(audit.rules.policy_name)} · '
            f"sha256 {_e(audit.rules.policy_sha256[:12] or '-')}"
            f" · n_boot {audit.n_boot}</p>",
            _summary(audit, lang),
            _figures(audit, lang),
            _direct(audit, lang),
            _indirect(audit, lang),
            _definition(audit, lang),
            _significance(audit, lang),
            _limitations(audit, lang),
            _tables(audit, lang),
        ]
    )
    if fragment:
        return f'<div class="sandbox-fairness"><style>{_CSS}</style>{body}</div>'
    return (
        f'<!DOCTYPE html><html lang="{_e(lang)}"><head><meta charset="utf-8">'
        f"<title>{_e(text('title', lang))}</title><style>{_CSS}</style></head><body>{body}</body></html>"
    )


def write_report(audit: FairnessAudit, path: str | Path, lang: str = "en") -> Path:
    """Write the report to ``path``; an unwritable location is an :class:`OutputPathError` naming it."""
    p = Path(path)
    try:
        p.write_text(render_html(audit, lang), encoding="utf-8")
    except OSError as exc:
        raise OutputPathError(
            f"cannot write the report to {str(p)!r}: {exc.strerror}; choose a writable path"
        ) from None
    return p
