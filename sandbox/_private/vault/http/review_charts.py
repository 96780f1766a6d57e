"""Inline SVG charts of a fairness audit, drawn from its DP numbers: the gaps between groups and the rates per group.

Both charts are interval plots: a bar from the interval's low to its high end and a dot at the DP estimate, one row
per attribute (gaps) or per group (rates). The gap chart shades each row's review band (between the review and the
fail threshold) and fail band, so a reviewer sees at once which gaps are certainly, possibly or not beyond a
threshold. Colours and fonts come from the page's stylesheet (classes only, no ``style`` attributes, so the page's
CSP needs no inline styles); every text is escaped. No JavaScript and no external library is involved.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

from .review_format import is_number, number
from .review_i18n import t

__all__ = ["GapRow", "RateRow", "gap_chart", "rate_chart", "nice_ticks", "GAP_GEOMETRY", "RATE_GEOMETRY"]

_ROW = 24
_TOP = 34
_BOTTOM = 40
_RIGHT = 24
_CHAR_PX = 6.6  # average width of a 12 px label character


@dataclass(frozen=True)
class GapRow:
    """One gap between groups: its label, estimate and interval, thresholds and verdict."""

    label: str
    difference: float | None
    low: float | None
    high: float | None
    review: float | None
    fail: float | None
    verdict: str


@dataclass(frozen=True)
class RateRow:
    """One group's rate (or a header row naming an attribute, with ``header=True``)."""

    label: str
    value: float | None = None
    low: float | None = None
    high: float | None = None
    suppressed: bool = False
    header: bool = False


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Return round tick values covering ``[lo, hi]`` (about ``n`` of them)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else [0.0]
    raw = (hi - lo) / max(1, n)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    x = first
    while x <= hi + step * 1e-9:
        ticks.append(round(x, 12))
        x += step
    if ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


class _Scale:
    """Map values to x pixels between ``left`` and ``width - _RIGHT``, over round ticks."""

    def __init__(self, lo: float, hi: float, width: int, left: int) -> None:
        self.ticks = nice_ticks(lo, hi)
        self.lo, self.hi = self.ticks[0], self.ticks[-1]
        if self.hi <= self.lo:
            self.hi = self.lo + 1.0
        self.width, self.left = width, left

    def __call__(self, v: float) -> float:
        frac = (min(max(v, self.lo), self.hi) - self.lo) / (self.hi - self.lo)
        return round(self.left + frac * (self.width - self.left - _RIGHT), 1)


def _label(text: str, x: float, y: float, cls: str, room: float) -> str:
    """Build a right-aligned row label, shortened with an ellipsis to fit ``room`` pixels (the full text as tooltip)."""
    limit = max(4, int(room / (_CHAR_PX * (1.15 if cls == "row-head" else 1.0))))
    shown = text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
    tip = f"<title>{_e(text)}</title>" if shown != text else ""
    return f'<text class="{cls}" x="{x}" y="{y}" text-anchor="end">{tip}{_e(shown)}</text>'


def _frame(title: str, width: int, height: int, body: list[str], chart_id: str) -> str:
    return (
        f'<svg class="chart" id="{_e(chart_id)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="{_e(chart_id)}-t"><title id="{_e(chart_id)}-t">{_e(title)}</title>'
        + "".join(body)
        + "</svg>"
    )


def _axis(scale: _Scale, y0: float, y1: float, lang: str, caption: str, digits: int) -> list[str]:
    out = []
    for tick in scale.ticks:
        x = scale(tick)
        out.append(f'<line class="grid" x1="{x}" y1="{y0}" x2="{x}" y2="{y1}"/>')
        out.append(
            f'<text class="tick" x="{x}" y="{y1 + 14}" text-anchor="middle">{_e(number(tick, lang, digits))}</text>'
        )
    mid = (scale.left + scale.width - _RIGHT) / 2
    out.append(f'<text class="axis-caption" x="{mid}" y="{y1 + 32}" text-anchor="middle">{_e(caption)}</text>')
    return out


def _interval(scale: _Scale, y: float, value: float | None, low: float | None, high: float | None, cls: str) -> str:
    parts = []
    if is_number(low) and is_number(high):
        parts.append(f'<line class="ci {cls}" x1="{scale(low)}" y1="{y}" x2="{scale(high)}" y2="{y}"/>')
    if is_number(value):
        parts.append(f'<circle class="pt {cls}" cx="{scale(value)}" cy="{y}" r="4.5"/>')
    return "".join(parts)


def _digits(span: float) -> int:
    return 2 if span >= 0.2 else 3


