"""The in-memory form of a protected table inside the vault.

:class:`TableData` holds one registered table as read-only numpy arrays, laid out for fast DP aggregation:

- rows are sorted (stably) by the privacy unit, so the rows of one household are contiguous;
- ``unit_index`` numbers the units 0..n_units-1 in that order, and ``rank`` is a row's position within its unit
  in the source file's order. Bounding a household's contribution to ``k`` rows is then the mask ``rank < k``:
  deterministic, and independent of every other household (so adding or removing one household changes only its
  own rows);
- category and bool columns are ``int16`` codes in schema order (bool: 0 = False, 1 = True), ``-1`` = missing;
- int and float columns are ``float64`` with NaN = missing.

The data is validated against the public schema while it is converted (unknown categories, values outside the
public bounds, missing values in non-nullable columns, missing or extra columns). Error messages give counts, never
row values: they may reach an operator's terminal. Loading is the expensive step; callers cache the result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import polars as pl

from sandbox._private.shared.errors import InternalError, SchemaError
from sandbox._private.shared.schema import Column, TableSchema

__all__ = ["TableData"]


def _read(path: Path) -> pl.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pl.read_parquet(path)
        if suffix == ".csv":
            return pl.read_csv(path, infer_schema_length=100_000)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise SchemaError(f"Cannot read {str(path)!r}: {type(exc).__name__}. Check that the file is intact.") from None
    raise SchemaError(f"{str(path)!r} is neither .parquet nor .csv; register Parquet or CSV files.")


def _as_polars(frame: Any) -> pl.DataFrame:
    if isinstance(frame, pl.DataFrame):
        return frame
    try:
        return pl.from_pandas(frame)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"Expected a polars or pandas DataFrame, got {type(frame).__name__}: {exc}") from None


def _check_nulls(s: pl.Series, col: Column, table: str) -> None:
    n_null = s.null_count()
    if n_null and not col.nullable:
        raise SchemaError(
            f"Table {table!r}, column {col.name!r}: {n_null} missing values, but the schema says it is not "
            "nullable; fill them or mark the column nullable in the schema."
        )


def _category_codes(s: pl.Series, col: Column, table: str) -> np.ndarray:
    text = s.cast(pl.String, strict=False)
    unknown = int((text.is_not_null() & ~text.is_in(list(col.categories))).sum())
    if unknown:
        raise SchemaError(
            f"Table {table!r}, column {col.name!r}: {unknown} values are not among the schema's "
            f"{len(col.categories)} categories; fix the data or list every category in the schema."
        )
    codes = text.cast(pl.Enum(list(col.categories))).to_physical().cast(pl.Int16).fill_null(-1)
    return codes.to_numpy()


def _bool_codes(s: pl.Series, col: Column, table: str) -> np.ndarray:
    if s.dtype != pl.Boolean:
        try:
            as_int = s.cast(pl.Int64, strict=True)
        except pl.exceptions.PolarsError:
            raise SchemaError(f"Table {table!r}, column {col.name!r} is bool in the schema but not 0/1 data.") from None
        bad = int((as_int.is_not_null() & ~as_int.is_in([0, 1])).sum())
        if bad:
            raise SchemaError(f"Table {table!r}, column {col.name!r}: {bad} values are not 0/1 or true/false.")
        s = as_int.cast(pl.Boolean)
    return s.cast(pl.Int16).fill_null(-1).to_numpy()


def _numeric_values(s: pl.Series, col: Column, table: str) -> np.ndarray:
    try:
        f = s.cast(pl.Float64, strict=True)
    except pl.exceptions.PolarsError:
        raise SchemaError(
            f"Table {table!r}, column {col.name!r} is {col.kind} in the schema but not numeric."
        ) from None
    arr = f.to_numpy()
    if arr.dtype != np.float64:
        arr = arr.astype(np.float64)
    lo, hi = col.bounds
    finite = arr[~np.isnan(arr)]
    outside = int(np.count_nonzero((finite < lo) | (finite > hi)))
    if outside:
        raise SchemaError(
            f"Table {table!r}, column {col.name!r}: {outside} values lie outside the public bounds "
            f"[{lo:g}, {hi:g}]; widen the bounds in the schema (public, chosen without looking at the rows) "
            "or clip the data before registering."
        )
    if col.kind == "int" and finite.size and not np.all(finite == np.round(finite)):
        raise SchemaError(f"Table {table!r}, column {col.name!r} is int in the schema but has fractional values.")
    return arr


def _unit_layout(unit: np.ndarray) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, int]:
    """Return (sort order or None, unit_index, rank, n_units) for the raw unit ids."""
    order = None
    if unit.size > 1 and not bool(np.all(unit[1:] >= unit[:-1])):
        order = np.argsort(unit, kind="stable")
        unit = unit[order]
    n = unit.size
    boundary = np.empty(n, dtype=bool)
    if n:
        boundary[0] = True
        np.not_equal(unit[1:], unit[:-1], out=boundary[1:])
    starts = np.flatnonzero(boundary)
    dtype = np.int32 if starts.size < 2**31 - 1 else np.int64
    unit_index = (np.cumsum(boundary, dtype=np.int64) - 1).astype(dtype)
    rank = (np.arange(n, dtype=np.int64) - starts[unit_index]).astype(np.int32)
    return order, unit_index, rank, int(starts.size)


def _freeze(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True)
class TableData:
    """A protected table held by the vault, validated against its public schema.

    Attributes
    ----------
    schema : TableSchema
        The public schema.
    n_rows, n_units : int
        Rows and distinct privacy units.
    unit_index : ndarray of int32
        Unit number of each row (0..n_units-1, non-decreasing).
    rank : ndarray of int32
        Position of each row within its unit, in source order.
    codes : mapping of str to ndarray of int16
        Category and bool columns as codes in schema order; -1 = missing.
    values : mapping of str to ndarray of float64
        Int and float columns; NaN = missing.
    """

    schema: TableSchema
    n_rows: int
    n_units: int
    unit_index: np.ndarray
    rank: np.ndarray
    codes: Mapping[str, np.ndarray]
    values: Mapping[str, np.ndarray]
    _later_rows: dict[int, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def load(cls, path: str | Path, schema: TableSchema) -> TableData:
        """Read a registered Parquet or CSV file and validate it against ``schema``.

        Raises
        ------
        SchemaError
            If the file cannot be read or does not match the schema (the message gives counts, not values).
        """
        return cls.from_frame(_read(Path(path)), schema)

    @classmethod
    def from_frame(cls, frame: Any, schema: TableSchema) -> TableData:
        """Build from a polars or pandas DataFrame (tests, and files already read)."""
        df = _as_polars(frame)
        missing = [n for n in schema.names if n not in df.columns]
        if missing:
            raise SchemaError(f"Table {schema.name!r}: the data lacks schema columns {missing}; add them.")
        extra = [n for n in df.columns if n not in schema]
        if extra:
            raise SchemaError(f"Table {schema.name!r}: the data has columns {extra} that the schema does not list.")
        unit_series = df.get_column(schema.unit_column)
        _check_nulls(unit_series, schema.column(schema.unit_column), schema.name)
        order, unit_index, rank, n_units = _unit_layout(unit_series.cast(pl.Int64).to_numpy())
        codes: dict[str, np.ndarray] = {}
        values: dict[str, np.ndarray] = {}
        for col in schema.columns:
            if col.kind == "id":
                continue
            s = df.get_column(col.name)
            _check_nulls(s, col, schema.name)
            if col.kind == "category":
                arr = _category_codes(s, col, schema.name)
            elif col.kind == "bool":
                arr = _bool_codes(s, col, schema.name)
            else:
                arr = _numeric_values(s, col, schema.name)
            target = codes if col.kind in ("category", "bool") else values
            target[col.name] = _freeze(arr[order] if order is not None else np.ascontiguousarray(arr))
        return cls(
            schema=schema,
            n_rows=int(unit_index.size),
            n_units=n_units,
            unit_index=_freeze(unit_index),
            rank=_freeze(rank),
            codes=MappingProxyType(codes),
            values=MappingProxyType(values),
        )

    def rows_with_rank_at_least(self, s: int) -> np.ndarray:
        """Return the indices of the rows whose rank within their household is >= ``s`` (cached; ``s >= 1``).

        Row ``i`` in this set has its household's row of rank ``rank[i] - s`` at index ``i - s``.
        """
        if s < 1:
            raise InternalError(f"rows_with_rank_at_least needs s >= 1, got {s}.")
        if s not in self._later_rows:
            if s == 1:
                rows = np.flatnonzero(self.rank >= 1)
            else:
                prev = self.rows_with_rank_at_least(s - 1)
                rows = prev[self.rank[prev] >= s]
            dtype = np.int32 if self.n_rows < 2**31 else np.int64
            self._later_rows[s] = _freeze(rows.astype(dtype, copy=False))
        return self._later_rows[s]

    def numeric(self, name: str) -> np.ndarray:
        """Float64 values of a numeric or bool column (bool as 0.0/1.0), NaN = missing."""
        if name in self.values:
            return self.values[name]
        if name in self.codes and self.schema.column(name).kind == "bool":
            c = self.codes[name]
            return np.where(c < 0, np.nan, c.astype(np.float64))
        raise SchemaError(f"Column {name!r} of {self.schema.name!r} is not numeric.")

    def missing(self, name: str) -> np.ndarray:
        """Boolean mask of missing values in column ``name``."""
        if name in self.codes:
            return self.codes[name] < 0
        if name in self.values:
            return np.isnan(self.values[name])
        raise SchemaError(f"Column {name!r} of {self.schema.name!r} is an id column or unknown.")

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays."""
        arrays = [self.unit_index, self.rank, *self.codes.values(), *self.values.values()]
        return int(sum(a.nbytes for a in arrays))

    def fingerprint(self) -> str:
        """sha256 over the arrays: changes whenever the loaded content changes (used in tests and caches)."""
        h = hashlib.sha256(self.schema.sha256.encode())
        for a in (self.unit_index, self.rank):
            h.update(a.tobytes())
        for name in sorted(self.codes):
            h.update(name.encode())
            h.update(self.codes[name].tobytes())
        for name in sorted(self.values):
            h.update(name.encode())
            h.update(self.values[name].tobytes())
        return h.hexdigest()
