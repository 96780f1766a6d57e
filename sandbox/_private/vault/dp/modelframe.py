"""The rows a model is fitted on, as columns in memory: a table of its own, or a linked relation computed in SQL.

diffprivlib fits on a design matrix in memory. For a plain table the columns come straight from the table
(:attr:`TableData.codes` / :attr:`TableData.values`); for a linked relation (joins on the privacy unit's key,
bins, per-household counts and sums) the engine computes the needed columns in one statement
(:func:`~.sql.compile.compile_frame`) and this module wraps them as a :class:`TableData` of computed columns with
the relation's public schema, which fitting, prediction and the fairness audit read like any table.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from sandbox._private.shared.plan import Relation, relation_schema
from sandbox._private.shared.schema import TableSchema

from .aggregates import Catalog
from .sql.compile import compile_frame
from .tabledata import TableData

__all__ = ["model_frame"]


def _restricted(schema: TableSchema, names: list[str]) -> TableSchema:
    keep = [schema.column(schema.unit_column), *(schema.column(n) for n in names if n != schema.unit_column)]
    return TableSchema(
        schema.name,
        schema.label_nl,
        schema.label_en,
        schema.privacy_unit,
        schema.unit_column,
        schema.max_rows_per_unit,
        tuple(keep),
        description=schema.description,
    )


def model_frame(relation: Relation, catalog: Catalog, columns: Iterable[str]) -> TableData:
    """Return the relation's ``columns`` and unit key (``units()``) for fitting; a plain relation is the base table."""
    if relation.is_plain:
        return catalog.tables[relation.base]
    rs = relation_schema(relation, catalog.schemas())
    names = [n for n in dict.fromkeys(columns) if n in rs.schema and rs.schema.column(n).kind != "id"]
    names_tables = tuple(rs.tables)
    catalog.engine_of(names_tables)
    runner = catalog.tables[relation.base].runner
    sources = {n: catalog.tables[n].source() for n in names_tables}
    unit = rs.schema.unit_column
    table: pa.Table = runner.arrow(compile_frame(rs, [*names, unit], sources, runner.dialect))
    arrays: dict[str, np.ndarray] = {unit: np.asarray(table.column(len(names)).to_numpy(), dtype=np.int64)}
    for i, name in enumerate(names):
        col = table.column(i)
        if rs.schema.column(name).kind in ("category", "bool"):
            arrays[name] = np.asarray(col.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int16)
        else:
            arrays[name] = np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    return TableData.from_arrays(_restricted(rs.schema, names), arrays, table.num_rows)
