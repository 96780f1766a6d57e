"""Figures of the report, drawn with matplotlib's Agg backend and embedded as base64 PNG (no external files)."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["group_rates_png", "disparities_png", "bar_colours", "MAX_GROUPS_PLOTTED"]

MAX_GROUPS_PLOTTED = 40
_COLOURS = {"pass": "#1a7f37", "review": "#b08800", "fail": "#cf222e", "": "#57606a"}


def _plain(s: str) -> str:
    """Keep matplotlib from reading ``$`` as mathtext."""
    return s.replace("$", r"\$")


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def group_rates_png(
    by_group: pd.DataFrame, facet: str, rates: list[str], names: dict[str, str], title: str | None = None
) -> str:
    """Horizontal error bars: each group's rates with interval, the overall value as a dashed line."""
    rows = by_group[(by_group["attribute"] == facet) & (by_group["status"] != "suppressed")]
    rows = rows.nlargest(MAX_GROUPS_PLOTTED, "count").iloc[::-1]
    overall = by_group[by_group["attribute"] == "overall"].iloc[0]
    fig, axes = plt.subplots(
        1, len(rates), figsize=(3.6 * len(rates) + 1.5, 0.32 * len(rows) + 1.3), sharey=True, squeeze=False
    )
    y = np.arange(len(rows))
    for ax, rate in zip(axes[0], rates, strict=True):
        v = rows[rate].to_numpy(dtype=float)
        lo = np.clip(v - rows[f"{rate}_low"].to_numpy(dtype=float), 0, None)
        hi = np.clip(rows[f"{rate}_high"].to_numpy(dtype=float) - v, 0, None)
        small = (rows["status"] == "small").to_numpy()
        err = np.nan_to_num(np.vstack([lo, hi]))
        for mask, colour in ((~small, "#0969da"), (small, "#b08800")):
            if mask.any():
                ax.errorbar(v[mask], y[mask], xerr=err[:, mask], fmt="o", markersize=3.5, color=colour, capsize=2)
        ax.axvline(float(overall[rate]), color="#57606a", linestyle="--", linewidth=1)
        ax.set_title(_plain(names[rate]), fontsize=9)
        ax.set_xlim(0, 1)
        ax.tick_params(labelsize=8)
    axes[0][0].set_yticks(y, [_plain(str(g)) for g in rows["group"]])
    fig.suptitle(_plain(title or facet), fontsize=10)
    return _png(fig)


def bar_colours(disparities: pd.DataFrame) -> list[str]:
    """Colour of each disparity's bar: its verdict's colour if it is decisive, grey if it decides nothing."""
    return [
        _COLOURS.get(str(s), _COLOURS[""]) if dec else _COLOURS[""]
        for s, dec in zip(disparities["verdict"], disparities["decisive"], strict=True)
    ]


def disparities_png(disparities: pd.DataFrame, names: dict[str, str], fallback_fail: float) -> str:
    """Gap between groups per attribute and metric, with interval, against the review and fail thresholds.

    Bars of decisive disparities take their verdict's colour; the others are grey (they decide nothing).
    """
    d = disparities[disparities["reference"] == "between_groups"].iloc[::-1]
    fig, ax = plt.subplots(figsize=(8.5, 0.28 * len(d) + 1.4))
    y = np.arange(len(d))
    v = d["difference"].to_numpy(dtype=float)
    err = np.vstack(
        [
            np.clip(v - d["difference_low"].to_numpy(dtype=float), 0, None),
            np.clip(d["difference_high"].to_numpy(dtype=float) - v, 0, None),
        ]
    )
    ax.barh(y, np.nan_to_num(v), color=bar_colours(d), alpha=0.75)
    ax.errorbar(np.nan_to_num(v), y, xerr=np.nan_to_num(err), fmt="none", ecolor="#24292f", capsize=2)
    review = d["review_threshold"].dropna()
    fail = d["fail_threshold"].dropna()
    if len(review):
        ax.axvline(float(review.iloc[0]), color=_COLOURS["review"], linestyle="--", label="review")
    ax.axvline(
        float(fail.iloc[0]) if len(fail) else fallback_fail, color=_COLOURS["fail"], linestyle="--", label="fail"
    )
    labels = [
        _plain(f"{a} · {names[m]}") + (" *" if dec else "")
        for a, m, dec in zip(d["attribute"], d["metric"], d["decisive"], strict=True)
    ]
    ax.set_yticks(y, labels, fontsize=8)
    ax.axvline(0, color="#24292f", linewidth=0.8)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_xlabel("difference (* decisive)", fontsize=8)
    return _png(fig)