#: Geometry (width, label room) of each chart: the gap chart spans the page, the rate charts half of it.
GAP_GEOMETRY = (1000, 330)
RATE_GEOMETRY = (600, 230)


def gap_chart(rows: Sequence[GapRow], lang: str, chart_id: str = "gap-chart") -> str:
    """Draw the gaps between groups against their thresholds (empty string for no rows)."""
    if not rows:
        return ""
    width, left = GAP_GEOMETRY
    values = [float(v) for r in rows for v in (r.difference, r.low, r.high, r.fail) if is_number(v)]
    scale = _Scale(min([0.0, *values]), max([0.05, *values]) * 1.05, width, left)
    height = _TOP + _ROW * len(rows) + _BOTTOM
    review, fail = t("review_threshold", lang), t("fail_threshold", lang)
    body = [
        f'<line class="legend-review" x1="{left}" y1="12" x2="{left + 18}" y2="12"/>',
        f'<text class="legend" x="{left + 24}" y="16">{_e(review)}</text>',
        f'<line class="legend-fail" x1="{left + 200}" y1="12" x2="{left + 218}" y2="12"/>',
        f'<text class="legend" x="{left + 224}" y="16">{_e(fail)}</text>',
    ]
    y_end = _TOP + _ROW * len(rows)
    for i, r in enumerate(rows):
        top = _TOP + _ROW * i
        if is_number(r.review) and is_number(r.fail):
            x_r, x_f, x_end = scale(r.review), scale(r.fail), scale(scale.hi)
            body.append(f'<rect class="band-review" x="{x_r}" y="{top + 2}" width="{x_f - x_r}" height="{_ROW - 4}"/>')
            body.append(f'<rect class="band-fail" x="{x_f}" y="{top + 2}" width="{x_end - x_f}" height="{_ROW - 4}"/>')
        body.append(_label(r.label, left - 8, top + _ROW / 2 + 4, "row-label", left - 16))
    body += _axis(scale, _TOP, y_end, lang, t("gap_axis", lang), _digits(scale.hi - scale.lo))
    zero = scale(0.0)
    body.append(f'<line class="zero" x1="{zero}" y1="{_TOP}" x2="{zero}" y2="{y_end}"/>')
    for i, r in enumerate(rows):
        y = _TOP + _ROW * i + _ROW / 2
        for value, cls in ((r.review, "thr-review"), (r.fail, "thr-fail")):
            if is_number(value):
                x = scale(value)
                body.append(f'<line class="{cls}" x1="{x}" y1="{y - _ROW / 2 + 2}" x2="{x}" y2="{y + _ROW / 2 - 2}"/>')
        body.append(_interval(scale, y, r.difference, r.low, r.high, f"v-{_e(r.verdict or 'none')}"))
    return _frame(t("gap_chart", lang), width, height, body, chart_id)


def rate_chart(
    rows: Sequence[RateRow], metric_label: str, lang: str, *, overall: float | None = None, chart_id: str = "rates"
) -> str:
    """Draw one rate per group with its interval, groups under their attribute, the overall rate as a line."""
    if not any(not r.header for r in rows):
        return ""
    width, left = RATE_GEOMETRY
    values = [float(v) for r in rows for v in (r.value, r.low, r.high) if is_number(v)]
    scale = _Scale(0.0, min(1.0, max([0.01, *values]) * 1.1), width, left)
    height = _TOP + _ROW * len(rows) + _BOTTOM
    title = t("rate_chart", lang, metric=metric_label)
    body = [f'<text class="legend title" x="8" y="16">{_e(title)}</text>']
    y_end = _TOP + _ROW * len(rows)
    body += _axis(scale, _TOP, y_end, lang, metric_label, _digits(scale.hi - scale.lo))
    if is_number(overall):
        x = scale(overall)
        body.append(f'<line class="overall" x1="{x}" y1="{_TOP}" x2="{x}" y2="{y_end}"/>')
        body.append(f'<text class="legend" x="{x + 4}" y="{_TOP - 4}">{_e(t("overall", lang))}</text>')
    for i, r in enumerate(rows):
        y = _TOP + _ROW * i + _ROW / 2
        body.append(_label(r.label, left - 8, y + 4, "row-head" if r.header else "row-label", left - 16))
        if r.header:
            continue
        if r.suppressed:
            body.append(f'<text class="note" x="{left + 6}" y="{y + 4}">{_e(t("suppressed", lang))}</text>')
        else:
            body.append(_interval(scale, y, r.value, r.low, r.high, "v-rate"))
    return _frame(title, width, height, body, chart_id)
