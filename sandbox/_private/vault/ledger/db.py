"""A tiny DB-API adapter so the ledger runs one code path on SQLite and on PostgreSQL.

The ledger writes its SQL once, with ``?`` placeholders; :class:`LedgerDB` turns them into ``%s`` for psycopg.
Each call to :meth:`LedgerDB.transaction` opens a fresh connection (cheap for SQLite; a few milliseconds for a
local PostgreSQL), takes the write lock the backend offers and commits or rolls back as one unit:

* SQLite: ``BEGIN IMMEDIATE`` takes the database's single write lock, so every charging transaction runs
  alone; WAL mode and ``synchronous=FULL`` make a commit durable before it returns.
* PostgreSQL: ``BEGIN`` then the caller locks the dataset row with ``SELECT ... FOR UPDATE``
  (:meth:`Tx.lock_clause` gives the suffix), which serialises charges on one dataset.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sandbox._private.shared.errors import SandboxError

__all__ = ["LedgerDB", "Tx"]

_BUSY_TIMEOUT_S = 60.0


class Tx:
    """One open transaction: ``execute`` with ``?`` placeholders, rows come back as tuples."""

    def __init__(self, conn: Any, backend: str) -> None:
        self._conn = conn
        self.backend = backend

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.backend == "postgresql" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self._conn.execute(self._sql(sql), tuple(params))
        if cur.description is None:
            return []
        return [tuple(r) for r in cur.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = self.execute(sql, params)
        return rows[0] if rows else None

    @property
    def lock_clause(self) -> str:
        """Row-lock suffix for a ``SELECT`` (PostgreSQL); SQLite already holds the database write lock."""
        return " FOR UPDATE" if self.backend == "postgresql" else ""


class LedgerDB:
    """Connection factory for the ledger: a SQLite file path or a ``postgresql://`` URL.

    Parameters
    ----------
    target : str or Path
        ``postgresql://user@host:port/db`` (or ``postgres://``) selects PostgreSQL; anything else is a SQLite
        file path, created on first use.
    """

    def __init__(self, target: str | Path) -> None:
        text = str(target)
        if text.startswith(("postgresql://", "postgres://")):
            self.backend = "postgresql"
            self.url = text
        else:
            self.backend = "sqlite"
            self.url = str(Path(text))
            Path(self.url).parent.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        where = self.url if self.backend == "sqlite" else self.url.split("@")[-1]
        return f"LedgerDB({self.backend}: {where})"

    def _connect(self) -> Any:
        if self.backend == "sqlite":
            conn = sqlite3.connect(self.url, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}")
            return conn
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise SandboxError(
                f"Cannot connect to the ledger database {self!r}: {str(exc).strip()}. "
                "Check --ledger-url and that the server is running."
            ) from None

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Tx]:
        """Open a connection and a transaction; commit on success, roll back on any exception."""
        conn = self._connect()
        try:
            if self.backend == "sqlite":
                try:
                    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                except sqlite3.OperationalError as exc:
                    raise SandboxError(
                        f"The ledger {self.url} stayed locked for {_BUSY_TIMEOUT_S:.0f} s ({exc}); another query or "
                        "process holds it. Retry; if it persists, check for a stuck `sandbox` process."
                    ) from None
            else:
                conn.execute("BEGIN")
            tx = Tx(conn, self.backend)
            try:
                yield tx
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()
