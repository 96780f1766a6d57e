"""The ledger's side of the journal: every finalised or failed charge is journalled before it is returned.

With a journal attached (:meth:`Ledger.attach_journal`; the vault attaches its keyed journal at startup), the
transaction that finalises or fails a charge also records its id in ``journal_pending`` (and, for an answer, in
``gate_logged_charges``, so the gate's ``sync_charges`` does not journal it twice). After the commit, the
``ledger.charge`` event is appended (group-committed with concurrent ones) and only then does :meth:`finalise`
return; the ``journal_pending`` row is removed by the next transaction of the same process, without a commit of
its own. A crash between the commit and the append leaves the row behind: :meth:`JournalledCharges.recover`
(the vault's startup) journals every such charge whose event is missing. Pending reservations of dead processes
are kept as failed charges, and journalled as such.

A ``ledger.charge`` event holds: id, population, dataset, version, kind, epsilon, delta, analyst, run_id,
result_sha256 (``None`` for a failed charge), created and state (``answered`` or ``failed``). It never holds a
failure's reason, which may quote data-dependent text; that stays in the ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sandbox._private.shared.errors import NotFoundError

from .db import LedgerDB, Tx
from .owners import owner_alive, process_owner
from .records import ChargeRecord, DatasetRecord, KeptCharge

__all__ = ["CHARGE_EVENT", "ChargeJournal", "JournalledCharges", "charge_event"]

CHARGE_EVENT = "ledger.charge"


class ChargeJournal(Protocol):
    """Where finalised and failed charges are journalled (the vault's :class:`GroupAppender`)."""

    def append_many(self, events: Sequence[tuple[str, str, Mapping[str, Any]]]) -> object: ...


def charge_event(record: ChargeRecord | KeptCharge, population: str) -> tuple[str, str, dict[str, Any]]:
    """Return the journal event of a finalised (``answered``) or failed charge."""
    answered = isinstance(record, ChargeRecord)
    payload = {
        "id": record.id,
        "population": population,
        "dataset": record.dataset,
        "version": record.version,
        "kind": record.kind,
        "epsilon": record.epsilon,
        "delta": record.delta,
        "analyst": record.analyst,
        "run_id": record.run_id,
        "result_sha256": record.result_sha256 if isinstance(record, ChargeRecord) else None,
        "created": record.created,
        "state": "answered" if answered else "failed",
    }
    return record.analyst, CHARGE_EVENT, payload


class JournalledCharges:
    """Journal bookkeeping and crash recovery of the :class:`~sandbox._private.vault.ledger.ledger.Ledger`."""

    db: LedgerDB
    journal: ChargeJournal | None
    _journalled: list[str]

    if TYPE_CHECKING:  # provided by the store

        def result(self, result_id: str) -> ChargeRecord: ...
        def kept_charge(self, charge_id: str) -> KeptCharge: ...
        def dataset(self, name: str, version: int | None = None) -> DatasetRecord: ...

    @staticmethod
    def _abandon_sql(reservation_id: str) -> tuple[str, tuple[str, ...]]:
        """Return the statement that keeps a dead process's pending charge as failed (it returns the id if so)."""
        return (
            "UPDATE reservations SET state = 'failed', reason = ?, finished = ? WHERE id = ? AND state = 'pending' "
            "RETURNING id",
            (
                "abandoned: the process computing it ended before the answer was stored",
                datetime.now(UTC).isoformat(timespec="microseconds"),
                reservation_id,
            ),
        )

    def _mark_for_journal(self, tx: Tx, charges: Sequence[tuple[str, str]], *, in_charges: bool) -> None:
        """Record, in the committing transaction, that these charges' journal entries are still to be written.

        ``charges`` are ``(id, owner)`` pairs; ``in_charges``: they are stored answers, which the gate's
        ``sync_charges`` must not journal a second time.
        """
        if self.journal is None or not charges:
            return
        # queued (no rows wanted): on PostgreSQL they travel with the transaction's other statements, one round trip
        tx.send(
            f"INSERT INTO journal_pending (id, owner) VALUES {', '.join(['(?, ?)'] * len(charges))}",
            [x for pair in charges for x in pair],
        )
        if in_charges:
            tx.send(
                f"INSERT INTO gate_logged_charges (id) VALUES {', '.join(['(?)'] * len(charges))}",
                [charge_id for charge_id, _ in charges],
            )

    def _journal(self, events: list[tuple[str, str, dict[str, Any]]], ids: list[str]) -> None:
        if self.journal is None:
            return
        self.journal.append_many(events)
        self._journalled.extend(ids)

    def _drain(self, tx: Tx) -> None:
        """Remove the journal_pending rows of charges journalled since (no transaction of its own)."""
        if not self._journalled:
            return
        done, self._journalled = self._journalled, []
        for i in range(0, len(done), 200):
            part = done[i : i + 200]
            tx.send(f"DELETE FROM journal_pending WHERE id IN ({', '.join('?' * len(part))})", part)  # queued

    @contextmanager
    def _draining(self, **transaction: Any) -> Iterator[Tx]:
        """Open a write transaction (``LedgerDB.transaction`` arguments) that first runs :meth:`_drain`.

        If the transaction rolls back, the rows it would have removed are still to be removed by the next one.
        """
        drained = self._journalled[:]
        try:
            with self.db.transaction(**transaction) as tx:
                self._drain(tx)
                yield tx
        except BaseException:
            self._journalled.extend(drained)  # removing a row twice is harmless
            raise

    def recover(self, journalled_ids: Callable[[], set[str]] | None = None) -> list[str]:
        """Keep as failed every pending charge whose process died; journal charges a crash left unjournalled.

        Parameters
        ----------
        journalled_ids : callable, optional
            Returns the ids of the ``ledger.charge`` events in the journal (read only when a crash left
            charges whose journal entry may be missing).

        Returns
        -------
        list of str
            One line per action taken.
        """
        actions: list[str] = []
        dead = [
            r for r in self.db.read("SELECT id, owner FROM reservations WHERE state = 'pending'")
            if owner_alive(str(r[1])) is False
        ]  # fmt: skip
        unsure = [r for r in self.db.read("SELECT id, owner FROM journal_pending") if owner_alive(str(r[1])) is False]
        if not dead and not unsure:
            return actions  # the usual start: nothing to repair, nothing written
        abandoned: list[str] = []
        with self.db.transaction() as tx:
            self._drain(tx)
            for rid, owner in tx.execute("SELECT id, owner FROM reservations WHERE state = 'pending'"):
                if owner_alive(str(owner)) is False and tx.execute(*self._abandon_sql(str(rid))):
                    self._mark_for_journal(tx, [(str(rid), process_owner())], in_charges=False)
                    abandoned.append(str(rid))
                    actions.append(f"kept the charge of {rid} as failed: its process ended before it was answered")
            orphans = [
                str(i) for i, o in tx.execute("SELECT id, owner FROM journal_pending") if owner_alive(str(o)) is False
            ]
        if self.journal is None:
            return actions
        missing: list[str] = []
        if orphans:
            logged = journalled_ids() if journalled_ids is not None else set()
            missing = [i for i in orphans if i not in logged]
            actions += [f"journalled charge {i}, which a crash had left out of the journal" for i in missing]
        events = [self._event_of(i) for i in abandoned + missing]
        self._journal([e for e in events if e is not None], abandoned + orphans)
        with self.db.transaction() as tx:
            self._drain(tx)
        return actions

    def journal_unlogged(self, journal: ChargeJournal) -> int:
        """Journal every stored answer not journalled yet (a ledger from before journalling); return how many."""
        from .store import CHARGE_COLS

        with self.db.transaction(write=False) as tx:
            rows = tx.execute(
                f"SELECT {CHARGE_COLS} FROM charges WHERE id NOT IN (SELECT id FROM gate_logged_charges) "
                "ORDER BY created, id"
            )
            populations = {
                (str(r[0]), int(r[1])): str(r[2]) for r in tx.execute("SELECT name, version, population FROM datasets")
            }
        records = [ChargeRecord(*r) for r in rows]
        if not records:
            return 0
        journal.append_many([charge_event(r, populations[(r.dataset, r.version)]) for r in records])
        with self.db.transaction() as tx:
            for r in records:
                tx.send("INSERT INTO gate_logged_charges (id) VALUES (?)", (r.id,))
        return len(records)

    def _event_of(self, charge_id: str) -> tuple[str, str, dict[str, Any]] | None:
        try:
            rec: ChargeRecord | KeptCharge = self.result(charge_id)
        except NotFoundError:
            try:
                rec = self.kept_charge(charge_id)
            except NotFoundError:
                return None
        dataset = self.dataset(rec.dataset, rec.version)
        return charge_event(rec, dataset.population)
