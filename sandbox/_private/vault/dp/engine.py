"""The DP engine of the vault: costs and answers aggregate queries, fits DP models.

:class:`DPEngine` is the vault's only door from protected rows to numbers that may leave. It never touches the
ledger: the service asks :meth:`DPEngine.cost` (no data touched), charges the ledger, then calls
:meth:`DPEngine.answer` or :meth:`DPEngine.fit` and stores the result. Each result has a ``public`` part (sent to
the client) and a ``private`` part (kept in the vault for the release gate's disclosure checks; never sent). The
vault answers with ``disclosure=False``: one scan gives what the answer needs, and :meth:`DPEngine.disclosure`
adds the households and largest contributions per cell when the answer is put in a release request.

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

Linked queries (joins on the privacy unit's key, derived columns): a household's rows in the join are the
combinations of its rows in each joined table, at most the product of the tables' ``max_rows_per_unit``, and the
engine keeps ``k = min(policy bound, that product)`` of them (the first in file order), so every sensitivity above
holds with this ``k`` whether the added household appears on one side of the join or on both. A per-household count
or sum is one value per household, bounded by the public bounds of its derived column (the schema's row limit of
its table times the column's bounds, or the analyst's narrower clip), and adds no rows. The exact part (filter,
join, bound, group, per-cell disclosure statistics) is SQL run by the tables' engine (:mod:`.aggregates`); the
noise is added here, in the vault.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sandbox._private.shared.errors import QueryError
from sandbox._private.shared.holdout import held_out
from sandbox._private.shared.modelspec import FitQuery, ModelSpec
from sandbox._private.shared.plan import RelationSchema
from sandbox._private.shared.policy import Policy
from sandbox._private.shared.query import AggregateQuery, Schemas, as_schemas, check_epsilon
from sandbox._private.shared.schema import TableSchema

from .aggregates import Catalog, CellStats, RecentCache, answer_cells, cell_keys, exact_cells
from .answers import Answer, Checked, Cost, FittedAnswer
from .fitting import fit_model, model_rows, predict_rows
from .intervals import Interval, mean_interval, noise_interval, variance_interval
from .mechanisms import Noise, dp_quantile, noisy_vector, quantile_grid_exponent
from .modelframe import model_frame
from .quality import measure_quality
from .tabledata import TableData

__all__ = ["Cost", "Checked", "Answer", "FittedAnswer", "DPEngine", "Catalog"]


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

    def check(self, item: AggregateQuery | FitQuery, schemas: Schemas | Catalog) -> Checked:
        """Validate ``item`` once against the schemas (one table's, or those a linked query reads) and the policy."""
        return Checked(item, self.cost(item, schemas), _schemas(schemas, item.dataset))

    def _unchecked(self, item: AggregateQuery | FitQuery | Checked, schemas: Schemas) -> Checked:
        if isinstance(item, Checked) and _same(item.schema, schemas, item.item.dataset):
            return item
        return self.check(item.item if isinstance(item, Checked) else item, schemas)

    def cost(
        self,
        item: AggregateQuery | FitQuery | ModelSpec,
        schema: Schemas | Catalog,
        *,
        epsilon: float | None = None,
    ) -> Cost:
        """Validate ``item`` against the public schemas and the policy and return its privacy cost; no data is touched.

        Parameters
        ----------
        item : AggregateQuery, FitQuery or ModelSpec
            A ModelSpec needs ``epsilon``.
        schema : TableSchema, mapping of name to TableSchema, or Catalog
            Public schema of the queried table, or the schemas of every table a linked query reads.

        Raises
        ------
        QueryError
            If the query or spec is not allowed (the message names the fix). A join with a table of another
            population is refused here when a Catalog is given (the service always gives one).
        """
        if isinstance(schema, Catalog):
            schema.check_population(item.relation.tables() if not isinstance(item, ModelSpec) else ())
        if isinstance(item, AggregateQuery):
            sch = _schemas(schema, item.dataset)
            for name in item.tables():
                if name in as_schemas(sch, item.dataset):
                    self._check_unit(as_schemas(sch, item.dataset)[name])
            item.check(sch, self.policy)
            return Cost(item.epsilon, item.delta)
        if isinstance(item, FitQuery):
            sch = _schemas(schema, item.dataset)
            rs = item.resolve(sch)
            self._check_unit(rs.schema)
            return self._cost_spec(item.spec, rs.schema, item.epsilon)
        if isinstance(item, ModelSpec):
            if epsilon is None:
                raise QueryError("Fitting a model needs epsilon; pass epsilon=... with the spec.")
            single = _schemas(schema, "")
            table = single if isinstance(single, TableSchema) else next(iter(single.values()))
            self._check_unit(table)
            return self._cost_spec(item, table, epsilon)
        raise QueryError(f"Cannot cost a {type(item).__name__}; pass an AggregateQuery, FitQuery or ModelSpec.")

    def _cost_spec(self, spec: ModelSpec, schema: TableSchema, epsilon: float) -> Cost:
        eps = check_epsilon(epsilon, cap=self.policy.budget.epsilon_per_query_max)
        spec.check(schema, self.policy)
        return Cost(eps, 0.0)

    # -- aggregates ---------------------------------------------------------------------------------------------
    def answer(self, query: AggregateQuery | Checked, table: TableData | Catalog, *, disclosure: bool = True) -> Answer:
        """Compute the DP answer to ``query`` on ``table`` (see the module docstring for the mechanisms).

        ``table`` is the queried table, or the :class:`Catalog` of its population for a linked query. A
        :class:`Checked` query (from :meth:`check` on the same schemas) is not validated again.

        With ``disclosure`` (the default) ``Answer.private`` holds every cell's households and, for sums, means
        and variances, the largest household contributions, which the release gate checks. Without it only
        what the answer needs is computed (one scan: rows and sums per cell) and ``private["disclosure"]`` is
        ``"deferred"``: :meth:`disclosure` computes the rest on the same rows when the answer is put in a
        release request (the vault does this; most answers are never released). The public answer is the same
        either way.
        """
        item = query.item if isinstance(query, Checked) else query
        catalog = table if isinstance(table, Catalog) else Catalog.of(table, item.dataset)
        checked = self._unchecked(query, _schemas(catalog, item.dataset))
        if not isinstance(checked.item, AggregateQuery):
            raise QueryError(f"answer() takes an aggregate query, not a {type(checked.item).__name__}; use fit().")
        query = checked.item
        rs = _RESOLVED.resolve(query, checked.schema)
        k = self.rows_per_unit(rs.schema)
        stats = exact_cells(query, rs, catalog, k) if disclosure else answer_cells(query, rs, catalog, k)
        values, scales, noises, sens, _, ci = _ANSWERERS[query.kind](self, query, rs.schema, stats, k)
        keys = cell_keys(query, rs.schema)
        public = self._public(query, keys, values, scales, noises, sens, k, ci)
        return Answer(public=public, private=self._private(query, keys, stats, k))

    def _public(
        self,
        query: AggregateQuery,
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
        n = len(keys)
        none: list[None] = [None] * n
        # as Python floats once per column (``tolist`` gives each float64 as the same float ``float()`` would)
        value = [int(v) if integer else float(v) for v in np.asarray(values).tolist()]
        scale = none if scales is None else np.asarray(scales, dtype=np.float64).tolist()
        half = none if ci is None else np.asarray(ci.half_width(values), dtype=np.float64).tolist()
        low = none if ci is None else np.asarray(ci.low, dtype=np.float64).tolist()
        high = none if ci is None else np.asarray(ci.high, dtype=np.float64).tolist()
        rows = []
        for i, key in enumerate(keys):
            row: dict[str, Any] = dict(zip(names, key, strict=True))
            row["value"] = value[i]
            row["noise_scale"] = scale[i]
            row["ci95"] = half[i]
            row["ci95_low"] = low[i]
            row["ci95_high"] = high[i]
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

    def disclosure(self, query: AggregateQuery, catalog: Catalog, k: int) -> dict[str, Any]:
        """Return the full ``Answer.private`` of an answer given earlier with ``disclosure=False``.

        ``k`` is the answer's ``rows_per_unit`` (from its private part: the policy may have changed since). The
        exact statistics are recomputed on the same rows (the vault checks each registered file's sha256 when it
        opens it), so they are those the answer would have carried.
        """
        rs = query.resolve(catalog.schemas())
        return self._private(query, cell_keys(query, rs.schema), exact_cells(query, rs, catalog, k), k)

    def _private(self, query: AggregateQuery, keys: list[tuple[Any, ...]], stats: CellStats, k: int) -> dict[str, Any]:
        if stats.units is None:  # the answer's statistics only: the disclosure ones follow at a release request
            return {
                "format": "sandbox.answer-private/1",
                "disclosure": "deferred",
                "cells": [{"key": list(key), "rows": int(stats.rows[i])} for i, key in enumerate(keys)],
                "rows_in": stats.rows_in,
                "rows_truncated": stats.rows_truncated,
                "rows_used": stats.rows_used,
                "rows_per_unit": k,
            }
        magnitude = query.kind in ("sum", "mean", "variance")
        cells = []
        for i, key in enumerate(keys):
            cell: dict[str, Any] = {"key": list(key), "rows": int(stats.rows[i]), "units": int(stats.units[i])}
            if magnitude:
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
            "rows_in": stats.rows_in,
            "rows_truncated": stats.rows_truncated,
            "rows_used": stats.rows_used,
            "rows_per_unit": k,
        }

    def _count(self, q: AggregateQuery, t: TableSchema, st: CellStats, k: int) -> _Result:
        true = st.rows.astype(np.float64)
        noisy, noise = noisy_vector(true, epsilon=q.epsilon, delta=q.delta, sensitivity=k, integer=True)
        ci = noise_interval(noisy, noise, count=True)
        return noisy, np.full(true.size, noise.scale), [noise], {"count": float(k)}, {}, ci

    def _sum(self, q: AggregateQuery, t: TableSchema, st: CellStats, k: int) -> _Result:
        assert q.column is not None
        lo, hi = t.column(q.column).bounds
        sens = k * max(abs(lo), abs(hi))
        noisy, noise = noisy_vector(st.total, epsilon=q.epsilon, delta=q.delta, sensitivity=sens, integer=False)
        ci = noise_interval(noisy, noise)
        return noisy, np.full(st.total.size, noise.scale), [noise], {"sum": sens}, {}, ci

    def _mean(self, q: AggregateQuery, t: TableSchema, st: CellStats, k: int) -> _Result:
        assert q.column is not None
        lo, hi = t.column(q.column).bounds
        mid, r = (lo + hi) / 2, (hi - lo) / 2
        eps, dlt = q.epsilon / 2, q.delta / 2
        cnt = st.rows.astype(np.float64)
        n_cnt, c_noise = noisy_vector(cnt, epsilon=eps, delta=dlt, sensitivity=k, integer=True)
        n_sum, s_noise = noisy_vector(st.centred, epsilon=eps, delta=dlt, sensitivity=k * r, integer=False)
        n = np.maximum(n_cnt, 1.0)
        mean = np.clip(mid + n_sum / n, lo, hi)
        sd = np.sqrt(s_noise.std**2 + (mean - mid) ** 2 * c_noise.std**2) / n
        ci = mean_interval(n_cnt, n_sum, c_noise, s_noise, (lo, hi))
        return mean, sd, [c_noise, s_noise], {"count": float(k), "sum_centred": k * r}, {}, ci

    def _variance(self, q: AggregateQuery, t: TableSchema, st: CellStats, k: int) -> _Result:
        assert q.column is not None
        lo, hi = t.column(q.column).bounds
        r = (hi - lo) / 2
        eps, dlt = q.epsilon / 3, q.delta / 3
        cnt = st.rows.astype(np.float64)
        n_cnt, c_n = noisy_vector(cnt, epsilon=eps, delta=dlt, sensitivity=k, integer=True)
        n_s1, s1_n = noisy_vector(st.centred, epsilon=eps, delta=dlt, sensitivity=k * r, integer=False)
        n_s2, s2_n = noisy_vector(st.squares, epsilon=eps, delta=dlt, sensitivity=k * r * r / 2, integer=False)
        n = np.maximum(n_cnt, 1.0)
        m1, m2 = n_s1 / n, r * r / 2 + n_s2 / n
        var = np.clip(m2 - m1 * m1, 0.0, r * r)
        d_n = (2 * m1 * m1 - (m2 - r * r / 2)) * c_n.std
        sd = np.sqrt(s2_n.std**2 + (2 * m1 * s1_n.std) ** 2 + d_n**2) / n
        sens = {"count": float(k), "sum_centred": k * r, "sum_squares_centred": k * r * r / 2}
        ci = variance_interval(n_cnt, n_s1, n_s2, (c_n, s1_n, s2_n), r)
        return var, sd, [c_n, s1_n, s2_n], sens, {}, ci

    def _quantile(self, q: AggregateQuery, t: TableSchema, st: CellStats, k: int) -> _Result:
        assert q.column is not None and q.q is not None and st.values is not None
        bounds = t.column(q.column).bounds
        out = np.array([dp_quantile(v, q.q, epsilon=q.epsilon / k, bounds=bounds) for v in st.values])
        e = quantile_grid_exponent(bounds)
        grid = float(np.ldexp(1.0, e))
        noise = Noise(f"Exponential(grid=2^{e})", q.epsilon, 0.0, float(k), float("nan"), float("nan"), grid)
        return out, None, [noise], {"rank": float(k)}, {}, None

    def _histogram(self, q: AggregateQuery, t: TableSchema, st: CellStats, k: int) -> _Result:
        return self._count(q, t, st, k)

    # -- models -------------------------------------------------------------------------------------------------
    def fit(self, spec: ModelSpec | Checked, table: TableData | Catalog, epsilon: float | None = None) -> FittedAnswer:
        """Fit ``spec`` on ``table`` with ``epsilon``-DP (diffprivlib.models; bounds from the schema only).

        ``policy.models.quality_epsilon_share`` of ``epsilon`` measures the released model on the households the
        public hold-out rule keeps out of the fit (:mod:`.quality`); the rest fits it. The answer's ``quality`` holds
        the figures (``None`` when the share is 0, and the fit then uses every household); ``epsilon`` is the whole
        charge, ``epsilon_fit`` the model's part.

        ``spec`` may be a :class:`Checked` fit query (from :meth:`check`); it then carries its epsilon and its
        relation (joins and derived columns, read from ``table``, a :class:`Catalog`) and is not validated again.

        Raises
        ------
        QueryError
            If the spec is not allowed on this table or epsilon is invalid.
        """
        catalog = table if isinstance(table, Catalog) else None
        if isinstance(spec, Checked):
            fq = spec.item
            if not isinstance(fq, FitQuery):
                raise QueryError("fit() takes a model spec or a checked fit query; use answer() for aggregates.")
            catalog = catalog or Catalog.of(table, fq.dataset)  # type: ignore[arg-type]
            checked = self._unchecked(spec, _schemas(catalog, fq.dataset))
            assert isinstance(checked.item, FitQuery)
            fq = checked.item
            spec, eps, relation = fq.spec, checked.cost.epsilon, fq.relation
        else:
            base = table if isinstance(table, TableData) else next(iter(table.tables.values()))
            eps = self.cost(spec, base.schema, epsilon=epsilon).epsilon
            catalog = catalog or Catalog.of(base)
            relation = FitQuery(base.schema.name, spec, eps).relation
        frame = self.model_table(relation, catalog, [spec.target, *spec.features])
        eps_quality = eps * self.policy.models.quality_epsilon_share
        heldout = held_out(frame.units()) if eps_quality > 0 else None
        model, public, n_used = fit_model(spec, frame, eps - eps_quality, exclude=heldout)
        public["epsilon"] = eps  # the charge: the fit's share and the quality figures' share
        public["epsilon_fit"] = eps - eps_quality
        public["quality"] = None if heldout is None else measure_quality(public, spec, frame, heldout, eps_quality)
        if not relation.is_plain:
            public["relation"] = FitQuery(relation.base, spec, eps, relation.joins, relation.derived).relation_dict()
        n_heldout = 0 if heldout is None else int((model_rows(spec, frame) & heldout).sum())
        private = {
            "n_rows": n_used,
            "n_rows_heldout": n_heldout,
            "n_rows_dropped_missing": frame.n_rows - n_used - n_heldout,
        }
        return FittedAnswer(public=public, private=private, spec=spec, model=model)

    def model_table(self, relation: Any, catalog: Catalog, columns: list[str]) -> TableData:
        """Return the rows of ``relation`` with ``columns`` in memory (the base table itself when there is no join)."""
        return model_frame(relation, catalog, columns)

    def model_rows(self, fitted: FittedAnswer, table: TableData) -> np.ndarray:
        """Boolean mask of the table rows :meth:`predict_in_vault` covers (target and features present).

        For a model fitted on a linked relation, ``table`` is its model table (:meth:`model_table`).
        """
        return model_rows(_spec_of(fitted), table)

    def predict_in_vault(
        self, fitted: FittedAnswer, table: TableData
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(y_true, y_pred, y_score)`` on the rows of :meth:`model_rows`, for the in-vault fairness audit.

        ``y_score`` is the probability of the second class for a binary classifier, else ``None``. Predictions are
        rebuilt from the public parameters when the estimator object is gone (e.g. after a vault restart).
        """
        return predict_rows(fitted.public, _spec_of(fitted), table, fitted.model)


# noisy values, noise scale per cell, noises, sensitivities, exact per-cell facts (unused: the private part comes
# from the cell statistics), and the 95% interval per cell (None for the quantile)
_Result = tuple[np.ndarray, np.ndarray | None, list[Noise], dict[str, float], dict[str, np.ndarray], Interval | None]
_ = RelationSchema  # the type the engine resolves every query to

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


class _Resolved:
    """Recent relation schemas (:meth:`AggregateQuery.resolve`), by relation and by the very schema objects.

    :func:`~sandbox._private.shared.plan.relation_schema` is a function of the relation and the public schemas
    alone, and a vault asks about the same tables (the same schema objects, kept by its open tables) again and
    again at new epsilons. An entry keeps the schema objects it was resolved from and is used only for those
    same objects (``is``), so an ``id`` is never taken for another object's.
    """

    def __init__(self, size: int = 256) -> None:
        self._items: RecentCache[tuple[tuple[TableSchema, ...], RelationSchema]] = RecentCache(size)

    def resolve(self, query: AggregateQuery, schemas: Schemas) -> RelationSchema:
        """Return ``query.resolve(schemas)`` (raising as it does), from memory when resolved before."""
        named = as_schemas(schemas, query.dataset)
        objects = tuple(named.values())
        relation = (query.dataset, query.joins, query.derived)  # what query.relation is made of
        key = (relation, repr(relation), tuple(named), tuple(map(id, objects)))
        try:
            hit = self._items.get(key)
        except TypeError:  # unhashable (never for a checked relation): resolve it
            return query.resolve(schemas)
        if hit is not None and all(a is b for a, b in zip(hit[0], objects, strict=True)):
            return hit[1]
        rs = query.resolve(schemas)
        self._items.put(key, (objects, rs))
        return rs


_RESOLVED = _Resolved()


def _schemas(schemas: Schemas | Catalog, dataset: str) -> Schemas:
    """Return the public schemas to check against: a catalog's schemas, or what was given."""
    if isinstance(schemas, Catalog):
        return schemas.schemas()
    return schemas


def _same(a: Schemas, b: Schemas, dataset: str) -> bool:
    return dict(as_schemas(a, dataset)) == dict(as_schemas(b, dataset))


def _spec_of(fitted: FittedAnswer) -> ModelSpec:
    if fitted.spec is not None:
        return fitted.spec
    return ModelSpec.from_dict(fitted.public["spec"])
