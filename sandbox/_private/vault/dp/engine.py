"""The DP engine of the vault: costs and answers aggregate queries, fits DP models.

:class:`DPEngine` is the vault's only door from protected rows to numbers that may leave. It never touches the
ledger: the service asks :meth:`DPEngine.cost` (no data touched), charges the ledger, then calls
:meth:`DPEngine.answer` or :meth:`DPEngine.fit` and stores the result. Each result has a ``public`` part (sent to
the client) and a ``private`` part (kept in the vault for the release gate's disclosure checks; never sent).

Privacy unit and sensitivities (DESIGN invariants 4 and 5): every sensitivity is for adding or removing one
household. A household-level table (``schema.max_rows_per_unit == 1``) has ``k = 1``; a person- or event-level
table keeps the first ``k = min(policy.contribution.max_rows_per_unit, schema.max_rows_per_unit)`` rows of each
household (source order) before aggregating. A household's ``k`` rows may fall in different cells, so every noisy
vector is calibrated to its L1 sensitivity over all cells (``k`` times one row's effect); for a household table this
equals per-cell parallel composition. Per aggregate, with public bounds ``[lo, hi]``, ``M = max(|lo|, |hi|)``,
``mid = (lo + hi) / 2`` and ``r = (hi - lo) / 2``:

- count, histogram: discrete Laplace on the integers, sensitivity ``k`` (one row is in exactly one cell or bin);
- sum: discrete Laplace on a power-of-two grid, sensitivity ``k * M`` (not centred: a centred sum would need a
  noisy count and half the budget);
- mean: ``epsilon/2`` on the count (integers, ``k``) and ``epsilon/2`` on the sum of ``x - mid`` (grid,
  ``k * r``); mean ``= mid + sum / max(count, 1)``, clipped to ``[lo, hi]``;
- variance (population, ``ddof=0``): ``epsilon/3`` each on the count (``k``), the sum of ``y = x - mid``
  (``k * r``) and the sum of ``y**2 - r**2/2`` (``k * r**2 / 2``); clipped to ``[0, r**2]``;
- quantile: the exponential mechanism per cell with ``epsilon / k`` (a household moves the utility of the cells it
  touches by its row count there, at most ``k`` in total, so the losses add up to at most ``epsilon``).

``delta > 0`` replaces the discrete Laplace by the discrete Gaussian with the same figures as L2 bounds (split
``delta`` like ``epsilon``). The noise, its grid and its accounting are in :mod:`.mechanisms`; each cell's
``ci95_low``/``ci95_high`` is an interval that holds the exact value with probability >= 95% by construction
(:mod:`.intervals`), and ``ci95`` the symmetric half-width around ``value`` that contains it. Rows whose value or
group key is missing are dropped; ``where`` filters apply after the household bound.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from sandbox._private.shared.errors import QueryError
from sandbox._private.shared.modelspec import FitQuery, ModelSpec
from sandbox._private.shared.policy import Policy
from sandbox._private.shared.query import AggregateQuery, check_epsilon
from sandbox._private.shared.schema import TableSchema

from .aggregates import Prepared, cell_keys, prepare, unit_stats
from .answers import Answer, Checked, Cost, FittedAnswer
from .fitting import fit_model, model_rows, predict_rows
from .intervals import Interval, mean_interval, noise_interval, variance_interval
from .mechanisms import Noise, dp_quantile, noisy_vector, quantile_grid_exponent
from .tabledata import TableData

__all__ = ["Cost", "Checked", "Answer", "FittedAnswer", "DPEngine"]


class DPEngine:
    """Answers queries and fits models under ``policy``.

    Parameters
    ----------
    policy : Policy
        Supplies the per-query epsilon/delta caps, the contribution bound, the group limit and forbidden features.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    # -- checks and cost ---------------------------------------------------------------------------------------
    def rows_per_unit(self, schema: TableSchema) -> int:
        """Rows kept per household: 1 for a household table, else the policy's bound capped by the schema's."""
        if schema.max_rows_per_unit == 1:
            return 1
        return min(self.policy.contribution.max_rows_per_unit, schema.max_rows_per_unit)

    def _check_unit(self, schema: TableSchema) -> None:
        if self.policy.privacy_unit == "household" and schema.privacy_unit != "household":
            raise QueryError(
                f"The policy protects households, but table {schema.name!r} declares privacy unit "
                f"{schema.privacy_unit!r}; register it with privacy_unit 'household' and unit_column household_id."
            )

    def check(self, item: AggregateQuery | FitQuery, schema: TableSchema) -> Checked:
        """Validate ``item`` once against ``schema`` and the policy, for :meth:`answer` or :meth:`fit`."""
        return Checked(item, self.cost(item, schema), schema)

    def _unchecked(self, item: AggregateQuery | FitQuery | Checked, schema: TableSchema) -> Checked:
        if isinstance(item, Checked) and item.schema == schema:
            return item
        return self.check(item.item if isinstance(item, Checked) else item, schema)

    def cost(
        self, item: AggregateQuery | FitQuery | ModelSpec, schema: TableSchema, *, epsilon: float | None = None
    ) -> Cost:
        """Validate ``item`` against ``schema`` and the policy and return its privacy cost; no data is touched.

        Parameters
        ----------
        item : AggregateQuery, FitQuery or ModelSpec
            A ModelSpec needs ``epsilon``.
        schema : TableSchema
            Public schema of the queried table.

        Raises
        ------
        QueryError
            If the query or spec is not allowed (the message names the fix).
        """
        self._check_unit(schema)
        if isinstance(item, AggregateQuery):
            item.check(schema, self.policy)
            return Cost(item.epsilon, item.delta)
        if isinstance(item, FitQuery):
            return self.cost(item.spec, schema, epsilon=item.epsilon)
        if isinstance(item, ModelSpec):
            if epsilon is None:
                raise QueryError("Fitting a model needs epsilon; pass epsilon=... with the spec.")
            eps = check_epsilon(epsilon, cap=self.policy.budget.epsilon_per_query_max)
            item.check(schema, self.policy)
            return Cost(eps, 0.0)
        raise QueryError(f"Cannot cost a {type(item).__name__}; pass an AggregateQuery, FitQuery or ModelSpec.")

    # -- aggregates ---------------------------------------------------------------------------------------------
    def answer(self, query: AggregateQuery | Checked, table: TableData) -> Answer:
        """Compute the DP answer to ``query`` on ``table`` (see the module docstring for the mechanisms).

        A :class:`Checked` query (from :meth:`check` on this table's schema) is not validated again.
        """
        checked = self._unchecked(query, table.schema)
        if not isinstance(checked.item, AggregateQuery):
            raise QueryError(f"answer() takes an aggregate query, not a {type(checked.item).__name__}; use fit().")
        query = checked.item
        k = self.rows_per_unit(table.schema)
        prep = prepare(query, table, k)
        values, scales, noises, sens, exact, ci = _ANSWERERS[query.kind](self, query, table, prep, k)
        keys = cell_keys(query, table)
        public = self._public(query, table, keys, values, scales, noises, sens, k, ci)
        return Answer(public=public, private=self._private(query, keys, prep, k, exact))

    def _public(
        self,
        query: AggregateQuery,
        table: TableData,
        keys: list[tuple[Any, ...]],
        values: np.ndarray,
        scales: np.ndarray | None,
        noises: list[Noise],
        sens: dict[str, float],
        k: int,
        ci: Interval | None,
    ) -> dict[str, Any]:
        names = [*query.by, *(("bin_lower", "bin_upper") if query.kind == "histogram" else ())]
        integer = query.kind in ("count", "histogram")
        half = None if ci is None else ci.half_width(values)
        rows = []
        for i, key in enumerate(keys):
            row: dict[str, Any] = dict(zip(names, key, strict=True))
            row["value"] = int(values[i]) if integer else float(values[i])
            row["noise_scale"] = None if scales is None else float(scales[i])
            row["ci95"] = None if half is None else float(half[i])
            row["ci95_low"] = None if ci is None else float(ci.low[i])
            row["ci95_high"] = None if ci is None else float(ci.high[i])
            rows.append(row)
        return {
            "format": "sandbox.answer/1",
            "query": query.to_dict(),
            "dataset": query.dataset,
            "kind": query.kind,
            "columns": [*names, "value", "noise_scale", "ci95", "ci95_low", "ci95_high"],
            "rows": rows,
            "n_groups": len(keys),
            "epsilon": query.epsilon,
            "delta": query.delta,
            "mechanisms": [n.to_dict() for n in noises],
            "sensitivity": sens,
            "privacy_unit": "household",
            "rows_per_unit": k,
            "error_note": _ERROR_NOTES[query.kind],
        }

    def _private(
        self, query: AggregateQuery, keys: list[tuple[Any, ...]], prep: Prepared, k: int, exact: dict[str, np.ndarray]
    ) -> dict[str, Any]:
        magnitude = query.kind in ("sum", "mean", "variance")
        p = prep if magnitude else replace(prep, values=None)
        stats = unit_stats(p, k, rows=exact.get("rows"), total=exact.get("total") if magnitude else None)
        cells = []
        for i, key in enumerate(keys):
            cell: dict[str, Any] = {"key": list(key), "rows": int(stats.rows[i]), "units": int(stats.units[i])}
            if stats.total is not None:
                assert stats.abs_total is not None and stats.top1 is not None and stats.top2 is not None
                cell.update(
                    total=float(stats.total[i]),
                    abs_total=float(stats.abs_total[i]),
                    top1=float(stats.top1[i]),
                    top2=float(stats.top2[i]),
                )
            cells.append(cell)
        return {
            "format": "sandbox.answer-private/1",
            "cells": cells,
            "rows_in": prep.rows_in,
            "rows_truncated": prep.rows_truncated,
            "rows_used": prep.rows_used,
            "rows_per_unit": k,
        }

    def _count(self, q: AggregateQuery, t: TableData, p: Prepared, k: int) -> _Result:
        true = p.bincount().astype(np.float64)
        noisy, noise = noisy_vector(true, epsilon=q.epsilon, delta=q.delta, sensitivity=k, integer=True)
        ci = noise_interval(noisy, noise, count=True)
        scale = np.full(p.n_cells, noise.scale)
        return noisy, scale, [noise], {"count": float(k)}, {"rows": true.astype(np.int64)}, ci

    def _sum(self, q: AggregateQuery, t: TableData, p: Prepared, k: int) -> _Result:
        assert q.column is not None and p.values is not None
        lo, hi = t.schema.column(q.column).bounds
        sens = k * max(abs(lo), abs(hi))
        true = p.bincount(p.values)
        noisy, noise = noisy_vector(true, epsilon=q.epsilon, delta=q.delta, sensitivity=sens, integer=False)
        ci = noise_interval(noisy, noise)
        return noisy, np.full(p.n_cells, noise.scale), [noise], {"sum": sens}, {"total": true}, ci

    def _mean(self, q: AggregateQuery, t: TableData, p: Prepared, k: int) -> _Result:
        assert q.column is not None and p.values is not None
        lo, hi = t.schema.column(q.column).bounds
        mid, r = (lo + hi) / 2, (hi - lo) / 2
        eps, dlt = q.epsilon / 2, q.delta / 2
        cnt = p.bincount().astype(np.float64)
        s = p.bincount(p.values - mid)
        n_cnt, c_noise = noisy_vector(cnt, epsilon=eps, delta=dlt, sensitivity=k, integer=True)
        n_sum, s_noise = noisy_vector(s, epsilon=eps, delta=dlt, sensitivity=k * r, integer=False)
        n = np.maximum(n_cnt, 1.0)
        mean = np.clip(mid + n_sum / n, lo, hi)
        sd = np.sqrt(s_noise.std**2 + (mean - mid) ** 2 * c_noise.std**2) / n
        ci = mean_interval(n_cnt, n_sum, c_noise, s_noise, (lo, hi))
        exact = {"rows": cnt.astype(np.int64), "total": s + mid * cnt}
        return mean, sd, [c_noise, s_noise], {"count": float(k), "sum_centred": k * r}, exact, ci

    def _variance(self, q: AggregateQuery, t: TableData, p: Prepared, k: int) -> _Result:
        assert q.column is not None and p.values is not None
        lo, hi = t.schema.column(q.column).bounds
        mid, r = (lo + hi) / 2, (hi - lo) / 2
        eps, dlt = q.epsilon / 3, q.delta / 3
        y = p.values - mid
        cnt = p.bincount().astype(np.float64)
        s1 = p.bincount(y)
        s2 = p.bincount(y * y - r * r / 2)
        n_cnt, c_n = noisy_vector(cnt, epsilon=eps, delta=dlt, sensitivity=k, integer=True)
        n_s1, s1_n = noisy_vector(s1, epsilon=eps, delta=dlt, sensitivity=k * r, integer=False)
        n_s2, s2_n = noisy_vector(s2, epsilon=eps, delta=dlt, sensitivity=k * r * r / 2, integer=False)
        n = np.maximum(n_cnt, 1.0)
        m1, m2 = n_s1 / n, r * r / 2 + n_s2 / n
        var = np.clip(m2 - m1 * m1, 0.0, r * r)
        d_n = (2 * m1 * m1 - (m2 - r * r / 2)) * c_n.std
        sd = np.sqrt(s2_n.std**2 + (2 * m1 * s1_n.std) ** 2 + d_n**2) / n
        sens = {"count": float(k), "sum_centred": k * r, "sum_squares_centred": k * r * r / 2}
        ci = variance_interval(n_cnt, n_s1, n_s2, (c_n, s1_n, s2_n), r)
        exact = {"rows": cnt.astype(np.int64), "total": s1 + mid * cnt}
        return var, sd, [c_n, s1_n, s2_n], sens, exact, ci

    def _quantile(self, q: AggregateQuery, t: TableData, p: Prepared, k: int) -> _Result:
        assert q.column is not None and p.values is not None and q.q is not None
        bounds = t.schema.column(q.column).bounds
        order = np.argsort(p.cell, kind="stable")
        ends = np.cumsum(p.bincount())
        sorted_values = p.values[order]
        out = np.empty(p.n_cells)
        start = 0
        for i, end in enumerate(ends):
            out[i] = dp_quantile(sorted_values[start:end], q.q, epsilon=q.epsilon / k, bounds=bounds)
            start = int(end)
        e = quantile_grid_exponent(bounds)
        grid = float(np.ldexp(1.0, e))
        noise = Noise(f"Exponential(grid=2^{e})", q.epsilon, 0.0, float(k), float("nan"), float("nan"), grid)
        return out, None, [noise], {"rank": float(k)}, {}, None

    def _histogram(self, q: AggregateQuery, t: TableData, p: Prepared, k: int) -> _Result:
        return self._count(q, t, p, k)

    # -- models -------------------------------------------------------------------------------------------------
    def fit(self, spec: ModelSpec | Checked, table: TableData, epsilon: float | None = None) -> FittedAnswer:
        """Fit ``spec`` on ``table`` with ``epsilon``-DP (diffprivlib.models; bounds from the schema only).

        ``spec`` may be a :class:`Checked` fit query (from :meth:`check`); it then carries its epsilon and is not
        validated again.

        Raises
        ------
        QueryError
            If the spec is not allowed on this table or epsilon is invalid.
        """
        if isinstance(spec, Checked):
            checked = self._unchecked(spec, table.schema)
            if not isinstance(checked.item, FitQuery):
                raise QueryError("fit() takes a model spec or a checked fit query; use answer() for aggregates.")
            spec, eps = checked.item.spec, checked.cost.epsilon
        else:
            eps = self.cost(spec, table.schema, epsilon=epsilon).epsilon
        model, public, n_used = fit_model(spec, table, eps)
        private = {"n_rows": n_used, "n_rows_dropped_missing": table.n_rows - n_used}
        return FittedAnswer(public=public, private=private, spec=spec, model=model)

    def model_rows(self, fitted: FittedAnswer, table: TableData) -> np.ndarray:
        """Boolean mask of the table rows :meth:`predict_in_vault` covers (target and features present)."""
        return model_rows(_spec_of(fitted), table)

    def predict_in_vault(
        self, fitted: FittedAnswer, table: TableData
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(y_true, y_pred, y_score)`` on the rows of :meth:`model_rows`, for the in-vault fairness audit.

        ``y_score`` is the probability of the second class for a binary classifier, else ``None``. Predictions are
        rebuilt from the public parameters when the estimator object is gone (e.g. after a vault restart).
        """
        return predict_rows(fitted.public, _spec_of(fitted), table, fitted.model)


# noisy values, noise scale per cell, noises, sensitivities, exact per-cell facts reused by the private part,
# and the 95% interval per cell (None for the quantile)
_Result = tuple[np.ndarray, np.ndarray | None, list[Noise], dict[str, float], dict[str, np.ndarray], Interval | None]

_ANSWERERS = {
    "count": DPEngine._count,
    "sum": DPEngine._sum,
    "mean": DPEngine._mean,
    "variance": DPEngine._variance,
    "quantile": DPEngine._quantile,
    "histogram": DPEngine._histogram,
}

_CI_NOTE = (
    "[ci95_low, ci95_high] holds the exact value with probability >= 95% (exact noise quantiles{}); "
    "ci95 is the half-width around value that contains that interval (symmetric, for older clients)."
)
_COUNT_NOTE = (
    "noise_scale: discrete Laplace scale (sensitivity/epsilon; Gaussian sigma if delta > 0). " + _CI_NOTE.format("")
)
_ERROR_NOTES = {
    "count": _COUNT_NOTE,
    "histogram": _COUNT_NOTE,
    "sum": "noise_scale: discrete Laplace scale of the released sum (Gaussian sigma if delta > 0). "
    + _CI_NOTE.format(" plus the grid rounding"),
    "mean": "noise_scale: approximate sd of the noise in the ratio (delta method). "
    + _CI_NOTE.format(" of count and sum, union bound, interval arithmetic"),
    "variance": "noise_scale: approximate sd of the noise (delta method). "
    + _CI_NOTE.format(" of the three noisy sums, union bound, interval arithmetic"),
    "quantile": "Exponential mechanism on a public grid: no closed-form noise scale or interval; the error depends "
    "on the spread of the data.",
}


def _spec_of(fitted: FittedAnswer) -> ModelSpec:
    if fitted.spec is not None:
        return fitted.spec
    return ModelSpec.from_dict(fitted.public["spec"])
