"""The audit computation: counts -> group metrics, disparities and verdicts, each with an interval and its power.

Everything is driven by a :class:`~.counts.CountTable`, so an audit of predictions and an audit of DP-noised counts
released by the vault go through the same code. Group rates get their own exact interval
(:mod:`.group_stats`); gaps between groups get intervals that hold simultaneously for every facet of a metric,
calibrated by a bootstrap of the largest studentised deviation (:mod:`.simultaneous`, whose docstring gives the
method and why), and the smallest gap each test detects with 80% power.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .bootstrap import resample_counts
from .counts import CountTable, FacetCounts
from .group_stats import facet_draws, marginal_intervals
from .intervals import count_interval
from .metrics import DISPARITIES, DISPARITY_RATES, RATES, Gap, group_rates, pick_gap, undefined_reasons
from .power import detectable_gaps
from .rules import AuditRules
from .simultaneous import (
    RateDraws,
    _abs_bounds,
    critical_value,
    max_box_t,
    max_pair_t,
    max_to_overall_t,
    pair_gap_interval,
    ratio_interval,
    to_overall_interval,
)
from .verdict import Verdict, judge, worst

__all__ = ["AuditTables", "compute_tables", "GROUP_METRICS", "REFERENCES", "rate_family"]

GROUP_METRICS = ("count", *RATES)
REFERENCES = ("between_groups", "to_overall")
_NAN = float("nan")


@dataclass(frozen=True)
class AuditTables:
    """The computed tables of an audit and its overall verdict."""

    by_group: pd.DataFrame
    disparities: pd.DataFrame
    verdict: Verdict


@dataclass(frozen=True)
class _Facet:
    facet: FacetCounts
    status: np.ndarray
    notes: list[str]
    draws: dict[str, RateDraws]


@dataclass(frozen=True)
class _Critical:
    """Critical values of one metric: pairs between groups, groups to the facet total, the box for ratios."""

    pair: float
    to_overall: float
    box: float


def rate_family(rate: str, rules: AuditRules) -> str:
    """Return the metric whose simultaneous family sets a rate's detectable gap (a decisive one, if any)."""
    for metric in (*rules.decisive_metrics, *DISPARITIES):
        if rate in DISPARITIES[metric]:
            return metric
    raise KeyError(rate)  # pragma: no cover - every disparity rate belongs to a metric


def _status(f: FacetCounts, n: np.ndarray, rules: AuditRules) -> tuple[np.ndarray, list[str]]:
    status = np.where(f.suppressed, "suppressed", np.where(n < rules.min_group_size, "small", "ok"))
    notes = []
    for g, s in enumerate(status):
        if s == "suppressed":
            notes.append(f"suppressed by disclosure control (fewer than {rules.min_count} rows); no numbers released")
        elif s == "small":
            notes.append(
                f"n = {n[g]:.0f} is below min_group_size {rules.min_group_size}: verdict review; "
                "not used for the disparities"
            )
        else:
            notes.append("")
    return status, notes


def _group_rows(
    name: str,
    labels: tuple[str, ...],
    counts: np.ndarray,
    boot: np.ndarray,
    status: np.ndarray,
    notes: list[str],
    table: CountTable,
    alpha: float,
    power: dict[str, np.ndarray],
) -> pd.DataFrame:
    point = group_rates(counts)
    data: dict[str, object] = {"attribute": name, "group": list(labels), "status": status}
    hide = status == "suppressed"
    for m in GROUP_METRICS:
        if m == "count":
            lo, hi = count_interval(point["count"], table.noise_scale, alpha)
        else:
            lo, hi = marginal_intervals(counts, boot, m, table.noise_scale, alpha)
        data[m] = np.where(hide, np.nan, point[m])
        data[f"{m}_low"] = np.where(hide, np.nan, lo)
        data[f"{m}_high"] = np.where(hide, np.nan, hi)
    for rate in DISPARITY_RATES:
        data[f"{rate}_detectable_gap"] = np.where(hide, np.nan, power.get(rate, np.full(len(labels), np.nan)))
    for g, s in enumerate(status):
        if s != "suppressed":
            notes[g] = "; ".join(x for x in (notes[g], *undefined_reasons(point, g)) if x)
    data["note"] = notes
    return pd.DataFrame(data)


