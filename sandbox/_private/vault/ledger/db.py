"""A small DB-API adapter so the ledger runs one code path on SQLite and on PostgreSQL, with pooled connections.

The ledger writes its SQL once, with ``?`` placeholders; :class:`Tx` turns them into ``%s`` for psycopg. Every
:meth:`LedgerDB.transaction` borrows a pooled connection, takes the write lock the backend offers and commits or
rolls back as one unit; a write transaction is durable when its block exits. Transactions are short (the ledger
never computes inside one), and no lock is held while a commit waits for the disk:

* SQLite: one connection per thread (a nested transaction on the same thread borrows a second one). Writers
  queue first on a process lock and on ``flock`` of ``<ledger>.lock`` (the kernel hands the lock to the next
  waiter at once, where SQLite's busy handler would sleep 1-100 ms), then ``BEGIN IMMEDIATE`` takes SQLite's
  own write lock (and still waits, with the busy timeout, for a writer that does not use the lock file). WAL
  mode with ``synchronous=NORMAL``: COMMIT appends to the WAL and releases the lock; then one ``fdatasync`` of
  the WAL, shared by every thread of the process that committed meanwhile, makes it durable
  (:meth:`LedgerDB._barrier`). Readers never wait for writers.
* PostgreSQL: a pool of up to ``pool_size`` connections shared by the threads of the process, each transaction
  in pipeline mode (statements queued together: one round trip where they used to cost one each). A ``hot``
  transaction (the reservation, which holds the population's row lock) commits with
  ``synchronous_commit=off``, releasing the lock at once, then waits for the WAL flush in a second transaction
  that PostgreSQL groups with the flushes of concurrent commits. A connection that broke is dropped.

Both pools notice a ``fork``: the child opens its own connections and never touches (or closes) the parent's.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sandbox._private.shared.errors import SandboxError

__all__ = ["LedgerDB", "Tx"]

_BUSY_TIMEOUT_S = 60.0
_PG_POOL_SIZE = 16
_inherited: list[Any] = []  # connections of a parent process: kept referenced so the child never closes them


class Tx:
    """One open transaction: statements with ``?`` placeholders, rows come back as tuples.

    :meth:`send` queues a statement and returns a function that gives its rows. On PostgreSQL the transaction
    runs in pipeline mode, so queued statements travel together and the first function called waits for all of
    them (one round trip); on SQLite every statement runs at once. :meth:`execute` is ``send(...)()``.
    """

    def __init__(self, conn: Any, backend: str, pipeline: Any = None) -> None:
        self._conn = conn
        self.backend = backend
        self._pipeline = pipeline

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.backend == "postgresql" else sql

    def send(self, sql: str, params: Sequence[Any] = ()) -> Callable[[], list[tuple[Any, ...]]]:
        cur = self._conn.execute(self._sql(sql), tuple(params))
        if self.backend == "sqlite":
            rows = [] if cur.description is None else [tuple(r) for r in cur.fetchall()]
            return lambda: rows

        def fetch() -> list[tuple[Any, ...]]:
            if cur.pgresult is None and self._pipeline is not None:
                self._pipeline.sync()  # one round trip for everything queued so far
            return [] if cur.description is None else [tuple(r) for r in cur.fetchall()]

        return fetch

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.send(sql, params)()

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = self.execute(sql, params)
        return rows[0] if rows else None

    @property
    def lock_clause(self) -> str:
        """Row-lock suffix for a ``SELECT`` (PostgreSQL); SQLite already holds the database write lock."""
        return " FOR UPDATE" if self.backend == "postgresql" else ""


class LedgerDB:
    """Pooled connections to the ledger: a SQLite file path or a ``postgresql://`` URL.

    Parameters
    ----------
    target : str or Path
        ``postgresql://user@host:port/db`` (or ``postgres://``) selects PostgreSQL; anything else is a SQLite
        file path, created on first use.
    pool_size : int
        PostgreSQL only: the most connections this process keeps open at once.
    """

    def __init__(self, target: str | Path, *, pool_size: int = _PG_POOL_SIZE) -> None:
        text = str(target)
        if text.startswith(("postgresql://", "postgres://")):
            self.backend = "postgresql"
            self.url = text
        else:
            self.backend = "sqlite"
            self.url = str(Path(text))
            Path(self.url).parent.mkdir(parents=True, exist_ok=True)
        self.pool_size = pool_size
        self._reset()

    def __repr__(self) -> str:
        where = self.url if self.backend == "sqlite" else self.url.split("@")[-1]
        return f"LedgerDB({self.backend}: {where})"

    # -- pools ------------------------------------------------------------------------------------------------
    def _reset(self) -> None:
        """(Re)create the pools for the current process (at creation, and in a forked child)."""
        old = self.__dict__.get("_idle")
        if old is not None:
            _inherited.append(old)
        self._pid = os.getpid()
        self._local = threading.local()  # SQLite: this thread's idle connections
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()  # PostgreSQL: idle connections of the process
        self._slots = threading.BoundedSemaphore(self.pool_size)
        self._write_lock = threading.RLock()
        self._lock_fd: int | None = None
        self._sync = _SyncState()
        weakref.finalize(self, _close_idle, self._idle, self._pid)

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:
            _inherited.append(getattr(self._local, "idle", None))
            self._reset()

    def _connect(self) -> Any:
        if self.backend == "sqlite":
            conn = sqlite3.connect(self.url, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # commits are made durable by _barrier, outside the lock
            conn.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}")
            return conn
        import psycopg

        try:
            pg = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            # no server-side prepared statements: after a pipeline aborts (a refused reservation among several),
            # psycopg's record of them no longer matches the server's ("prepared statement _pg3_N does not exist")
            pg.prepare_threshold = None
            return pg
        except psycopg.OperationalError as exc:
            raise SandboxError(
                f"Cannot connect to the ledger database {self!r}: {str(exc).strip()}. "
                "Check --ledger-url and that the server is running."
            ) from None

    @contextmanager
    def _borrow(self) -> Iterator[Any]:
        self._check_fork()
        if self.backend == "sqlite":
            idle: list[Any] = self._local.__dict__.setdefault("idle", [])
            conn = idle.pop() if idle else self._connect()
            try:
                yield conn
            finally:
                idle.append(conn)
            return
        if not self._slots.acquire(timeout=_BUSY_TIMEOUT_S):
            raise SandboxError(
                f"All {self.pool_size} ledger connections of this process stayed busy for {_BUSY_TIMEOUT_S:.0f} s; "
                "retry, and if it persists look for stuck requests."
            )
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = self._connect()
            try:
                yield conn
            except BaseException:
                if conn.closed or conn.broken:
                    conn = None
                raise
            finally:
                if conn is not None and not conn.closed:
                    self._idle.put(conn)
        finally:
            self._slots.release()

    def close(self) -> None:
        """Close the idle connections of this process (the pools refill on the next transaction)."""
        if os.getpid() != self._pid:
            return
        for conn in self._local.__dict__.pop("idle", []):
            conn.close()
        _close_idle(self._idle, self._pid)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- transactions -----------------------------------------------------------------------------------------
    @contextmanager
    def _sqlite_writer(self) -> Iterator[None]:
        """Queue on the process lock and the lock file, so waiting writers are woken in turn, never polled."""
        with self._write_lock:
            depth = self._local.__dict__.get("depth", 0)
            if depth == 0:
                if self._lock_fd is None:
                    self._lock_fd = os.open(self.url + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth = depth
                if depth == 0 and self._lock_fd is not None:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @contextmanager
    def transaction(self, *, write: bool = True, hot: bool = False, durable: bool = True) -> Iterator[Tx]:
        """Borrow a connection and open a transaction; commit on success, roll back on any exception.

        A write transaction is durable when the block exits. ``hot`` marks a transaction that holds a lock
        every charge needs (the population's row): on PostgreSQL it commits without waiting for the WAL flush,
        which releases the row lock at once, and then waits for the flush outside the lock (grouped with the
        flushes of concurrent transactions). SQLite always works that way (see :meth:`_barrier`).

        ``durable=False``: the block's commit is written (to the WAL, which survives a killed process) but not
        waited for on disk; it becomes durable with the next durable write transaction, whose sync covers every
        earlier commit (SQLite's WAL is synced whole; a PostgreSQL commit flushes the WAL up to its own record).
        For a write that nothing outside the vault observes before a later durable write of the same charge.
        """
        with self._borrow() as conn:
            if self.backend == "postgresql":
                yield from _run_pipelined(conn, hot=write and hot, wait_flush=durable)
                return
            if not write:
                conn.execute("BEGIN")
                yield from _run(conn, Tx(conn, self.backend))
                return
            with self._sqlite_writer():
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    raise SandboxError(
                        f"The ledger {self.url} stayed locked for {_BUSY_TIMEOUT_S:.0f} s ({exc}); another query or "
                        "process holds it. Retry; if it persists, check for a stuck `sandbox` process."
                    ) from None
                yield from _run(conn, Tx(conn, self.backend))
            if durable:
                self._barrier()

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on its own, no transaction around it: one round trip.

        A read; or, on PostgreSQL, a call of one of the ledger's functions, which is then its own transaction
        (committed when the statement ends, durably unless the function says otherwise).
        """
        with self._borrow() as conn:
            cur = conn.execute(Tx(conn, self.backend)._sql(sql), tuple(params))
            return [] if cur.description is None else [tuple(r) for r in cur.fetchall()]

    def is_unique_violation(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a unique-constraint violation of this backend."""
        if self.backend == "sqlite":
            return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)
        import psycopg

        return isinstance(exc, psycopg.errors.UniqueViolation)

    def _barrier(self) -> None:
        """Make every SQLite commit of this process so far durable: one ``fdatasync`` of the WAL for all waiters.

        Connections run with ``synchronous=NORMAL``, so COMMIT appends to the WAL and releases the write lock
        without syncing; the sync happens here, outside the lock. A thread that committed before a sync began is
        covered by it; otherwise it starts (or waits for) the next one, so N threads committing together cost one
        ``fdatasync``, and other processes' writers are never blocked by it. (Checkpoints sync the WAL before
        copying it and the database after: a WAL that was reset holds nothing this sync still owes.)
        """
        sync = self._sync
        with sync.cond:
            sync.requested += 1
            ticket = sync.requested
            while sync.done < ticket:
                if sync.running:
                    sync.cond.wait()
                    continue
                sync.running, target = True, sync.requested
                sync.cond.release()
                synced = False
                try:
                    _fdatasync(self.url + "-wal")
                    synced = True
                finally:
                    sync.cond.acquire()
                    sync.running = False
                    if synced:
                        sync.done = max(sync.done, target)
                    sync.cond.notify_all()


class _SyncState:
    """Tickets of the SQLite group sync: commits requested, commits made durable, and whether a sync runs."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.requested = 0
        self.done = 0
        self.running = False


def _fdatasync(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # the last connection checkpointed (and synced) the WAL into the database
        return
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _close_idle(idle: queue.LifoQueue[Any], pid: int) -> None:
    """Close a garbage-collected pool's idle PostgreSQL connections (never a parent's, in a forked child)."""
    if os.getpid() != pid:
        return
    while True:
        try:
            idle.get_nowait().close()
        except queue.Empty:
            return


def _run_pipelined(conn: Any, *, hot: bool, wait_flush: bool = True) -> Iterator[Tx]:
    """Run a PostgreSQL transaction in pipeline mode.

    ``hot``: commit at once, then wait for the flush outside the lock, unless ``wait_flush`` is false (then a later
    synchronous commit flushes it).
    """
    try:
        with conn.pipeline() as pipeline:
            conn.execute("BEGIN")
            if hot:
                conn.execute("SET LOCAL synchronous_commit TO OFF")
            yield Tx(conn, "postgresql", pipeline)
            conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):  # out of pipeline mode now; a broken connection is dropped
            conn.execute("ROLLBACK")
        raise
    if hot and wait_flush:  # a transaction that writes WAL commits synchronously, flushing all WAL before it
        with conn.pipeline():
            conn.execute("BEGIN")
            conn.execute("SELECT pg_logical_emit_message(true, 'sandbox.ledger', '')")
            conn.execute("COMMIT")


def _run(conn: Any, tx: Tx) -> Iterator[Tx]:
    try:
        yield tx
    except BaseException:
        with contextlib.suppress(Exception):  # the connection itself broke: the original error is the one to raise
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
