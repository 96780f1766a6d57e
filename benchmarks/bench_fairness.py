"""Benchmark: the fairness audit on 1 million predictions beside fairlearn's MetricFrame with ``n_boot``.

Run: ``.venv/bin/python -m benchmarks.bench_fairness`` (options: ``--rows``, ``--n-boot``, ``--repeats``,
``--fairlearn-boot``, ``--skip-fairlearn``).

Data: 1,000,000 predictions with four protected attributes (gender 2, age band 5, migration background 3,
household type 5 categories, as pandas categoricals like the generator's), audited per attribute, for all six
pairs and for the four-way intersection: 11 facets, 246 groups. Our audit computes every metric with its exact
interval, every disparity with its simultaneous interval (critical value from 1000 bootstrap resamples of the
per-group confusion counts; for the four-way intersection 11,175 pairs per rate and resample) and the detectable
gap of every group and disparity; target: at most 1 s of one core.

Floor, measured in the same run: counting the confusion cells of every group once (``confusion_counts``), which
any audit must do; the script prints how much of the audit is that pass over the rows and what the statistics add.

Peer: fairlearn's ``MetricFrame`` with the same seven metrics and ``n_boot``/``ci_quantiles`` on the same rows.
fairlearn re-runs every metric on every resample of the rows, which at this size takes minutes per resample, so
it is measured on one facet (``gender``) with a few resamples: per-resample time = (time with k resamples - time
without) / k. Its cost per facet grows with the rows, not the groups (it loops over the rows of each group in
Python), so the extrapolation to 1000 resamples and 11 facets multiplies by both; the script prints the
measured and the extrapolated numbers and says which is which.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import numpy as np
import pandas as pd

from sandbox import Policy
from sandbox.fairness import audit_predictions, confusion_counts

ATTRS = {
    "gender": ("female", "male"),
    "age_band": ("18-26", "27-44", "45-66", "67-79", "80+"),
    "migration_background": ("nederland", "europa", "buiten_europa"),
    "household_type": ("single", "couple", "couple_with_children", "single_parent", "other"),
}
INTERSECTIONS = [list(c) for c in itertools.combinations(ATTRS, 2)] + [list(ATTRS)]
TARGET_SECONDS = 1.0


def make_data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    sf = pd.DataFrame(
        {a: pd.Categorical.from_codes(rng.integers(0, len(c), rows), categories=list(c)) for a, c in ATTRS.items()}
    )
    far = (sf["migration_background"] == "buiten_europa").to_numpy()
    y_true = (rng.random(rows) < np.where(far, 0.12, 0.07)).astype(np.int8)
    y_pred = np.where(rng.random(rows) < np.where(far, 0.8, 0.9), y_true, 1 - y_true).astype(np.int8)
    return y_true, y_pred, sf


def policy() -> Policy:
    return Policy.from_mapping({"fairness": {"protected_attributes": list(ATTRS), "intersections": INTERSECTIONS}})


def time_ours(
    y_true: np.ndarray, y_pred: np.ndarray, sf: pd.DataFrame, n_boot: int, repeats: int
) -> tuple[float, float, int]:
    """Median wall and CPU seconds of the audit (CPU time is what counts on a shared machine: it is single-threaded)."""
    pol = policy()
    walls, cpus, groups = [], [], 0
    for r in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        audit = audit_predictions(y_true, y_pred, sf, policy=pol, n_boot=n_boot, random_state=r)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
        groups = int((audit.by_group["attribute"] != "overall").sum())
    print(
        f"ours: audit_predictions, {len(y_true):,} rows, {len(pol.fairness.intersections) + len(ATTRS)} facets, "
        f"{groups} groups, n_boot={n_boot}: wall "
        + ", ".join(f"{t:.2f}" for t in walls)
        + " s; cpu "
        + ", ".join(f"{t:.2f}" for t in cpus)
        + " s"
    )
    return statistics.median(walls), statistics.median(cpus), groups


def time_floor(y_true: np.ndarray, y_pred: np.ndarray, sf: pd.DataFrame, repeats: int) -> float:
    """Median CPU seconds of counting the confusion cells of every group of every facet (no statistics)."""
    pol = policy()
    cpus = []
    for _ in range(repeats):
        cpu = time.process_time()
        confusion_counts(y_true, y_pred, sf, policy=pol)
        cpus.append(time.process_time() - cpu)
    return statistics.median(cpus)


def _fairlearn_metrics() -> dict[str, object]:
    from fairlearn.metrics import (
        count,
        false_negative_rate,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score, precision_score

    def precision(t: np.ndarray, p: np.ndarray) -> float:
        return float(precision_score(t, p, zero_division=np.nan))

    return {
        "count": count,
        "selection_rate": selection_rate,
        "true_positive_rate": true_positive_rate,
        "false_positive_rate": false_positive_rate,
        "false_negative_rate": false_negative_rate,
        "precision": precision,
        "accuracy": accuracy_score,
    }


def time_fairlearn(y_true: np.ndarray, y_pred: np.ndarray, sf: pd.DataFrame, k: int) -> tuple[float, float]:
    """Return (seconds without bootstrap, seconds per resample) for MetricFrame on the 'gender' facet."""
    from fairlearn.metrics import MetricFrame

    metrics = _fairlearn_metrics()
    start, cpu = time.perf_counter(), time.process_time()
    MetricFrame(metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=sf[["gender"]])
    point, point_cpu = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    MetricFrame(
        metrics=metrics,
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=sf[["gender"]],
        n_boot=k,
        ci_quantiles=[0.025, 0.975],
        random_state=0,
    )
    with_boot, boot_cpu = time.perf_counter() - start, time.process_time() - cpu
    per_resample = max(boot_cpu - point_cpu, 0.0) / k
    print(
        f"fairlearn (measured): MetricFrame, 7 metrics, facet 'gender', {len(y_true):,} rows: without bootstrap "
        f"wall {point:.1f} s / cpu {point_cpu:.1f} s; with n_boot={k} wall {with_boot:.1f} s / cpu {boot_cpu:.1f} s "
        f"-> {per_resample:.1f} cpu s per resample"
    )
    return point_cpu, per_resample


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fairlearn-boot", type=int, default=1, help="resamples for the measured fairlearn run")
    ap.add_argument("--skip-fairlearn", action="store_true")
    args = ap.parse_args(argv)
    y_true, y_pred, sf = make_data(args.rows)
    audit_predictions(y_true[:10_000], y_pred[:10_000], sf.iloc[:10_000], policy=policy(), n_boot=50)  # warm up
    wall, ours, groups = time_ours(y_true, y_pred, sf, args.n_boot, args.repeats)
    ok = ours <= TARGET_SECONDS
    print(
        f"ours: median cpu {ours:.2f} s, wall {wall:.2f} s (target <= {TARGET_SECONDS:.1f} s of one core: "
        f"{'met' if ok else 'MISSED'}), {groups} groups"
    )
    floor = time_floor(y_true, y_pred, sf, args.repeats)
    print(
        f"floor (counting the confusion cells of every group once): median cpu {floor:.2f} s; the audit is "
        f"{ours / floor:.1f}x the floor, {ours - floor:.2f} s for intervals, simultaneous gaps and power"
    )
    if args.skip_fairlearn:
        return 0 if ok else 1
    point, per_resample = time_fairlearn(y_true, y_pred, sf, args.fairlearn_boot)
    n_facets = len(ATTRS) + len(INTERSECTIONS)
    extrapolated = (point + args.n_boot * per_resample) * n_facets
    print(
        f"fairlearn (extrapolated, not measured): {n_facets} facets x ({point:.1f} s + {args.n_boot} x "
        f"{per_resample:.1f} s) = {extrapolated:,.0f} cpu s"
    )
    print(
        f"ratio fairlearn / ours (cpu): {extrapolated / ours:,.0f}x extrapolated; measured, fairlearn's one facet "
        f"without bootstrap against our whole audit: {point / ours:,.1f}x"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
