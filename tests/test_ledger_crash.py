"""SIGKILL a process while it reserves, computes and finalises charges: the ledger stays consistent, no charge lost.

A forked child charges queries in a loop against the ledger (with the keyed journal attached, as in the vault) and
reports on a pipe each id it reserved (``R``) and each answer it got back (``A``). The parent kills it

* at a chosen point: inside the reservation's transaction, between the reservation's commit and its durable
  return, during the computation, inside the finalising transaction, and between that commit and the journal
  entry (the child pauses there and says so with ``PAUSED``);
* and at random moments.

After every kill the vault's startup recovery runs, and then: no pending row is left; every reserved charge is
either a stored answer or kept as failed (never lost); every answer returned is stored; each population's running
total equals the sum of its charges; and the ledger matches the journal (``sandbox verify``'s cross-check).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _crash import fork, kill_and_read

from sandbox._private.vault.ledger import db as ledger_db
from sandbox._private.vault.ledger import ledger as ledger_mod
from sandbox._private.vault.ledger.crosscheck import check_ledger
from sandbox._private.vault.ledger.ledger import (
    CHARGE_EVENT,
    ChargeRequest,
    ComputedAnswer,
    DatasetRecord,
    Ledger,
    Reservation,
)
from sandbox._private.vault.outbox.journal import AuditLog, GroupAppender, read_entries, verify_log

PHASES = ["in-reserve", "reserve-committed", "compute", "in-finalise", "finalise-committed"]
RANDOM_KILLS = int(os.environ.get("SANDBOX_CRASH_LEDGER_KILLS", "12"))


def _pause(progress: int) -> None:
    os.write(progress, b"PAUSED\n")
    time.sleep(600)


def _pause_before_commit(function: str, progress: int) -> None:
    """Make the call of the PostgreSQL ``function`` stop after the server ran it, before it commits.

    The ledger calls it as one statement that commits on its own: killed while the server runs it, it commits (as
    in the phase after) or not. Not: here it runs inside a transaction, and the child is killed before the commit.
    """
    read = ledger_db.LedgerDB.read

    def read_then_pause(self: Any, sql: str, params: Any = ()) -> Any:
        if function in sql:
            with self.transaction() as tx:
                tx.execute(sql, params)
                _pause(progress)
        return read(self, sql, params)

    ledger_db.LedgerDB.read = read_then_pause  # type: ignore[method-assign]


def _arm(phase: str, progress: int) -> None:
    """Make the child stop at ``phase`` of its next charge (the parent kills it there)."""
    if phase == "in-reserve":  # the reservation's statements are sent, its transaction is open
        send = ledger_db.Tx.send

        def send_then_pause(self: Any, sql: str, params: Any = ()) -> Any:
            out = send(self, sql, params)
            if sql.startswith(
                ("UPDATE populations SET epsilon_spent", "SELECT outcome, remaining FROM sandbox_ledger")
            ):
                out()  # make sure the server has executed it
                _pause(progress)
            return out

        ledger_db.Tx.send = send_then_pause  # type: ignore[method-assign]
        _pause_before_commit("sandbox_ledger_reserve_many", progress)
    elif phase == "reserve-committed":  # committed (not yet synced: the finalise syncs it), not yet returned
        reserve = ledger_mod.Ledger.reserve

        def reserve_then_pause(self: Any, *args: Any, **kwargs: Any) -> Any:
            out = reserve(self, *args, **kwargs)
            _pause(progress)
            return out

        ledger_mod.Ledger.reserve = reserve_then_pause  # type: ignore[method-assign]
    elif phase == "in-finalise":
        send = ledger_db.Tx.send

        def send_then_pause_f(self: Any, sql: str, params: Any = ()) -> Any:
            out = send(self, sql, params)
            if sql.startswith("INSERT INTO charges"):
                _pause(progress)
            return out

        ledger_db.Tx.send = send_then_pause_f  # type: ignore[method-assign]
        _pause_before_commit("sandbox_ledger_finalise_many", progress)
    elif phase == "finalise-committed":  # the answer is stored, its journal entry not yet written
        journal = ledger_mod.Ledger._journal

        def journal_then_pause(self: Any, events: Any, ids: Any) -> None:
            if events and events[0][2].get("state") == "answered":
                _pause(progress)
            journal(self, events, ids)

        ledger_mod.Ledger._journal = journal_then_pause  # type: ignore[method-assign]


def charge_forever(progress: int, target: str, journal: str, phase: str | None, warm: int) -> None:
    ledger = Ledger(target)
    ledger.attach_journal(GroupAppender(AuditLog(journal)))
    tables = [ledger.dataset(t) for t in ("households", "persons", "signals")]
    answer = ComputedAnswer({"values": [1.0]}, {"true_count": [3]}, "geometric")
    for i in range(10_000):
        if phase is not None and i == warm:
            _arm(phase, progress)

        def compute(i: int = i) -> ComputedAnswer:
            if phase == "compute" and i == warm:
                _pause(progress)
            time.sleep(0.002)
            return answer

        ds = tables[i % 3]
        got = ledger.reserve(
            ds, kind="aggregate", query_key=f"{os.getpid()}-{i}", query={"i": i}, epsilon=0.01, delta=0.0,
            analyst="ann", run_id=None,
        )  # fmt: skip
        os.write(progress, f"R {got.id}\n".encode())  # type: ignore[union-attr]
        out = ledger.finalise(got, compute())  # type: ignore[arg-type]
        os.write(progress, f"A {out.record.id}\n".encode())


def charge_in_batches(progress: int, target: str, journal: str, batch: int) -> None:
    """What the served vault does: reserve ``batch`` charges together, compute, store their answers together."""
    ledger = Ledger(target)
    ledger.attach_journal(GroupAppender(AuditLog(journal)))
    tables = [ledger.dataset(t) for t in ("households", "persons", "signals")]
    answer = ComputedAnswer({"values": [1.0]}, {"true_count": [3]}, "geometric")
    for i in range(10_000):
        requests = [
            ChargeRequest(tables[(i + j) % 3], "aggregate", f"{os.getpid()}-{i}-{j}", {"i": i, "j": j}, 0.01, 0.0,
                          "ann", None)
            for j in range(batch)
        ]  # fmt: skip
        got = ledger.reserve_many(requests)
        assert all(isinstance(g, Reservation) for g in got), got
        os.write(progress, "".join(f"R {g.id}\n" for g in got).encode())  # type: ignore[union-attr]
        time.sleep(0.002)
        out = ledger.finalise_many([(g, answer) for g in got])  # type: ignore[misc]
        os.write(progress, "".join(f"A {o.record.id}\n" for o in out).encode())  # type: ignore[union-attr]


def _check(target: str, journal: Path, reports: list[str]) -> None:
    AuditLog(journal).recover()  # a kill during an append leaves a torn line: the vault repairs it first
    ledger = Ledger(target)
    ledger.attach_journal(GroupAppender(AuditLog(journal)))
    ids_in_journal: Callable[[], set[str]] = lambda: {  # noqa: E731
        str(e.payload["id"]) for e in read_entries(journal) if e.type == CHARGE_EVENT
    }
    ledger.recover(ids_in_journal)
    assert ledger.kept_charges(state="pending") == []
    stored = {c.id: c for c in ledger.charges()}
    kept = {k.id for k in ledger.kept_charges(state="failed")}
    reserved = [line.split()[1] for line in reports if line.startswith("R ")]
    answered = [line.split()[1] for line in reports if line.startswith("A ")]
    lost = [r for r in reserved if r not in stored and r not in kept]
    assert not lost, f"reserved charges lost by the crash: {lost}"
    assert set(answered) <= set(stored), "an answer was returned that is not stored"
    for c in stored.values():
        c.verify()
    pop = ledger.population("pop")
    history = sum(c.epsilon for c in stored.values()) + 0.01 * len(kept)
    assert pop.epsilon_spent == pytest.approx(history, abs=1e-9)
    assert verify_log(journal).ok
    check = check_ledger(target, read_entries(journal))
    assert check.ok, check.problems
    assert set(stored) | kept <= ids_in_journal(), "a charge the ledger kept is not in the journal"


@pytest.fixture(params=["sqlite", "postgresql"])
def setup(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    if request.param == "sqlite":
        target = str(tmp_path / "vault" / "ledger.sqlite")
    else:
        import hashlib

        name = "crash_" + hashlib.sha256(request.node.name.encode()).hexdigest()[:10]
        target = request.getfixturevalue("postgres").fresh_database(name)
    monkeypatch.setenv("_LEDGER_BACKEND", request.param)
    ledger = Ledger(target)
    for t in ("households", "persons", "signals"):
        schema = '{"privacy_unit": "household"}'
        ledger.add_dataset(DatasetRecord(t, 1, "f" * 64, "s" * 64, schema, "/x", 1000.0, 1e-6, "now", "pop"))
    (tmp_path / "vault").mkdir(exist_ok=True)
    return target, tmp_path / "vault" / "audit.jsonl"


def _wait_for_pause(fd: int, timeout: float = 60.0) -> bytes:
    import select

    data = b""
    deadline = time.monotonic() + timeout
    while b"\nPAUSED\n" not in b"\n" + data:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"the child never reached its pause: {data[-200:]!r}"
        chunk = os.read(fd, 65536)
        assert chunk, f"the child ended before its pause: {data[-200:]!r}"
        data += chunk
    return data


@pytest.mark.parametrize("phase", PHASES)
def test_sigkill_at_each_phase_keeps_the_charge(setup: tuple[str, Path], phase: str) -> None:
    target, journal = setup
    pid, fd = fork(charge_forever, target, str(journal), phase, 4)
    before = _wait_for_pause(fd)
    reports = (before + kill_and_read(pid, fd)).decode().split("\n")
    _check(target, journal, reports)
    ledger = Ledger(target)
    reserved = [line.split()[1] for line in reports if line.startswith("R ")]
    if phase == "in-reserve":  # the reservation rolled back: nothing charged for it, nothing pending
        assert len(reserved) == 4 and len(ledger.charges()) == 4 and ledger.kept_charges() == []
    elif phase == "reserve-committed":  # committed but never returned: kept as failed
        assert len(reserved) == 4 and len(ledger.charges()) == 4 and len(ledger.kept_charges(state="failed")) == 1
    elif phase in ("compute", "in-finalise"):  # reserved and returned, never answered: kept as failed
        assert len(reserved) == 5 and len(ledger.charges()) == 4, reports
        assert [k.id for k in ledger.kept_charges(state="failed")] == [reserved[-1]]
    else:  # stored but not returned, nor journalled: recovery journalled it
        assert len(reserved) == 5 and len(ledger.charges()) == 5 and ledger.kept_charges() == []
    assert ledger.population("pop").epsilon_spent == pytest.approx(
        0.01 * (len(ledger.charges()) + len(ledger.kept_charges()))
    )


def test_sigkill_at_random_moments(setup: tuple[str, Path]) -> None:
    target, journal = setup
    rng = random.Random(11)
    reports: list[str] = []
    for _ in range(RANDOM_KILLS):
        pid, fd = fork(charge_forever, target, str(journal), None, 0)
        time.sleep(rng.uniform(0.05, 0.6))
        reports += kill_and_read(pid, fd).decode().split("\n")
        _check(target, journal, reports)
    assert sum(line.startswith("A ") for line in reports) >= RANDOM_KILLS


def test_sigkill_during_batches_keeps_every_charge(setup: tuple[str, Path]) -> None:
    """Charges reserved and stored in batches of 3 (``reserve_many``, ``finalise_many``), killed at random moments."""
    target, journal = setup
    rng = random.Random(12)
    reports: list[str] = []
    for _ in range(RANDOM_KILLS):
        pid, fd = fork(charge_in_batches, target, str(journal), 3)
        time.sleep(rng.uniform(0.05, 0.6))
        reports += kill_and_read(pid, fd).decode().split("\n")
        _check(target, journal, reports)
    assert sum(line.startswith("A ") for line in reports) >= 3 * RANDOM_KILLS