def _issues(
    f: FacetCounts, point: dict[str, np.ndarray], status: np.ndarray, rates: tuple[str, ...], min_size: int
) -> list[str]:
    out = []
    small = [f"{lab} (n = {point['count'][g]:.0f})" for g, lab in enumerate(f.labels) if status[g] == "small"]
    if small:
        out.append(f"groups below min_group_size {min_size}, not used: {', '.join(small)}")
    sup = [lab for g, lab in enumerate(f.labels) if status[g] == "suppressed"]
    if sup:
        out.append(f"groups suppressed by disclosure control, not used: {', '.join(sup)}")
    for r in rates:
        undef = [lab for g, lab in enumerate(f.labels) if status[g] == "ok" and np.isnan(point[r][g])]
        if undef:
            out.append(f"{r} undefined ({RATES_REASON[r]}) for {', '.join(undef)}")
    return out


RATES_REASON = {
    "selection_rate": "empty group",
    "true_positive_rate": "no positives in y_true",
    "false_positive_rate": "no negatives in y_true",
    "precision": "no positive predictions",
}


def _floats(values: tuple[np.ndarray, ...]) -> tuple[float, float]:
    return float(values[0]), float(values[1])


def _between(fs: _Facet, rates: tuple[str, ...], crit: _Critical) -> dict[str, float]:
    diffs = [_floats(pair_gap_interval(fs.draws[r], crit.pair)) for r in rates]
    ratios = [_floats(ratio_interval(fs.draws[r], crit.box)) for r in rates]
    return _combine(diffs, ratios)


def _to_overall(fs: _Facet, rates: tuple[str, ...], crit: _Critical) -> dict[str, float]:
    parts = [to_overall_interval(fs.draws[r], crit.to_overall, crit.box) for r in rates]
    return _combine([_floats(p[:2]) for p in parts], [_floats(p[2:]) for p in parts])


def _combine(diffs: list[tuple[float, float]], ratios: list[tuple[float, float]]) -> dict[str, float]:
    """Combine a metric's rates: its gap is their largest gap, its ratio their smallest ratio, ends likewise."""
    d = [x for x in diffs if x[0] == x[0]]
    q = [x for x in ratios if x[0] == x[0]]
    return {
        "difference_low": max((x[0] for x in d), default=_NAN),
        "difference_high": max((x[1] for x in d), default=_NAN),
        "ratio_low": min((x[0] for x in q), default=_NAN),
        "ratio_high": min((x[1] for x in q), default=_NAN),
    }


def _point(f: FacetCounts, gaps: list[Gap]) -> dict[str, object]:
    if not gaps:
        return {"difference": _NAN, "ratio": _NAN, "group_a": "", "group_b": "", "rate": ""}
    dgap = max(gaps, key=lambda g: g.difference)
    rgap = min(gaps, key=lambda g: g.ratio if g.ratio == g.ratio else np.inf)
    return {
        "difference": dgap.difference,
        "ratio": rgap.ratio,
        "group_a": f.labels[dgap.a],
        "group_b": f.labels[dgap.b] if dgap.b >= 0 else "overall",
        "rate": dgap.rate,
    }


def _significance_low(fs: _Facet, crit: _Critical, gaps: list[Gap], low: float, threshold: object) -> float:
    """Return the lower end that decides "significant": that of a pair of groups whose own gap exceeds the fail line.

    A metric's gap is its largest pairwise gap (over its rates: equalized odds has two), and its interval runs from
    the largest lower end to the largest upper end of the pairs, which is an interval for that largest gap. But a
    fail needs the gap that exceeds the fail threshold to be real, and the largest lower end may belong to another
    pair: on a national population the large groups' small real gaps (0.01 in false positive rates, 0.04 in true
    positive rates) are significant, while a small group's true positive rate (a few dozen positives, DP noise)
    can read 0.2 off by chance. So the test "its interval excludes 0" uses only the pairs, of any of the metric's
    rates, whose gap exceeds the fail threshold; with none above it, ``low`` as it is (no fail is possible then).
    """
    fail = getattr(threshold, "fail", None)
    if fail is None or not any(g.difference > fail for g in gaps):
        return low
    lows = [_excess_low(fs.draws[g.rate], crit.pair, fail) for g in gaps if g.difference > fail]
    return max(lows, default=0.0)


def _excess_low(r: RateDraws, c: float | np.ndarray, fail: float) -> float:
    """Return the largest lower end of ``|d|`` over the usable pairs whose gap ``|d|`` exceeds ``fail`` (or 0)."""
    i, j = np.triu_indices(r.p.shape[-1], k=1)
    lo, hi = r.half_widths(c)
    d = r.p[..., i] - r.p[..., j]
    low, _ = _abs_bounds(d, np.hypot(lo[..., i], hi[..., j]), np.hypot(hi[..., i], lo[..., j]))
    over = r.usable[..., i] & r.usable[..., j] & (np.abs(d) > fail)
    return float(np.clip(low[over], 0.0, 1.0).max()) if over.any() else 0.0


def _disparity_rows(
    fs: _Facet, crits: dict[str, _Critical], power: dict[str, dict[str, float]], rules: AuditRules
) -> list[dict[str, object]]:
    f = fs.facet
    point = group_rates(f.counts)
    overall = group_rates(f.counts.sum(axis=0))
    usable = fs.status == "ok"
    rows = []
    for metric, rates in DISPARITIES.items():
        issues = _issues(f, point, fs.status, rates, rules.min_group_size)
        threshold = rules.thresholds.get(f"{metric}_difference")
        for ref in REFERENCES:
            gaps = [g for r in rates if (g := pick_gap(r, point[r], float(overall[r]), usable, ref)) is not None]
            bounds = (
                _between(fs, rates, crits[metric]) if ref == "between_groups" else _to_overall(fs, rates, crits[metric])
            )
            row: dict[str, object] = {
                "attribute": f.name,
                "metric": metric,
                "reference": ref,
                "decisive": metric in rules.decisive_metrics,
                **_point(f, gaps),
                **bounds,
            }
            if not gaps:
                row.update(dict.fromkeys(bounds, _NAN))
            if ref == "between_groups":
                detectable = power[metric][f.name]
                label = f"{metric.replace('_', ' ')} difference for {f.name}"
                d, lo, hi = (float(row[k]) for k in ("difference", "difference_low", "difference_high"))  # type: ignore[arg-type]
                lo = _significance_low(fs, crits[metric], gaps, lo, threshold)
                j = judge(label, d, lo, hi, threshold, issues, detectable)
                row.update(
                    verdict=j.verdict.status,
                    reason=j.verdict.reason,
                    detectable_gap=detectable,
                    evidence="insufficient" if j.insufficient_evidence else "sufficient",
                )
            else:
                row.update(
                    verdict="",
                    reason="reported for context; the policy's thresholds apply to the gap between groups",
                    detectable_gap=_NAN,
                    evidence="",
                )
            row.update(
                review_threshold=threshold.review if threshold else _NAN,
                fail_threshold=threshold.fail if threshold else _NAN,
            )
            rows.append(row)
    return rows


