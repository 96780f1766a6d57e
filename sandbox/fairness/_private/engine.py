"""The audit computation: counts -> group metrics, disparities and verdicts, each with a bootstrap interval.

Everything is driven by a :class:`~.counts.CountTable`, so an audit of predictions and an audit of DP-noised counts
released by the vault go through the same code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .bootstrap import percentile_interval, resample_counts
from .counts import CountTable, FacetCounts
from .metrics import DISPARITIES, RATES, Gap, group_rates, pick_gap, ratio_to_overall, undefined_reasons
from .rules import AuditRules
from .verdict import Verdict, judge, worst

__all__ = ["AuditTables", "compute_tables", "GROUP_METRICS", "REFERENCES"]

GROUP_METRICS = ("count", *RATES)
REFERENCES = ("between_groups", "to_overall")


@dataclass(frozen=True)
class AuditTables:
    """The computed tables of an audit and its overall verdict."""

    by_group: pd.DataFrame
    disparities: pd.DataFrame
    verdict: Verdict


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
    point: dict[str, np.ndarray],
    dist: dict[str, np.ndarray],
    status: np.ndarray,
    notes: list[str],
    conf: float,
) -> pd.DataFrame:
    data: dict[str, object] = {"attribute": name, "group": list(labels), "status": status}
    lows, highs, _ = percentile_interval(np.stack([dist[m] for m in GROUP_METRICS], axis=1), conf)
    hide = status == "suppressed"
    for k, m in enumerate(GROUP_METRICS):
        data[m] = np.where(hide, np.nan, point[m])
        data[f"{m}_low"] = np.where(hide, np.nan, lows[k])
        data[f"{m}_high"] = np.where(hide, np.nan, highs[k])
    for g, s in enumerate(status):
        if s != "suppressed":
            notes[g] = "; ".join(x for x in (notes[g], *undefined_reasons(point, g)) if x)
    data["note"] = notes
    return pd.DataFrame(data)


def _boot_gap(gap: Gap, dist: dict[str, np.ndarray], odist: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    vb = dist[gap.rate]
    if gap.b >= 0:
        diff = gap.sign * (vb[:, gap.a] - vb[:, gap.b])
        hi = vb[:, gap.a]
        ratio = np.divide(vb[:, gap.ratio_group], hi, out=np.full(hi.shape, np.nan), where=hi > 0)
        return diff, ratio
    ob = odist[gap.rate]
    return gap.sign * (vb[:, gap.a] - ob), ratio_to_overall(vb[:, gap.ratio_group], ob)


def _issues(
    f: FacetCounts, point: dict[str, np.ndarray], status: np.ndarray, rates: tuple[str, ...], rules: AuditRules
) -> list[str]:
    out = []
    small = [f"{lab} (n = {point['count'][g]:.0f})" for g, lab in enumerate(f.labels) if status[g] == "small"]
    if small:
        out.append(f"groups below min_group_size {rules.min_group_size}, not used: {', '.join(small)}")
    sup = [lab for g, lab in enumerate(f.labels) if status[g] == "suppressed"]
    if sup:
        out.append(f"groups suppressed by disclosure control, not used: {', '.join(sup)}")
    for r in rates:
        undef = [lab for g, lab in enumerate(f.labels) if status[g] == "ok" and np.isnan(point[r][g])]
        if undef:
            out.append(f"{r} undefined ({RATES_REASON[r]}) for {', '.join(undef)}")
    return out


def _disparity_rows(
    f: FacetCounts,
    rates_: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
    overall: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
    status: np.ndarray,
    rules: AuditRules,
) -> list[dict[str, object]]:
    (point, dist), (opoint, odist) = rates_, overall
    eligible = status == "ok"
    rows = []
    for metric, rates in DISPARITIES.items():
        issues = _issues(f, point, status, rates, rules)
        for ref in REFERENCES:
            gaps = [g for r in rates if (g := pick_gap(r, point[r], float(opoint[r]), eligible, ref)) is not None]
            rows.append(_disparity_row(f, metric, ref, gaps, dist, odist, issues, rules))
    return rows


def _disparity_row(
    f: FacetCounts,
    metric: str,
    ref: str,
    gaps: list[Gap],
    dist: dict[str, np.ndarray],
    odist: dict[str, np.ndarray],
    issues: list[str],
    rules: AuditRules,
) -> dict[str, object]:
    nan = float("nan")
    row: dict[str, object] = {
        "attribute": f.name,
        "metric": metric,
        "reference": ref,
        "decisive": metric in rules.decisive_metrics,
    }
    if not gaps:
        row.update(
            difference=nan,
            difference_low=nan,
            difference_high=nan,
            ratio=nan,
            ratio_low=nan,
            ratio_high=nan,
            group_a="",
            group_b="",
            rate="",
        )
    else:
        dgap = max(gaps, key=lambda g: g.difference)
        rgap = min(gaps, key=lambda g: g.ratio if g.ratio == g.ratio else np.inf)
        dboot, _ = _boot_gap(dgap, dist, odist)
        _, rboot = _boot_gap(rgap, dist, odist)
        (dl, rl), (dh, rh), _ = percentile_interval(np.stack([dboot, rboot], axis=1), rules.confidence_level)
        row.update(
            difference=dgap.difference,
            difference_low=float(dl),
            difference_high=float(dh),
            ratio=rgap.ratio,
            ratio_low=float(rl),
            ratio_high=float(rh),
            rate=dgap.rate,
            group_a=f.labels[dgap.a],
            group_b=f.labels[dgap.b] if dgap.b >= 0 else "overall",
        )
    threshold = rules.thresholds.get(f"{metric}_difference")
    if ref == "between_groups":
        label = f"{metric.replace('_', ' ')} difference for {f.name}"
        d, lo, hi = (float(row[k]) for k in ("difference", "difference_low", "difference_high"))  # type: ignore[arg-type]
        v = judge(label, d, lo, hi, threshold, issues)
        row.update(verdict=v.status, reason=v.reason)
    else:
        row.update(verdict="", reason="reported for context; the policy's thresholds apply to the gap between groups")
    row.update(
        review_threshold=threshold.review if threshold else nan, fail_threshold=threshold.fail if threshold else nan
    )
    return row


RATES_REASON = {
    "selection_rate": "empty group",
    "true_positive_rate": "no positives in y_true",
    "false_positive_rate": "no negatives in y_true",
    "precision": "no positive predictions",
}


def _draws(table: CountTable, n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    """Bootstrap counts of the overall row ``(B, 1, 4)`` and of each facet ``(B, G, 4)``.

    Exact counts with a finest table no larger than the facets together are drawn once from it (every facet is
    then a margin of the same resample); otherwise, and always for DP-noised counts (the vault noises each facet
    on its own), each facet is drawn on its own.
    """
    fin = table.finest
    facet_cells = sum(f.counts.size for f in table.facets)
    if fin is not None and table.noise_scale == 0 and fin.counts.size <= 2 * facet_cells:
        full = resample_counts(fin.counts.reshape(-1, 4), n_boot, rng).reshape(n_boot, *fin.counts.shape)
        overall = full.reshape(n_boot, -1, 4).sum(axis=1)[:, None, :]
        return overall, [fin.facet(full, k) for k in range(len(table.facets))]
    overall = resample_counts(table.overall[None, :], n_boot, rng, table.noise_scale)
    return overall, [resample_counts(f.counts, n_boot, rng, table.noise_scale) for f in table.facets]


def compute_tables(table: CountTable, rules: AuditRules, n_boot: int, rng: np.random.Generator) -> AuditTables:
    """Compute group metrics, disparities and the verdict for every facet of ``table``."""
    conf = rules.confidence_level
    oboot, boots = _draws(table, n_boot, rng)
    orates = (group_rates(table.overall[None, :]), group_rates(oboot))
    frames = [_group_rows("overall", ("overall",), *orates, np.array(["ok"]), [""], conf)]
    drows: list[dict[str, object]] = []
    for f, boot in zip(table.facets, boots, strict=True):
        rates_ = (group_rates(f.counts), group_rates(boot))
        # disparities to overall use the facet's own total, so the comparison is within one resample
        facet_total = (group_rates(f.counts.sum(axis=0)), group_rates(boot.sum(axis=1)))
        status, notes = _status(f, f.counts.sum(axis=1), rules)
        frames.append(_group_rows(f.name, f.labels, *rates_, status, notes, conf))
        drows.extend(_disparity_rows(f, rates_, facet_total, status, rules))
    disparities = pd.DataFrame(drows)
    decisive = disparities[disparities["decisive"] & (disparities["reference"] == "between_groups")]
    overall = worst(str(s) for s in decisive["verdict"])
    reasons = tuple(str(r) for s, r in zip(decisive["verdict"], decisive["reason"], strict=True) if s == overall)
    return AuditTables(pd.concat(frames, ignore_index=True), disparities, Verdict(overall, reasons))
