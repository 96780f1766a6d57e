"""A protected table inside the vault: a registered file read in place by an SQL engine, checked against its schema.

:class:`TableData` names where the rows are (a Parquet or CSV file, or an in-memory frame in tests), which engine
reads them (``duckdb`` by default, or ``spark``) and the public schema they were checked against. It does not hold
the rows: the DP engine compiles each query to SQL (:mod:`.sql.compile`) that the engine runs on the file, so a
table larger than memory is answered without being loaded whole.

Checking (:meth:`TableData.load`, :meth:`TableData.from_frame`) refuses data that breaks the schema, with counts,
never row values (see :mod:`.sql.checks`). The profile (rows, units, whether each unit's rows are contiguous)
guides the choice of plan and never changes a result.

For model fitting and the in-vault fairness audit, which need a design matrix in memory, ``codes`` and ``values``
give whole columns as numpy arrays on demand, in the order of the unit key and then the file
(category and bool columns as ``int16`` codes in schema order, ``-1`` = missing; numbers as ``float64``, NaN =
missing), and ``units()`` the unit key of each row in the same order. :meth:`TableData.from_arrays` builds such a
table from columns already computed (a model's relation).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sandbox._private.shared.errors import InternalError, SchemaError
from sandbox._private.shared.schema import TableSchema

from .sql.checks import (
    Profile,
    check_columns,
    check_units,
    part_units_sql,
    profile_sql,
    raise_problems,
    split_sql,
    validate_sql,
)
from .sql.runner import ENGINES, Runner, runner_for, typed_exprs

__all__ = ["TableData", "Profile", "Dropped", "DROPPED_ROWS_MAX"]

_KEYS = itertools.count()


def _as_arrow(frame: Any) -> pa.Table:
    if isinstance(frame, pa.Table):
        return frame
    to_arrow = getattr(frame, "to_arrow", None)  # polars
    if callable(to_arrow) and type(frame).__module__.startswith("polars"):
        return to_arrow()
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (TypeError, ValueError, pa.ArrowException) as exc:
        raise SchemaError(f"Expected a polars or pandas DataFrame, got {type(frame).__name__}: {exc}") from None


class _Columns(Mapping[str, np.ndarray]):
    """Whole columns of a table, fetched from the engine on first use and kept read-only."""

    def __init__(self, table: TableData, names: tuple[str, ...]) -> None:
        self._table, self._names = table, names

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        return self._table._column(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class TableData:
    """A protected table: where its rows are, which engine reads them, and its public schema.

    Use :meth:`load` (a registered file), :meth:`from_frame` (tests) or :meth:`from_arrays` (computed columns).

    Attributes
    ----------
    schema : TableSchema
        The public schema.
    path : Path or None
        The registered file (None for an in-memory frame).
    engine : str
        ``duckdb`` or ``spark``.
    """

    def __init__(
        self,
        schema: TableSchema,
        *,
        path: Path | None = None,
        frame: pa.Table | None = None,
        engine: str = "duckdb",
        arrays: Mapping[str, np.ndarray] | None = None,
        n_rows: int | None = None,
    ) -> None:
        if engine not in ENGINES:
            raise SchemaError(f"Unknown engine {engine!r}; register the dataset with engine 'duckdb' or 'spark'.")
        self.schema = schema
        self.path = path
        self.engine = engine
        self._frame = frame
        self._arrays: dict[str, np.ndarray] = dict(arrays or {})
        self._fixed = arrays is not None
        self._n_rows = n_rows
        self._profile: Profile | None = None
        self._dropped: dict[int, tuple[str, Dropped]] = {}
        self._lock = threading.Lock()
        #: every value is known to lie within the schema's bounds (checked here, or at registration: see ``load``)
        self.bounded = False
        self.key = f"t{next(_KEYS)}"

    def __repr__(self) -> str:
        where = str(self.path) if self.path else ("arrays" if self._fixed else "frame")
        return f"TableData({self.schema.name!r}, {where}, engine={self.engine!r})"

    # -- construction ------------------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        path: str | Path,
        schema: TableSchema,
        *,
        engine: str = "duckdb",
        validate: bool = True,
        bounded: bool = False,
    ) -> TableData:
        """Open a registered Parquet or CSV file; with ``validate``, check every row against ``schema``.

        ``bounded`` says the rows were checked against ``schema`` before (the vault's registered files, whose
        sha256 it checks when it opens them): the engine then does not clip their values to the bounds again.
        A table that was neither validated here nor declared bounded has every value clipped in every plan.

        Raises
        ------
        SchemaError
            If the file cannot be read or does not match the schema (the message gives counts, not values).
        """
        p = Path(path)
        if p.suffix.lower() not in (".parquet", ".csv"):
            raise SchemaError(f"{str(p)!r} is neither .parquet nor .csv; register Parquet or CSV files.")
        if not p.is_file():
            raise SchemaError(f"Cannot read {str(p)!r}: no such file. Check the path.")
        table = cls(schema, path=p.resolve(), engine=engine)
        table.bounded = bounded
        if validate:
            table.validate()
        return table

    @classmethod
    def from_frame(cls, frame: Any, schema: TableSchema) -> TableData:
        """Build from a polars or pandas DataFrame (tests, and files already read), checked against ``schema``."""
        table = cls(schema, frame=_as_arrow(frame))
        table.validate()
        return table

    @classmethod
    def from_arrays(cls, schema: TableSchema, arrays: Mapping[str, np.ndarray], n_rows: int) -> TableData:
        """Return a table of computed columns (codes / float64 as in ``codes`` and ``values``): no rows to read."""
        return cls(schema, arrays={k: _freeze(np.asarray(v)) for k, v in arrays.items()}, n_rows=n_rows)

    # -- the engine's view -------------------------------------------------------------------------------------
    @property
    def runner(self) -> Runner:
        return runner_for(self.engine)

    def source(self) -> str:
        """Return the SQL name of the typed view of this table in its engine (registered on first use)."""
        if self._fixed:
            raise SchemaError(f"{self!r} holds computed columns only; it cannot be queried.")
        return self.runner.source(self.key, self.schema, self.path, self._frame)

    def validate(self) -> None:
        """Check every row against the schema and measure the profile; SchemaError names the problem."""
        runner = self.runner
        raw_cols = runner.columns(self.key, self.path, self._frame)
        check_columns(self.schema, raw_cols)
        source = self.source()
        raw = getattr(runner, "raw_source", None)
        raw_from = raw(self.key, self.path, self._frame) if raw is not None else source
        typed = typed_exprs(runner.dialect, self.schema, raw_cols)
        sql, names = validate_sql(runner.dialect, self.schema, raw_from, typed)
        (row,) = runner.rows(sql)
        n_rows = raise_problems(self.schema, names, row)
        self._n_rows = n_rows
        self._profile = self._measure(source, n_rows)
        self.bounded = True

    def _measure(self, source: str, n_rows: int) -> Profile:
        runner = self.runner
        d = runner.dialect
        ((n_units, max_rows, over),) = runner.rows(profile_sql(d, self.schema, source))
        check_units(self.schema, int(n_units), int(max_rows), int(over or 0))
        contiguous: bool | None = None
        parts: tuple[tuple[int, int, int, int], ...] = ()
        if d.streaming_lag:
            n_parts = _n_parts(n_rows) if int(max_rows) > 1 else 1
            targets = [n_rows * j // n_parts for j in range(1, n_parts)]
            (row,) = runner.rows(split_sql(d, self.schema, source, targets))
            contiguous = int(row[0]) == int(n_units)
            if contiguous and n_parts > 1:
                starts = sorted({0, *(int(b) for b in row[1:] if b is not None)})
                units = runner.rows(part_units_sql(d, self.schema, source, starts))
                ends = [*starts[1:], n_rows]
                parts = tuple(
                    (lo, hi, int(umin), int(umax))
                    for (lo, hi), (_, umin, umax) in zip(zip(starts, ends, strict=True), units, strict=True)
                )
        return Profile(n_rows, int(n_units), int(max_rows), contiguous, parts)

    @property
    def profile(self) -> Profile:
        """Rows, units, the most rows of one unit, contiguity (measured once)."""
        with self._lock:
            if self._profile is None:
                if self._fixed:
                    self._profile = Profile(int(self._n_rows or 0), int(self._n_rows or 0), 1, True)
                else:
                    source = self.source()
                    ((n,),) = self.runner.rows(f"SELECT count(*) FROM {source}")
                    self._profile = self._measure(source, int(n))
            return self._profile

    def dropped(self, k: int) -> Dropped | None:
        """Return the rows the household bound ``k`` drops, kept in the engine once, or None if it drops none.

        A household keeps its first ``k`` rows in file order, so the dropped rows depend on the table and ``k``
        only, never on a question: they are found once (one streaming pass when each household's rows are
        contiguous, else a ranking per household) and kept as a table of the engine, whole (every column, when
        they are at most :data:`DROPPED_ROWS_MAX` rows: a question then subtracts their cells from those of all
        rows) or as row numbers (a question excludes them with a join). None when no household has more than
        ``k`` rows. Only an engine that keeps tables (DuckDB) is asked; on Spark the plans rank rows themselves.
        """
        profile = self.profile
        if profile.max_rows <= k:
            return None
        runner = self.runner
        materialize = getattr(runner, "materialize", None)
        if materialize is None:
            raise InternalError(f"the {self.engine} engine keeps no tables: answer {self.schema.name!r} in full")
        u = runner.dialect.ident(self.schema.unit_column)
        src = self.source()
        if profile.contiguous:
            rank = f"SELECT _rn, lag({u}, {int(k)}) OVER () = {u} AS _over FROM {src}"
        else:
            rank = f"SELECT _rn, row_number() OVER (PARTITION BY {u} ORDER BY _rn) > {int(k)} AS _over FROM {src}"
        numbers = str(materialize(self.key, f"dropped_{int(k)}", f"SELECT _rn FROM ({rank}) AS _r WHERE _over"))
        with self._lock:
            known = self._dropped.get(int(k))
        if known is not None and known[0] == numbers:  # the engine still keeps them (tests may make it forget)
            return known[1]
        ((n,),) = runner.rows(f"SELECT count(*) FROM {numbers}")
        if int(n) > DROPPED_ROWS_MAX:
            dropped = Dropped(numbers, whole=False)
        else:
            rows = f"SELECT * FROM {src} WHERE _rn IN (SELECT _rn FROM {numbers})"
            dropped = Dropped(str(materialize(self.key, f"dropped_rows_{int(k)}", rows)), whole=True)
        with self._lock:
            self._dropped[int(k)] = (numbers, dropped)
        return dropped

    @property
    def n_rows(self) -> int:
        """Rows in the table."""
        if self._n_rows is None:
            self._n_rows = self.profile.n_rows
        return int(self._n_rows)

    @property
    def n_units(self) -> int:
        """Distinct privacy units."""
        return self.profile.n_units

    # -- whole columns, for models and audits -----------------------------------------------------------------
    @property
    def codes(self) -> Mapping[str, np.ndarray]:
        """Category and bool columns as ``int16`` codes in schema order; ``-1`` = missing."""
        return _Columns(self, tuple(c.name for c in self.schema.columns if c.kind in ("category", "bool")))

    @property
    def values(self) -> Mapping[str, np.ndarray]:
        """Int and float columns as ``float64``; NaN = missing."""
        return _Columns(self, tuple(c.name for c in self.schema.columns if c.kind in ("int", "float")))

    def _column(self, name: str) -> np.ndarray:
        with self._lock:
            if name in self._arrays:
                return self._arrays[name]
        if self._fixed:
            raise KeyError(name)
        from .sql.compile import compile_frame, single_relation

        sql = compile_frame(
            single_relation(self.schema), [name], {self.schema.name: self.source()}, self.runner.dialect
        )
        col = self.runner.arrow(sql).column(0)
        kind = self.schema.column(name).kind
        if kind in ("category", "bool"):
            arr = np.asarray(col.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int16)
        else:
            arr = np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        with self._lock:
            self._arrays[name] = _freeze(arr.copy())
            return self._arrays[name]

    def units(self) -> np.ndarray:
        """Return the privacy unit's key of every row (``int64``), in the order of ``codes`` and ``values``."""
        unit = self.schema.unit_column
        with self._lock:
            if unit in self._arrays:
                return self._arrays[unit]
        if self._fixed:
            raise SchemaError(f"{self!r} was built without its unit column {unit!r}; pass it in the arrays.")
        from .sql.compile import compile_frame, single_relation

        sql = compile_frame(
            single_relation(self.schema), [unit], {self.schema.name: self.source()}, self.runner.dialect
        )
        col = self.runner.arrow(sql).column(0)
        arr = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.int64)
        with self._lock:
            self._arrays[unit] = _freeze(arr.copy())
            return self._arrays[unit]

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
        """Memory this handle holds: columns fetched for models, and an in-memory frame (not the engine's cache)."""
        held = sum(int(a.nbytes) for a in self._arrays.values())
        return held + (int(self._frame.nbytes) if self._frame is not None else 0)

    def fingerprint(self) -> str:
        """sha256 over every non-id column in unit-then-file order: equal for equal content (tests)."""
        h = hashlib.sha256(self.schema.sha256.encode())
        for c in self.schema.columns:
            if c.kind == "id":
                continue
            h.update(c.name.encode())
            h.update((self.codes if c.kind in ("category", "bool") else self.values)[c.name].tobytes())
        return h.hexdigest()


@dataclass(frozen=True)
class Dropped:
    """The rows of a table beyond the household bound, kept in its engine (:meth:`TableData.dropped`).

    Attributes
    ----------
    name : str
        The engine's table: the rows themselves with every column of the typed view (``whole``), or only their
        ``_rn``.
    whole : bool
        Whether ``name`` holds the rows (then a question's cells of these rows are subtracted from those of all
        rows) or only their row numbers (then a question excludes them with a join).
    """

    name: str
    whole: bool


#: The most dropped rows kept whole (about 100 MB for a table of a dozen columns); more are kept as row numbers.
DROPPED_ROWS_MAX = 1_000_000

#: Rows per part of a contiguous many-row table, at the least, and the most parts (answered in parallel).
PART_ROWS = 1_000_000


def _n_parts(n_rows: int) -> int:
    return max(1, min(n_rows // PART_ROWS, 2 * (os.cpu_count() or 1), 16))


def _freeze(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr
