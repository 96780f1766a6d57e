"""Where the compiled SQL runs: an in-process DuckDB (the default) or a Spark session, behind one small interface.

A :class:`Runner` knows how to expose a registered file as a typed *source* (a view with the schema's names and
types and ``_rn``, the row's position in the file) and how to run a statement. DuckDB reads Parquet and CSV in
place, streams them, and spills to its temporary directory beyond its memory limit, so a table larger than memory
is answered without being loaded whole. Spark is imported only when a dataset registered with ``engine: spark`` is
used (see :mod:`.spark`).

Configuration (environment of the vault process):

- ``SANDBOX_DUCKDB_THREADS`` (default: DuckDB's, the number of cores), ``SANDBOX_DUCKDB_MEMORY_LIMIT`` (e.g.
  ``4GB``; default DuckDB's 80% of RAM), ``SANDBOX_DUCKDB_TEMP`` (spill directory; default DuckDB's).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from sandbox._private.shared.errors import SchemaError
from sandbox._private.shared.schema import Column, TableSchema

from .dialect import DUCKDB, Dialect

__all__ = ["Runner", "DuckRunner", "duck_runner", "runner_for", "ENGINES", "typed_select", "typed_exprs"]

#: The engines a dataset may be registered with.
ENGINES: tuple[str, ...] = ("duckdb", "spark")
_COUNTER = itertools.count()


class Runner(Protocol):
    """What the engine needs from a SQL engine."""

    dialect: Dialect

    def source(self, key: str, schema: TableSchema, path: Path | None, frame: pa.Table | None) -> str:
        """Register a table once and return the SQL name of its typed source view."""
        ...

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Run ``sql`` and return its rows."""
        ...

    def arrow(self, sql: str) -> pa.Table:
        """Run ``sql`` and return its result as an Arrow table."""
        ...

    def columns(self, key: str, path: Path | None, frame: pa.Table | None) -> dict[str, str]:
        """Column names of the raw file and their engine types (upper-case), in file order."""
        ...


def typed_exprs(d: Dialect, schema: TableSchema, raw: dict[str, str]) -> dict[str, str]:
    """Per schema column, the expression that gives it its schema type, from the raw file's column types."""
    return {c.name: _typed(d, c, raw[c.name]) for c in schema.columns}


def typed_select(d: Dialect, schema: TableSchema, raw: dict[str, str]) -> list[str]:
    """Select list that gives every schema column its schema type, from the raw file's column types."""
    return [f"{e} AS {d.ident(n)}" for n, e in typed_exprs(d, schema, raw).items()]


def _numeric_type(t: str) -> bool:
    return any(
        t.startswith(p)
        for p in (
            "TINYINT",
            "SMALLINT",
            "INTEGER",
            "BIGINT",
            "HUGEINT",
            "UTINYINT",
            "USMALLINT",
            "UINTEGER",
            "UBIGINT",
            "FLOAT",
            "DOUBLE",
            "DECIMAL",
            "REAL",
            "INT",
            "LONG",
            "SHORT",
            "BYTE",
        )
    )


def _typed(d: Dialect, c: Column, raw: str) -> str:
    x = d.ident(c.name)
    if c.kind == "id":  # a plain column when already whole numbers: filters on it reach the file's statistics
        return x if raw in ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "INT", "LONG") else f"TRY_CAST({x} AS BIGINT)"
    if c.kind in ("int", "float"):
        v = x if raw == "DOUBLE" else f"TRY_CAST({x} AS DOUBLE)"
        return f"(CASE WHEN isnan({v}) THEN NULL ELSE {v} END)" if c.nullable else v
    if c.kind == "bool":
        if raw == "BOOLEAN":
            return x
        if _numeric_type(raw):
            return f"(CASE WHEN {x} = 1 THEN TRUE WHEN {x} = 0 THEN FALSE END)"
        text = f"lower(trim(CAST({x} AS {'STRING' if d.name == 'spark' else 'VARCHAR'})))"
        return f"(CASE WHEN {text} IN ('true', '1', 't') THEN TRUE WHEN {text} IN ('false', '0', 'f') THEN FALSE END)"
    return x if raw in ("VARCHAR", "STRING") else f"CAST({x} AS {'STRING' if d.name == 'spark' else 'VARCHAR'})"


class DuckRunner:
    """One in-memory DuckDB database for the vault process; each query runs on its own cursor (thread-safe)."""

    dialect = DUCKDB

    def __init__(self) -> None:
        import duckdb

        config: dict[str, Any] = {"preserve_insertion_order": True}
        if os.environ.get("SANDBOX_DUCKDB_THREADS"):
            config["threads"] = int(os.environ["SANDBOX_DUCKDB_THREADS"])
        if os.environ.get("SANDBOX_DUCKDB_MEMORY_LIMIT"):
            config["memory_limit"] = os.environ["SANDBOX_DUCKDB_MEMORY_LIMIT"]
        if os.environ.get("SANDBOX_DUCKDB_TEMP"):
            config["temp_directory"] = os.environ["SANDBOX_DUCKDB_TEMP"]
        self._con = duckdb.connect(":memory:", config=config)
        self._lock = threading.Lock()
        self._views: dict[str, str] = {}
        self._tables: dict[tuple[str, str], str] = {}

    def _raw(self, path: Path | None, frame: pa.Table | None, name: str) -> str:
        if frame is not None:
            return name
        assert path is not None
        lit = DUCKDB.string(str(path))
        if path.suffix.lower() == ".parquet":
            return f"read_parquet({lit}, file_row_number = true)"
        return f"read_csv({lit}, header = true, all_varchar = true)"

    def columns(self, key: str, path: Path | None, frame: pa.Table | None) -> dict[str, str]:
        import duckdb

        con = self._con.cursor()
        try:
            if frame is not None:
                con.register("_frame", frame)
                rows = con.execute("DESCRIBE SELECT * FROM _frame").fetchall()
            else:
                rows = con.execute(f"DESCRIBE SELECT * FROM {self._raw(path, None, key)}").fetchall()
        except duckdb.Error as exc:
            raise SchemaError(
                f"Cannot read {str(path)!r}: {type(exc).__name__}. Check that the file is intact."
            ) from None
        finally:
            con.close()
        return {str(r[0]): str(r[1]).upper() for r in rows if r[0] not in ("file_row_number", "_rn")}

    def source(self, key: str, schema: TableSchema, path: Path | None, frame: pa.Table | None) -> str:
        with self._lock:
            if key in self._views:
                return self._views[key]
            name = f"src_{next(_COUNTER)}"
            raw = self.columns(key, path, frame)
            sel = typed_select(DUCKDB, schema, raw)
            if frame is not None:
                table = f"raw_{name}"
                self._con.register("_frame_in", frame)
                self._con.execute(f"CREATE TABLE {table} AS SELECT *, (row_number() OVER ()) - 1 AS _rn FROM _frame_in")
                self._con.unregister("_frame_in")
                self._con.execute(f"CREATE VIEW {name} AS SELECT {', '.join(sel)}, _rn FROM {table}")
            elif path is not None and path.suffix.lower() == ".parquet":
                raw_sql = self._raw(path, None, key)
                self._con.execute(
                    f"CREATE VIEW {name} AS SELECT {', '.join(sel)}, file_row_number AS _rn FROM {raw_sql}"
                )
            else:
                self._con.execute(
                    f"CREATE VIEW {name} AS SELECT {', '.join(sel)}, (row_number() OVER ()) - 1 AS _rn "
                    f"FROM {self._raw(path, None, key)}"
                )
            self._views[key] = name
            return name

    def raw_source(self, key: str, path: Path | None, frame: pa.Table | None) -> str:
        """Return the SQL of the raw rows (for the checks that compare raw and typed values)."""
        self.columns(key, path, frame)  # readable?
        if frame is not None:
            view = self._views.get(key)
            return f"raw_{view}" if view else "_frame"
        return self._raw(path, None, key)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        con = self._con.cursor()
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def arrow(self, sql: str) -> pa.Table:
        con = self._con.cursor()
        try:
            return con.sql(sql).to_arrow_table()
        finally:
            con.close()

    def materialize(self, key: str, label: str, sql: str) -> str:
        """Store the rows of ``sql`` as a table of the engine, once per ``(key, label)``; return its name.

        The table belongs to the source ``key`` and is dropped with it (:meth:`forget`).
        """
        with self._lock:
            name = self._tables.get((key, label))
            if name is None:
                name = f"mat_{next(_COUNTER)}"
                self._con.execute(f"CREATE TABLE {name} AS {sql}")
                self._tables[(key, label)] = name
            return name

    def forget(self, keys: Sequence[str]) -> None:
        """Drop the views of tables no longer used (tests create many small tables)."""
        with self._lock:
            for key in keys:
                name = self._views.pop(key, None)
                if name:
                    self._con.execute(f"DROP VIEW IF EXISTS {name}")
                    self._con.execute(f"DROP TABLE IF EXISTS raw_{name}")
                for tk in [t for t in self._tables if t[0] == key]:
                    self._con.execute(f"DROP TABLE IF EXISTS {self._tables.pop(tk)}")


_DUCK: DuckRunner | None = None
_DUCK_LOCK = threading.Lock()


def duck_runner() -> DuckRunner:
    """Return the process's DuckDB runner (created on first use)."""
    global _DUCK
    with _DUCK_LOCK:
        if _DUCK is None:
            _DUCK = DuckRunner()
        return _DUCK


def runner_for(engine: str) -> Runner:
    """Return the runner of ``engine`` (``duckdb`` or ``spark``; Spark is imported only here, on first use)."""
    if engine == "duckdb":
        return duck_runner()
    if engine == "spark":
        from .spark import spark_runner

        return spark_runner()
    raise SchemaError(f"Unknown engine {engine!r}; register the dataset with engine 'duckdb' or 'spark'.")