def _draws(table: CountTable, n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    """Bootstrap counts of the overall row ``(B, 1, 4)`` and of each facet ``(B, G, 4)``.

    Exact counts with a finest table no larger than the facets together are drawn once from it (every facet is
    then a margin of the same resample, so the maximum over facets sees their dependence); otherwise, and always
    for DP-noised counts (the vault noises each facet on its own), each facet is drawn on its own.
    """
    fin = table.finest
    facet_cells = sum(f.counts.size for f in table.facets)
    if fin is not None and table.noise_scale == 0 and fin.counts.size <= 2 * facet_cells:
        full = resample_counts(fin.counts.reshape(-1, 4), n_boot, rng).reshape(n_boot, *fin.counts.shape)
        overall = full.reshape(n_boot, -1, 4).sum(axis=1)[:, None, :]
        return overall, [fin.facet(full, k) for k in range(len(table.facets))]
    overall = resample_counts(table.overall[None, :], n_boot, rng, table.noise_scale)
    return overall, [resample_counts(f.counts, n_boot, rng, table.noise_scale) for f in table.facets]


def _critical_values(facets: list[_Facet], alpha: float) -> dict[str, _Critical]:
    """One family per metric: all its rates over all facets (so the verdict's test holds for the whole audit)."""
    stats = {
        r: [(max_pair_t(fs.draws[r]), max_to_overall_t(fs.draws[r]), max_box_t(fs.draws[r])) for fs in facets]
        for r in DISPARITY_RATES
    }
    out = {}
    for metric, rates in DISPARITIES.items():
        pair, to_overall, box = (
            float(critical_value([s[k] for r in rates for s in stats[r]], alpha)) for k in range(3)
        )
        out[metric] = _Critical(pair, to_overall, box)
    return out


def _power(
    facets: list[_Facet], crits: dict[str, _Critical], rules: AuditRules, noise_scale: float
) -> tuple[dict[str, dict[str, float]], list[dict[str, np.ndarray]]]:
    """Compute detectable gaps per metric and facet (largest over the metric's rates) and per group and rate."""
    per_metric: dict[str, dict[str, float]] = {m: {} for m in DISPARITIES}
    per_group: list[dict[str, np.ndarray]] = []
    for fs in facets:
        keys = [(m, r) for m, rates in DISPARITIES.items() for r in rates]
        queries = [(r, fs.draws[r].usable, crits[m].pair) for m, r in keys]
        found = dict(zip(keys, detectable_gaps(fs.facet.counts, queries, noise_scale), strict=True))
        per_group.append({r: found[(rate_family(r, rules), r)][0] for r in DISPARITY_RATES})
        for m, rates in DISPARITIES.items():
            gaps = [found[(m, r)][1] for r in rates]
            per_metric[m][fs.facet.name] = _NAN if any(g != g for g in gaps) else max(gaps)
    return per_metric, per_group


def compute_tables(table: CountTable, rules: AuditRules, n_boot: int, rng: np.random.Generator) -> AuditTables:
    """Compute group metrics, disparities and the verdict for every facet of ``table``."""
    alpha = 1.0 - rules.confidence_level
    b = table.noise_scale
    oboot, boots = _draws(table, n_boot, rng)
    facets = []
    for f, boot in zip(table.facets, boots, strict=True):
        status, notes = _status(f, f.counts.sum(axis=1), rules)
        facets.append(_Facet(f, status, notes, facet_draws(f.counts, boot, status == "ok", b, DISPARITY_RATES)))
    crits = _critical_values(facets, alpha)
    power, group_power = _power(facets, crits, rules, b)
    overall = table.overall[None, :]
    frames = [_group_rows("overall", ("overall",), overall, oboot, np.array(["ok"]), [""], table, alpha, {})]
    drows: list[dict[str, object]] = []
    for fs, boot, gp in zip(facets, boots, group_power, strict=True):
        f = fs.facet
        frames.append(_group_rows(f.name, f.labels, f.counts, boot, fs.status, fs.notes, table, alpha, gp))
        drows.extend(_disparity_rows(fs, crits, power, rules))
    disparities = pd.DataFrame(drows)
    decisive = disparities[disparities["decisive"] & (disparities["reference"] == "between_groups")]
    overall_status = worst(str(s) for s in decisive["verdict"])
    reasons = tuple(str(r) for s, r in zip(decisive["verdict"], decisive["reason"], strict=True) if s == overall_status)
    return AuditTables(pd.concat(frames, ignore_index=True), disparities, Verdict(overall_status, reasons))
