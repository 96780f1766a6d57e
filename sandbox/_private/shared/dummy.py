"""Dummy data drawn from a public schema alone.

Analysts explore and write code against :func:`dummy_frame` output; the vault serves it. It reads nothing but
the schema (names, kinds, bounds, categories, nullability, privacy unit and primary key), so it reveals nothing
about the protected rows: numbers are uniform within the public bounds and categories uniform over the listed
categories. It honours the schema's invariants, so it passes :func:`~sandbox._private.kernel.conformance.check_frame`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .errors import SchemaError
from .schema import Column, TableSchema

__all__ = ["dummy_frame"]

_NULL_SHARE = 0.1  # share of missing values in nullable columns


def _cardinality(col: Column) -> float:
    if col.kind == "category":
        return len(col.categories)
    if col.kind == "bool":
        return 2
    if col.kind == "int":
        lo, hi = col.bounds
        return hi - lo + 1
    return math.inf


def _unit_ids(rng: np.random.Generator, col: Column, n: int, per_unit: int) -> np.ndarray:
    """Draw unit ids, each repeated at most ``per_unit`` times (once if ``per_unit`` is 1)."""
    lo, hi = (int(b) for b in col.bounds)
    counts = rng.integers(1, per_unit + 1, size=n) if per_unit > 1 else np.ones(n, dtype=np.int64)
    n_units = int(np.searchsorted(np.cumsum(counts), n)) + 1 if n else 0
    if n_units > hi - lo + 1:
        raise SchemaError(
            f"Column {col.name!r} has bounds [{lo}, {hi}]: too few ids for {n} dummy rows; "
            "ask for fewer rows or widen the bounds."
        )
    return (lo + np.repeat(np.arange(n_units), counts[:n_units]))[:n].astype(np.int64)


def _values(
    rng: np.random.Generator, col: Column, n: int, unique: bool
) -> pd.Series | pd.Categorical[Any] | np.ndarray:
    if col.kind == "category":
        return pd.Categorical.from_codes(
            rng.integers(0, len(col.categories), size=n), dtype=pd.CategoricalDtype(list(col.categories))
        )
    if col.kind == "bool":
        return rng.random(n) < 0.5
    lo, hi = col.bounds
    if col.kind == "float":
        return np.clip(np.round(rng.uniform(lo, hi, size=n), 2), lo, hi)
    if unique:
        if hi - lo + 1 < n:
            raise SchemaError(
                f"Column {col.name!r} must be unique but its bounds [{lo:g}, {hi:g}] hold fewer than "
                f"{n} values; ask for fewer rows or widen the bounds."
            )
        return (int(lo) + np.arange(n)).astype(np.int64)
    return rng.integers(int(lo), int(hi) + 1, size=n, dtype=np.int64)


def _with_nulls(
    rng: np.random.Generator, values: pd.Series | pd.Categorical[Any] | np.ndarray, col: Column
) -> pd.Series:
    s = pd.Series(values)
    if not col.nullable:
        return s
    mask = rng.random(len(s)) < _NULL_SHARE
    if col.kind in ("id", "int"):
        s = s.astype("Int64")
    elif col.kind == "bool":
        s = s.astype("boolean")
    return s.mask(mask)


def _decode(col: Column, v: np.ndarray) -> pd.Series | pd.Categorical[Any] | np.ndarray:
    if col.kind == "category":
        return pd.Categorical.from_codes(v, dtype=pd.CategoricalDtype(list(col.categories)))
    if col.kind == "bool":
        return v == 1
    return (int(col.bounds[0]) + v).astype(np.int64)


def _distinct_keys(rng: np.random.Generator, df: pd.DataFrame, schema: TableSchema, others: list[Column]) -> None:
    """Give every row of a unit a distinct combination of the (finite) other primary-key columns."""
    unit = df[schema.unit_column].to_numpy()
    start = np.r_[0, np.flatnonzero(unit[1:] != unit[:-1]) + 1]
    sizes = np.diff(np.r_[start, len(unit)])
    pos = np.arange(len(unit)) - np.repeat(start, sizes)
    space = math.prod(int(_cardinality(c)) for c in others)
    idx = (np.repeat(rng.integers(0, space, size=len(start)), sizes) + pos) % space
    for col in others:
        card = int(_cardinality(col))
        df[col.name] = _decode(col, idx % card)
        idx = idx // card


def _dedupe_key(rng: np.random.Generator, df: pd.DataFrame, schema: TableSchema) -> None:
    """Make the primary key unique: distinct combinations per unit, else redraw duplicated rows."""
    others = [schema.column(k) for k in schema.primary_key if k != schema.unit_column]
    if schema.unit_column in schema.primary_key and all(math.isfinite(_cardinality(c)) for c in others):
        _distinct_keys(rng, df, schema, others)
        return
    for _ in range(200):
        dup = df.duplicated(list(schema.primary_key)).to_numpy()
        if not dup.any() or not others:
            return
        for col in others:
            redrawn = pd.Series(_values(rng, col, int(dup.sum()), unique=False), index=df.index[dup])
            df.loc[dup, col.name] = redrawn.astype(df[col.name].dtype)
    raise SchemaError(
        f"Could not draw {len(df)} rows with a unique primary key {list(schema.primary_key)}; ask for fewer rows."
    )


def dummy_frame(schema: TableSchema, n: int, *, seed: int | None = None) -> pd.DataFrame:
    """Schema-shaped dummy rows, drawn from the public schema alone (never from protected rows).

    Parameters
    ----------
    schema : TableSchema
        The public schema.
    n : int
        Number of rows (>= 0).
    seed : int, optional
        Seed for reproducible dummy data; ``None`` draws fresh entropy.

    Returns
    -------
    pandas.DataFrame
        Columns in schema order: ids and ints as int64 (``Int64`` if nullable), floats as float64, bools as bool
        (``boolean`` if nullable), categories as pandas categoricals with every listed category. Values respect
        the bounds and categories; each unit has at most ``max_rows_per_unit`` rows and the primary key is unique.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise SchemaError(f"n must be a whole number >= 0, got {n!r}.")
    n = int(n)
    rng = np.random.Generator(np.random.SFC64(np.random.SeedSequence(seed)))
    key = set(schema.primary_key)
    key_space = math.prod(_cardinality(schema.column(k)) for k in key - {schema.unit_column}) if key else math.inf
    per_unit = int(min(schema.max_rows_per_unit, key_space)) if schema.unit_column in key else schema.max_rows_per_unit
    data: dict[str, pd.Series] = {}
    for col in schema.columns:
        if col.name == schema.unit_column:
            values: pd.Series | pd.Categorical[Any] | np.ndarray = _unit_ids(rng, col, n, per_unit)
        else:
            values = _values(rng, col, n, unique=schema.primary_key == (col.name,))
        data[col.name] = _with_nulls(rng, values, col) if col.name not in key else pd.Series(values)
    df = pd.DataFrame(data)
    if len(key) > 1:
        _dedupe_key(rng, df, schema)
    return df
