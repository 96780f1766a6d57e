"""Checking that a frame conforms to its public schema.

:func:`check_frame` is what the vault runs when a dataset is registered, and what the tests run on generated
and dummy data: the right columns, dtypes that fit each column's kind, no nulls where the schema forbids them,
every number within its public bounds, every category listed, no unit above its contribution bound and no
duplicated primary key. All problems are reported at once; each names the column, how many values offend and
the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from sandbox._private.shared.errors import SchemaError
from sandbox._private.shared.schema import Column, TableSchema

__all__ = ["check_frame"]

_DTYPE_OK: dict[str, tuple[Callable[[Any], bool], str]] = {
    "id": (lambda d: ptypes.is_integer_dtype(d) and not ptypes.is_bool_dtype(d), "an integer dtype (int64)"),
    "int": (lambda d: ptypes.is_integer_dtype(d) and not ptypes.is_bool_dtype(d), "an integer dtype (int64)"),
    "float": (lambda d: ptypes.is_numeric_dtype(d) and not ptypes.is_bool_dtype(d), "a numeric dtype (float64)"),
    "bool": (lambda d: ptypes.is_bool_dtype(d), "a bool dtype"),
    "category": (
        lambda d: isinstance(d, pd.CategoricalDtype) or ptypes.is_object_dtype(d) or ptypes.is_string_dtype(d),
        "a categorical or string dtype",
    ),
}


def _column_layout(df: pd.DataFrame, schema: TableSchema) -> list[str]:
    problems = []
    missing = [c for c in schema.names if c not in df.columns]
    extra = [str(c) for c in df.columns if c not in schema]
    if missing:
        problems.append(f"missing columns {missing}: add them (the schema of {schema.name!r} requires them)")
    if extra:
        problems.append(f"extra columns {extra}: drop them or add them to the schema")
    return problems


def _check_values(s: pd.Series, col: Column) -> list[str]:
    nulls = int(s.isna().sum())
    problems = []
    if nulls and not col.nullable:
        problems.append(
            f"column {col.name!r}: {nulls} missing values but the column is not nullable; "
            "fill or drop them, or mark the column nullable in the schema"
        )
    values = s.dropna()
    if col.kind in ("id", "int", "float") and len(values):
        lo, hi = col.bounds
        arr = values.to_numpy(dtype=np.float64)
        bad = int(((arr < lo) | (arr > hi) | ~np.isfinite(arr)).sum())
        if bad:
            problems.append(
                f"column {col.name!r}: {bad} values outside the public bounds [{lo:g}, {hi:g}] "
                f"(seen {arr.min():g} to {arr.max():g}); clip them to the bounds or correct the schema"
            )
    if col.kind == "category" and len(values):
        unknown = ~values.astype(str).isin(col.categories)
        if unknown.any():
            examples = sorted(values[unknown].astype(str).unique())[:5]
            problems.append(
                f"column {col.name!r}: {int(unknown.sum())} values are not a listed category "
                f"(for example {examples}); allowed: {list(col.categories)}; recode them or add the "
                "category to the schema"
            )
    return problems


def _check_column(df: pd.DataFrame, col: Column) -> list[str]:
    s = df[col.name]
    ok, wanted = _DTYPE_OK[col.kind]
    if not ok(s.dtype):
        return [f"column {col.name!r} ({col.kind}) has dtype {s.dtype}; convert it to {wanted}"]
    return _check_values(s, col)


def _check_rows(df: pd.DataFrame, schema: TableSchema) -> list[str]:
    problems = []
    per_unit = df[schema.unit_column].value_counts()
    over = per_unit[per_unit > schema.max_rows_per_unit]
    if len(over):
        problems.append(
            f"{len(over)} units of {schema.unit_column!r} have more than max_rows_per_unit="
            f"{schema.max_rows_per_unit} rows (up to {int(over.max())}); split or drop their extra rows, "
            "or raise max_rows_per_unit in the schema"
        )
    if schema.primary_key:
        dup = int(df.duplicated(list(schema.primary_key)).sum())
        if dup:
            problems.append(f"{dup} rows repeat the primary key {list(schema.primary_key)}; remove the duplicates")
    return problems


def check_frame(df: pd.DataFrame, schema: TableSchema) -> None:
    """Raise :class:`SchemaError` unless ``df`` conforms to ``schema``.

    Parameters
    ----------
    df : pandas.DataFrame
        The rows to check (protected rows in the vault, or dummy and generated data in tests).
    schema : TableSchema
        The public schema they must satisfy.

    Raises
    ------
    SchemaError
        Listing every problem: missing or extra columns, wrong dtypes, nulls where not allowed, values outside
        the bounds, unknown categories, units over their row bound and duplicated primary keys. Each names the
        column, the number of offending values and the fix.
    """
    if not isinstance(df, pd.DataFrame):
        raise SchemaError(f"check_frame needs a pandas DataFrame, got {type(df).__name__}.")
    problems = _column_layout(df, schema)
    for col in schema.columns:
        if col.name in df.columns:
            problems.extend(_check_column(df, col))
    if not problems:
        problems.extend(_check_rows(df, schema))
    if problems:
        raise SchemaError(
            f"Table {schema.name!r} does not match its schema ({len(problems)} problems): " + "; ".join(problems) + "."
        )
