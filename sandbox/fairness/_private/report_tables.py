"""The tables of the fairness report (disparities, groups, calibration) and the small HTML helpers they share.

Only the decisive disparities carry verdict colours; the others show their verdict in grey as "does not decide".
Equal opportunity is the true-positive half of equalized odds, so where both are computed and only equalized odds
decides, its rows are left out of the report (the audit's data keep them).
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from .metrics import DISPARITIES
from .report_labels import DisplayNames
from .report_text import METRIC_NAMES, STATUS_NAMES, text

if TYPE_CHECKING:
    from .audit import FairnessAudit

__all__ = ["esc", "num", "badge", "html_table", "shown_disparities", "disparity_table", "group_table"]


def esc(s: object) -> str:
    """HTML-escape ``s`` (quotes too)."""
    return html.escape(str(s), quote=True)


def num(v: Any, lo: Any = None, hi: Any = None, lang: str = "en", digits: int = 3) -> str:
    """Format a number with its interval, or the word "undefined"."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return esc(text("undefined", lang))
    out = f"{float(v):.{digits}f}"
    if lo is not None and not (isinstance(lo, float) and math.isnan(lo)):
        out += f" [{float(lo):.{digits}f}, {float(hi):.{digits}f}]"
    return out


def badge(status: str, lang: str, decisive: bool = True) -> str:
    """Render a verdict badge: coloured for a decisive disparity, grey ("does not decide") otherwise."""
    if not status:
        return "—"
    if not decisive:
        return f'<span class="badge info">{esc(STATUS_NAMES[status][lang])} · {esc(text("not_decisive", lang))}</span>'
    return f'<span class="badge {esc(status)}">{esc(STATUS_NAMES[status][lang])}</span>'


def html_table(cells: pd.DataFrame, headers: list[str]) -> str:
    """Build a table from a frame of ready ``<td>`` strings."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(c for c in row) + "</tr>" for row in cells.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def shown_disparities(d: pd.DataFrame) -> pd.DataFrame:
    """Select the disparities the report shows: equal opportunity is left out where equalized odds covers it."""
    eo = set(d.loc[d["metric"] == "equalized_odds", "attribute"])
    repeat = (d["metric"] == "equal_opportunity") & ~d["decisive"].astype(bool) & d["attribute"].isin(eo)
    return d[~repeat]


def _other(facet: str, group: str, lang: str, names: DisplayNames) -> str:
    return text("overall", lang) if group == "overall" else names.group(facet, group)


def disparity_table(a: FairnessAudit, lang: str, names: DisplayNames) -> str:
    """Every shown disparity with its interval, the groups compared, thresholds, power, evidence and verdict."""
    d = shown_disparities(a.tables.disparities)
    has_power = "detectable_gap" in d.columns
    cells = {
        "a": [f"<td>{esc(names.facet(x))}</td>" for x in d["attribute"]],
        "m": [
            f"<td>{esc(METRIC_NAMES[x][lang])}{' *' if dec else ''}</td>"
            for x, dec in zip(d["metric"], d["decisive"], strict=True)
        ],
        "r": [f"<td>{esc(text(x, lang))}</td>" for x in d["reference"]],
        "d": [
            f'<td class="num">{num(v, lo, hi, lang)}</td>'
            for v, lo, hi in zip(d["difference"], d["difference_low"], d["difference_high"], strict=True)
        ],
        "q": [
            f'<td class="num">{num(v, lo, hi, lang)}</td>'
            for v, lo, hi in zip(d["ratio"], d["ratio_low"], d["ratio_high"], strict=True)
        ],
        "g": [
            f"<td>{esc(names.group(f, ga))} / {esc(_other(f, gb, lang, names))}</td>"
            for f, ga, gb in zip(d["attribute"], d["group_a"], d["group_b"], strict=True)
        ],
        "t": [
            f'<td class="num">{num(r_, lang=lang, digits=2)} / {num(f_, lang=lang, digits=2)}</td>'
            for r_, f_ in zip(d["review_threshold"], d["fail_threshold"], strict=True)
        ],
    }
    headers = ["attribute", "metric", "reference", "difference", "ratio", "groups", "thresholds"]
    if has_power:
        cells["p"] = [
            f'<td class="num">{num(x, lang=lang) if ref == "between_groups" else "—"}</td>'
            for x, ref in zip(d["detectable_gap"], d["reference"], strict=True)
        ]
        cells["e"] = [f"<td>{esc(text(x, lang)) if x else '—'}</td>" for x in d["evidence"]]
        headers += ["detectable", "evidence"]
    cells["v"] = [f"<td>{badge(v, lang, bool(dec))}</td>" for v, dec in zip(d["verdict"], d["decisive"], strict=True)]
    cells["why"] = [f'<td class="small">{esc(x)}</td>' for x in d["reason"]]
    headers += ["verdict", "reason"]
    table = html_table(pd.DataFrame(cells), [text(k, lang) for k in headers])
    note = f'<p class="small">{esc(text("eo_note", lang))}</p>' if len(d) < len(a.tables.disparities) else ""
    return table + note


def group_table(a: FairnessAudit, lang: str, frame: pd.DataFrame, metrics: list[str], names: DisplayNames) -> str:
    """Metrics per group with intervals (suppressed groups without numbers), and power of the decisive rates."""
    cols: dict[str, list[str]] = {
        "a": [
            f"<td>{esc(names.facet(x) if x != 'overall' else text('overall', lang))}</td>" for x in frame["attribute"]
        ],
        "g": [
            f"<td>{esc(names.group(f, g) if f != 'overall' else text('overall', lang))}</td>"
            for f, g in zip(frame["attribute"], frame["group"], strict=True)
        ],
    }
    if "status" in frame:
        cols["s"] = [f"<td>{esc(text(x, lang))}</td>" for x in frame["status"]]
    sup = frame["status"] == "suppressed" if "status" in frame else pd.Series(False, index=frame.index)
    for m in metrics:
        lows = frame[f"{m}_low"] if f"{m}_low" in frame else [None] * len(frame)
        highs = frame[f"{m}_high"] if f"{m}_high" in frame else [None] * len(frame)
        digits = 0 if m == "count" else 3
        cols[m] = [
            f'<td class="num">{esc(text("suppressed", lang)) if s else num(v, lo, hi, lang, digits)}</td>'
            for s, v, lo, hi in zip(sup, frame[m], lows, highs, strict=True)
        ]
    power = [r for r in dict.fromkeys(r for m in a.rules.decisive_metrics for r in DISPARITIES[m])]
    power = [r for r in power if f"{r}_detectable_gap" in frame]
    for r in power:
        cols[f"p_{r}"] = [
            f'<td class="num">{"—" if f == "overall" or s else num(v, lang=lang)}</td>'
            for f, s, v in zip(frame["attribute"], sup, frame[f"{r}_detectable_gap"], strict=True)
        ]
    cols["n"] = [f'<td class="small">{esc(x)}</td>' for x in frame["note"]]
    heads = [text("attribute", lang), text("group", lang)] + ([text("status", lang)] if "status" in frame else [])
    heads += [METRIC_NAMES[m][lang] for m in metrics]
    heads += [f"{text('detectable', lang)}: {METRIC_NAMES[r][lang]}" for r in power]
    heads += [text("note", lang)]
    return html_table(pd.DataFrame(cols), heads)
