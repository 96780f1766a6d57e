"""The ledger's charging transactions on SQLite and on a real PostgreSQL server (same code path).

Reference: the running totals are checked against the sum of every stored and kept charge; the races against the
bound "sum of charges <= budget" with exactly floor(remaining / ε) winners.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import pickle
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sandbox._private.shared.errors import AnswerPendingError, BudgetExceededError, IntegrityError, NotFoundError
from sandbox._private.vault.ledger import db as ledger_db
from sandbox._private.vault.ledger import schema
from sandbox._private.vault.ledger.ledger import (
    ChargeOutcome,
    ChargeRequest,
    ComputedAnswer,
    DatasetRecord,
    Ledger,
    Reservation,
    StaleVersions,
    lookup_statement,
)

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.sqlite")
    pg = request.getfixturevalue("postgres")
    return str(pg.fresh_database("t_" + request.node.name.split("[")[0][-40:].lower()))


def _dataset(
    ledger: Ledger, name: str = "households", eps: float = 1.0, delta: float = 1e-6, population: str = ""
) -> DatasetRecord:
    schema = '{"privacy_unit": "household"}'
    rec = DatasetRecord(
        name, ledger.next_version(name), "f" * 64, "s" * 64, schema, "/nowhere", eps, delta, "now", population
    )
    return ledger.add_dataset(rec)


def _answer(value: float = 1.0) -> Callable[[], ComputedAnswer]:
    return lambda: ComputedAnswer({"values": [value]}, {"true_count": [42]}, "laplace")


def _args(key: str, eps: float, analyst: str = "ann") -> dict[str, Any]:
    return {
        "kind": "aggregate",
        "query_key": key,
        "query": {"key": key},
        "epsilon": eps,
        "delta": 0.0,
        "analyst": analyst,
        "run_id": "run-1",
    }


def _charge(ledger: Ledger, ds: DatasetRecord, key: str, eps: float, analyst: str = "ann", **kw: Any) -> Any:
    kw.setdefault("compute", _answer())
    return ledger.charge(ds, **_args(key, eps, analyst), **kw)


def _consistent(ledger: Ledger, population: str) -> float:
    """The running total equals the sum over every stored and kept charge of the population; return it."""
    pop = ledger.population(population)
    tables = set(pop.tables)
    history = sum(c.epsilon for c in ledger.charges() if c.dataset in tables)
    history += sum(k.epsilon for k in ledger.kept_charges() if k.population == population)
    assert pop.epsilon_spent == pytest.approx(history, abs=1e-12)
    assert pop.answers == sum(1 for c in ledger.charges() if c.dataset in tables)
    return pop.epsilon_spent


def test_charge_stores_answer_with_hash_and_reuse_is_free(target: str) -> None:
    ledger = Ledger(target)
    ds = _dataset(ledger)
    first = _charge(ledger, ds, "q1", 0.25)
    assert not first.reused and first.charged_epsilon == 0.25
    assert first.epsilon_remaining == pytest.approx(0.75)
    stored = ledger.result(first.record.id)
    stored.verify()
    assert stored.private_json == '{"true_count":[42]}'
    assert stored.run_id == "run-1" and stored.analyst == "ann" and stored.mechanism == "laplace"

    calls: list[int] = []
    again = _charge(ledger, ds, "q1", 0.25, analyst="bob", compute=lambda: calls.append(1) or _answer(2.0)())
    assert again.reused and again.charged_epsilon == 0.0 and calls == []
    assert again.record == first.record
    status = ledger.budget(ds)
    assert status.epsilon_spent == pytest.approx(0.25) and status.answers == 1
    assert status.population == "households" and status.tables == ("households",)


def test_budget_exceeded_names_numbers_and_real_options(target: str) -> None:
    ledger = Ledger(target)
    ds = _dataset(ledger, eps=1.0)
    _charge(ledger, ds, "q1", 0.5)
    before = ledger.charges()
    with pytest.raises(BudgetExceededError, match=r"requested ε=0\.6, remaining ε=0\.5, short by 0\.1") as err:
        _charge(ledger, ds, "q2", 0.6)
    message = str(err.value)
    assert "population 'households' (tables households)" in message
    assert "Reuse a stored answer" in message and "smaller epsilon" in message and "privacy officer" in message
    assert "regist" not in message and "reviewer" not in message  # the old advice: re-register, ask a reviewer
    assert ledger.charges() == before and ledger.kept_charges() == []
    assert ledger.budget(ds).epsilon_remaining == pytest.approx(0.5)


def test_failed_computation_keeps_its_charge(target: str) -> None:
    ledger = Ledger(target)
    ds = _dataset(ledger)

    def boom() -> ComputedAnswer:
        raise RuntimeError("engine failed")

    with pytest.raises(RuntimeError, match="engine failed"):
        _charge(ledger, ds, "q1", 0.5, compute=boom)
    assert ledger.charges() == []
    [kept] = ledger.kept_charges()
    assert kept.state == "failed" and kept.reason == "RuntimeError: engine failed" and kept.epsilon == 0.5
    assert ledger.budget(ds).epsilon_spent == pytest.approx(0.5)
    # asking again is a new computation with new noise: charged again, never free
    again = _charge(ledger, ds, "q1", 0.25)
    assert not again.reused and _consistent(ledger, "households") == pytest.approx(0.75)


def test_cancelled_computation_keeps_its_charge(target: str) -> None:
    ledger = Ledger(target)
    ds = _dataset(ledger)

    def cancelled() -> ComputedAnswer:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _charge(ledger, ds, "q1", 0.3, compute=cancelled)
    assert [k.state for k in ledger.kept_charges()] == ["failed"]
    assert ledger.budget(ds).epsilon_spent == pytest.approx(0.3)


def test_reserve_finalise_fail_api(target: str) -> None:
    ledger = Ledger(target)
    ds = _dataset(ledger)
    res = ledger.reserve(ds, **_args("q1", 0.2))
    assert isinstance(res, Reservation) and res.epsilon_remaining == pytest.approx(0.8)
    assert ledger.budget(ds).epsilon_spent == pytest.approx(0.2)  # pending already counts as spent
    assert [k.state for k in ledger.kept_charges()] == ["pending"]
    # a plain value: the event loop can hand it to a worker process and back
    res = pickle.loads(pickle.dumps(res))
    out = ledger.finalise(res, _answer(3.0)())
    assert isinstance(out, ChargeOutcome) and not out.reused and out.record.id == res.id
    assert ledger.kept_charges() == [] and ledger.result(res.id).public_json == '{"values":[3.0]}'
    assert ledger.fail(res, "late") is None and ledger.kept_charges() == []  # fail after finalise: nothing
    stored = ledger.reserve(ds, **_args("q1", 0.2))
    assert isinstance(stored, ChargeOutcome) and stored.reused and stored.record.id == res.id

    other = ledger.reserve(ds, **_args("q2", 0.1))
    assert isinstance(other, Reservation)
    ledger.fail(other, "cancelled: client went away")
    ledger.fail(other, "again")  # idempotent
    with pytest.raises(IntegrityError, match=r"is failed, so its answer is not stored and is not returned"):
        ledger.finalise(other, _answer()())
    assert [r.id for r in ledger.charges()] == [res.id]
    assert _consistent(ledger, "households") == pytest.approx(0.3)


def test_finalise_many_stores_each_as_finalise_would(target: str, tmp_path: Path) -> None:
    """Reference: the same reservations finalised one by one in a second ledger (same figures, same messages)."""
    from sandbox._private.vault.outbox.journal import AuditLog, read_entries

    journal = AuditLog(tmp_path / "journal.jsonl")
    ledger = Ledger(target, journal=journal)
    ds = _dataset(ledger)
    res = [ledger.reserve(ds, **_args(f"b{i}", 0.05 * (i + 1))) for i in range(5)]
    assert all(isinstance(r, Reservation) for r in res)
    out = ledger.finalise_many([(r, _answer(float(i))()) for i, r in enumerate(res)])
    assert [o.record.id for o in out if isinstance(o, ChargeOutcome)] == [r.id for r in res]
    # every outcome states what remained after the whole batch (all of it was reserved before)
    assert {round(o.epsilon_remaining, 12) for o in out if isinstance(o, ChargeOutcome)} == {round(1.0 - 0.75, 12)}
    assert [ledger.result(r.id).public_json for r in res] == [f'{{"values":[{i:.1f}]}}' for i in range(5)]
    events = [e for e in read_entries(journal.path) if e.type == "ledger.charge"]
    assert [e.payload["id"] for e in events] == [r.id for r in res]  # journalled, in order, once each
    assert ledger.kept_charges() == [] and _consistent(ledger, "households") == pytest.approx(0.75)

    # one of a batch no longer pending: it gets finalise()'s own error, the others are stored
    a, b, c = (ledger.reserve(ds, **_args(f"c{i}", 0.01)) for i in range(3))
    assert isinstance(a, Reservation) and isinstance(b, Reservation) and isinstance(c, Reservation)
    ledger.fail(b, "cancelled: client went away")
    got = ledger.finalise_many([(a, _answer()()), (b, _answer()()), (c, _answer()())])
    assert isinstance(got[0], ChargeOutcome) and isinstance(got[2], ChargeOutcome)
    assert isinstance(got[1], IntegrityError)
    with pytest.raises(IntegrityError) as single:
        ledger.finalise(b, _answer()())
    assert str(got[1]) == str(single.value)
    assert {r.id for r in ledger.charges()} == {r.id for r in (*res, a, c)}
    assert [k.state for k in ledger.kept_charges()] == ["failed"]
    assert _consistent(ledger, "households") == pytest.approx(0.78)
    events = [e.payload["id"] for e in read_entries(journal.path) if e.type == "ledger.charge"]
    assert sorted(events[5:]) == sorted([a.id, b.id, c.id])  # the failed one journalled by fail(), once


def _outcomes(got: list[Any]) -> list[tuple[str, str, float]]:
    """What a caller sees of each reservation: its class, its error message (or reused or not), what remained."""
    out = []
    for g in got:
        if isinstance(g, Exception):
            out.append((type(g).__name__, str(g), 0.0))
        elif isinstance(g, ChargeOutcome):
            out.append(("stored", g.record.query_key, round(g.epsilon_remaining, 12)))
        else:
            out.append(("reserved", g.query_key, round(g.epsilon_remaining, 12)))
    return out


def test_reserve_many_gives_each_what_reserve_gives(target: str, tmp_path: Path) -> None:
    """Reference: the same requests reserved one by one, in order, on a second ledger of the same backend.

    Batches of fresh requests commit together; a batch with a stored answer, a twin of a pending charge, a
    twin inside the batch, an analyst over their limit and a population over its budget gives each request
    exactly what :meth:`Ledger.reserve` gives it in that order (same class, same message, same figures).
    """
    if target.startswith("postgresql"):
        reference_target = target.rsplit("/", 1)[0] + "/" + target.rsplit("/", 1)[1] + "_ref"
        import psycopg

        admin = target.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {reference_target.rsplit('/', 1)[1]}")
            conn.execute(f"CREATE DATABASE {reference_target.rsplit('/', 1)[1]}")
    else:
        reference_target = str(tmp_path / "reference.sqlite")
    from sandbox._private.vault.outbox.journal import AuditLog

    batched = Ledger(target, journal=AuditLog(tmp_path / "batched.jsonl"))
    one_by_one = Ledger(reference_target, journal=AuditLog(tmp_path / "one_by_one.jsonl"))
    datasets = {id(x): _dataset(x, eps=1.0) for x in (batched, one_by_one)}

    def request(x: Ledger, key: str, eps: float, analyst: str) -> ChargeRequest:
        limit = None if analyst == "eve" else 0.6  # eve has no analyst limit: only the population's budget
        return ChargeRequest(datasets[id(x)], "aggregate", key, {"key": key}, eps, 0.0, analyst, None, limit)

    rounds: list[list[tuple[str, float, str]]] = [
        [(f"fresh{i}", 0.05, "ann") for i in range(4)],  # all together
        [
            ("fresh0", 0.05, "ann"),  # stored? no: pending (not finalised yet): a twin, refused retryably
            ("new1", 0.1, "bob"),
            ("new1", 0.1, "cat"),  # a twin inside the batch
            ("big", 0.5, "ann"),  # over ann's limit of 0.6 (0.2 spent)
            ("new2", 0.05, "dan"),
        ],
        [("huge", 0.7, "eve"), ("last", 0.05, "fay")],  # over the population's budget, then one that fits
        [("r3a", 0.01, "gil"), ("r3b", 0.01, "hal")],  # together again, after an answer was journalled
    ]
    journalled = ""  # the last answer journalled (set after rounds 0 and 2)
    for i, batch in enumerate(rounds):
        got = batched.reserve_many([request(batched, k, e, a) for k, e, a in batch])
        if i in (1, 3):  # the journalled answer's bookkeeping row went with the first transaction after it
            assert batched.db.read("SELECT id FROM journal_pending WHERE id = ?", (journalled,)) == []
        ref: list[Any] = []
        for k, e, a in batch:
            try:
                ref.append(one_by_one.reserve_many([request(one_by_one, k, e, a)])[0])
            except Exception as exc:  # pragma: no cover - reserve_many returns errors, never raises them
                ref.append(exc)
        single = [one_by_one.reserve(datasets[id(one_by_one)], **_args(f"check{i}", 0.0001))]
        assert _outcomes(got) == _outcomes(ref), f"round {i}"
        assert isinstance(single[0], Reservation)  # reserve() is reserve_many() of one, raising its error
        batched.reserve(datasets[id(batched)], **_args(f"check{i}", 0.0001))
        if i == 0:  # answer one of them, so round 1 finds a stored one for fresh1 too
            for x, res in ((batched, got), (one_by_one, ref)):
                x.finalise(res[1], _answer()())
            rounds[1].insert(0, ("fresh1", 0.05, "ann"))
            journalled = got[1].id
        if i == 2:
            assert [o[0] for o in _outcomes(got)] == ["BudgetExceededError", "reserved"]
            for x, res in ((batched, got), (one_by_one, ref)):
                x.finalise(res[1], _answer()())
            journalled = got[1].id
    assert [o[0] for o in _outcomes(got)] == ["reserved", "reserved"]
    for x in (batched, one_by_one):
        assert x.population("households").epsilon_spent == pytest.approx(_consistent(x, "households"))
    assert batched.population("households").epsilon_spent == pytest.approx(
        one_by_one.population("households").epsilon_spent
    )


def _compute_in_child(conn: Any) -> None:
    conn.send(ComputedAnswer({"values": [7.0]}, {"true_count": [1]}, "geometric"))
    conn.close()


def test_compute_in_another_process_finalise_in_another_thread(target: str) -> None:
    ledger = Ledger(target)
    ds = _dataset(ledger)
    res = ledger.reserve(ds, **_args("q", 0.1))
    assert isinstance(res, Reservation)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_compute_in_child, args=(child,))
    proc.start()
    answer = parent.recv()
    proc.join(60)
    box: list[ChargeOutcome] = []
    t = threading.Thread(target=lambda: box.append(ledger.finalise(res, answer)))
    t.start()
    t.join(60)
    assert box and box[0].record.public_json == '{"values":[7.0]}'


def test_identical_concurrent_query_is_never_charged_twice(target: str) -> None:
    ledger = Ledger(target)
    ds = _dataset(ledger)
    first = ledger.reserve(ds, **_args("same", 0.4))
    assert isinstance(first, Reservation)
    with pytest.raises(AnswerPendingError, match="being answered right now") as err:
        ledger.reserve(ds, **_args("same", 0.4, analyst="bob"))
    assert err.value.retry_after > 0
    assert ledger.budget(ds).epsilon_spent == pytest.approx(0.4)

    box: list[ChargeOutcome] = []
    waiter = threading.Thread(target=lambda: box.append(_charge(ledger, ds, "same", 0.4, analyst="bob")))
    waiter.start()
    time.sleep(0.3)
    assert not box  # still waiting for the first computation
    done = ledger.finalise(first, _answer(5.0)())
    waiter.join(30)
    assert box[0].reused and box[0].charged_epsilon == 0.0 and box[0].record == done.record
    assert _consistent(ledger, "households") == pytest.approx(0.4)


def test_waiting_twin_gets_its_own_charge_when_the_first_fails(target: str) -> None:
    ledger = Ledger(target)
    ds = _dataset(ledger)
    first = ledger.reserve(ds, **_args("same", 0.3))
    assert isinstance(first, Reservation)
    box: list[ChargeOutcome] = []
    waiter = threading.Thread(target=lambda: box.append(_charge(ledger, ds, "same", 0.3, analyst="bob")))
    waiter.start()
    time.sleep(0.2)
    ledger.fail(first, "worker crashed")
    waiter.join(30)
    assert not box[0].reused and box[0].charged_epsilon == 0.3  # a new computation, charged once
    assert _consistent(ledger, "households") == pytest.approx(0.6)


def test_pending_charge_of_a_dead_process_is_kept_as_failed(target: str) -> None:
    ledger = Ledger(target)
    ds = _dataset(ledger)
    res = ledger.reserve(ds, **_args("q", 0.2))
    assert isinstance(res, Reservation)
    with ledger.db.transaction() as tx:  # as if another process had reserved it and died
        tx.execute("UPDATE reservations SET owner = ? WHERE id = ?", ("elsewhere-no:1:1", res.id))
    assert ledger.recover() == []  # another host: unknown, left pending
    with ledger.db.transaction() as tx:
        import socket

        tx.execute("UPDATE reservations SET owner = ? WHERE id = ?", (f"{socket.gethostname()}:999999999:1", res.id))
    actions = ledger.recover()
    assert actions == [f"kept the charge of {res.id} as failed: its process ended before it was answered"]
    [kept] = ledger.kept_charges()
    assert kept.state == "failed" and kept.reason is not None and kept.reason.startswith("abandoned")
    assert _consistent(ledger, "households") == pytest.approx(0.2)
    # the same question can now be asked (and is charged) again
    assert not _charge(ledger, ds, "q", 0.2).reused


def test_no_sum_over_history_on_a_charge(target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = Ledger(target)
    ds = _dataset(ledger, eps=100.0)
    for i in range(30):
        _charge(ledger, ds, f"warm-{i}", 0.01)
    seen: list[str] = []
    send, read = ledger_db.Tx.send, ledger_db.LedgerDB.read
    monkeypatch.setattr(ledger_db.Tx, "send", lambda self, sql, params=(): seen.append(sql) or send(self, sql, params))
    monkeypatch.setattr(
        ledger_db.LedgerDB, "read", lambda self, sql, params=(): seen.append(sql) or read(self, sql, params)
    )
    _charge(ledger, ds, "new", 0.01, analyst_limit=50.0)
    # every statement of the charge was seen (the lookup, the reservation, the finalisation), none sums or counts;
    # on PostgreSQL the last two are server-side functions, whose statements are read from their definitions
    text = " ".join(seen).upper()
    assert "FROM CHARGES" in text and "RESERVATIONS" in text, seen
    if ledger.db.backend == "postgresql":
        assert "SANDBOX_LEDGER_RESERVE" in text and "SANDBOX_LEDGER_FINALISE_MANY" in text, seen
        text += " ".join(schema.PG_FUNCTIONS).upper().replace("COUNT(*), ARRAY_AGG", "")  # the batch's own rows
    else:
        assert "INSERT INTO RESERVATIONS" in text and "INSERT INTO CHARGES" in text, seen
    assert "SUM(" not in text and "COUNT(" not in text


def _plan(ledger: Ledger, sql: str, params: tuple[Any, ...], *, generic: bool = False) -> list[str]:
    """The plan the backend runs ``sql`` with: SQLite's, PostgreSQL's (``generic``: a server-side function's)."""
    with ledger.db.transaction(write=False) as tx:
        if tx.backend == "sqlite":
            return [str(r[-1]) for r in tx.execute("EXPLAIN QUERY PLAN " + sql, params)]
        if not generic:
            return [str(r[0]) for r in tx.execute("EXPLAIN " + sql, params)]
        tx.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        numbered = sql.replace("?", "{}").format(*(f"${i}" for i in range(1, sql.count("?") + 1)))
        tx.execute(f"PREPARE lookup (text, integer, text) AS {numbered}")
        try:
            values = ", ".join(str(v) if isinstance(v, int) else f"'{v}'" for v in params)  # the test's own names
            return [str(r[0]) for r in tx.execute(f"EXPLAIN EXECUTE lookup ({values})")]
        finally:
            tx.execute("DEALLOCATE lookup")


def test_a_stored_answer_is_looked_up_by_its_own_key(target: str) -> None:
    """A question's stored answer is found through the ``(dataset, version, query_key)`` index, not by reading every
    answer of the dataset version; also on PostgreSQL before its statistics know the table's size (no ANALYZE).

    A ledger of an earlier sandbox of this schema had an index on ``(dataset, version, analyst)`` that PostgreSQL
    chose instead (each reservation read all 5,000 answers of a version: 2 ms): opening the ledger drops it.
    """
    ledger = Ledger(target)
    ds = _dataset(ledger, eps=1000.0)
    with ledger.db.transaction() as tx:
        for i in range(0, 2000, 100):
            rows = [(f"c{j}", ds.name, ds.version, f"k{j}", f"a{j % 16}") for j in range(i, i + 100)]
            row = "(?, ?, ?, 'aggregate', ?, '{}', 0.01, 0, 'laplace', '{}', 'h', '{}', ?, NULL, 'now')"
            tx.send("INSERT INTO charges VALUES " + ", ".join([row] * 100), [x for r in rows for x in r])
        tx.send("CREATE INDEX charges_by_analyst ON charges (dataset, version, analyst)")  # an earlier sandbox's
    reopened = Ledger(target)
    with reopened.db.transaction(write=False) as tx:
        assert not schema._has_index(tx, "charges_by_analyst")
    pg = reopened.db.backend == "postgresql"
    lone = "SELECT 1 FROM charges WHERE dataset = ? AND version = ? AND query_key = ?"  # schema.PG_RESERVE's
    plans = [_plan(reopened, lone, (ds.name, ds.version, "k77"), generic=True)] if pg else []
    keys = ["k77", "k78"]
    params = (json.dumps(keys), ds.name, ds.version) * 2 if pg else (ds.name, ds.version, *keys) * 2
    plans.append(_plan(reopened, lookup_statement(reopened.db.backend, len(keys)), params))  # Ledger._lookup_many's
    for plan in plans:
        scans = [line for line in plan if "Index Cond" in line or "SEARCH" in line or "Filter" in line]
        assert scans and all("query_key" in line and "Filter" not in line for line in scans), plan
    found = reopened.reserve_many([ChargeRequest(ds, "aggregate", k, {"key": k}, 0.01, 0.0, "ann", None) for k in keys])
    assert [f.record.id for f in found if isinstance(f, ChargeOutcome)] == ["c77", "c78"]  # the stored answers


def test_versions_taken_as_current_are_confirmed_by_the_lookup(target: str) -> None:
    """``reserve_many(current=...)`` confirms, in the lookup's own statement, the versions its caller did not read; a
    version that is no longer current (or a table that does not exist) raises before anything is written, also with
    no request at all (every check of a batch failed)."""
    ledger = Ledger(target)
    v1 = _dataset(ledger, eps=10.0)
    _dataset(ledger, "persons", eps=10.0, population="households")
    request = ChargeRequest(v1, "aggregate", "k1", {"key": "k1"}, 0.5, 0.0, "ann", None)
    reads: list[str] = []
    read = ledger.db.read
    ledger.db.read = lambda sql, params=(): (reads.append(sql), read(sql, params))[1]  # type: ignore[method-assign]
    (got,) = ledger.reserve_many([request], current={"households": 1, "persons": 1})
    assert isinstance(got, Reservation) and got.version == 1
    lookups = [sql for sql in reads if "'version'" in sql]
    assert len(lookups) == 1 and "'answer'" in lookups[0]  # one statement: the answers and the versions
    assert ledger.reserve_many([], current={"households": 1}) == []
    v2 = _dataset(ledger, eps=10.0)
    spent = ledger.population("households").epsilon_spent
    for requests, current in (
        ([replace(request, query_key="k2")], {"households": 1, "persons": 1}),
        ([], {"households": 1}),
        ([replace(request, dataset=v2, query_key="k2")], {"households": 2, "nobody": 1}),
    ):
        with pytest.raises(StaleVersions) as raised:
            ledger.reserve_many(requests, current=current)
        assert raised.value.names == (("nobody",) if "nobody" in current else ("households",))
    assert ledger.population("households").epsilon_spent == pytest.approx(spent)  # nothing was written
    with ledger.db.transaction(write=False) as tx:
        assert tx.one("SELECT COUNT(*) FROM reservations WHERE query_key = 'k2'")[0] == 0  # type: ignore[index]
    (again,) = ledger.reserve_many([replace(request, dataset=v2, query_key="k2")], current={"households": 2})
    assert isinstance(again, Reservation) and again.version == 2


def test_a_ledger_of_an_earlier_sandbox_gets_this_ones_functions(target: str) -> None:
    """Opening a ledger of this schema whose PostgreSQL functions are missing or of another version replaces them."""
    ledger = Ledger(target)
    ds = _dataset(ledger)
    _charge(ledger, ds, "before", 0.1)
    if ledger.db.backend == "sqlite":
        pytest.skip("a SQLite ledger has no server-side functions")
    older = schema.PG_RESERVE_MANY.replace("PERFORM set_config('synchronous_commit', 'off', true);", "")
    for change in ("DROP FUNCTION sandbox_ledger_finalise_many", older):
        with ledger.db.transaction() as tx:
            tx.execute(change)
        reopened = Ledger(target)
        with reopened.db.transaction(write=False) as tx:
            bodies = dict(tx.execute("SELECT proname, prosrc FROM pg_proc WHERE proname LIKE 'sandbox_ledger_%%'"))
        assert bodies == dict(schema._function_parts(sql) for sql in schema.PG_FUNCTIONS), change
    assert _charge(reopened, ds, "after", 0.1).record.query_key == "after"
    assert _consistent(reopened, ds.population) == pytest.approx(0.2)


def test_connections_are_pooled(target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = Ledger(target)
    ds = _dataset(ledger, eps=100.0)
    opened: list[int] = []
    original = ledger_db.LedgerDB._connect
    monkeypatch.setattr(ledger_db.LedgerDB, "_connect", lambda self: opened.append(1) or original(self))
    for i in range(40):
        _charge(ledger, ds, f"q{i}", 0.01)
    assert len(opened) <= 1  # one new connection at most (a read nested in a write borrows a second)


def test_per_analyst_limit_counts_per_population(target: str) -> None:
    ledger = Ledger(target)
    hh = _dataset(ledger, eps=1.0, population="pop")
    persons = _dataset(ledger, "persons", population="pop")
    _charge(ledger, hh, "q1", 0.3, analyst="ann", analyst_limit=0.4)
    with pytest.raises(
        BudgetExceededError, match=r"analyst budget on population 'pop' .* requested ε=0\.2, remaining ε=0\.1"
    ):
        _charge(ledger, persons, "q2", 0.2, analyst="ann", analyst_limit=0.4)
    assert _charge(ledger, persons, "q3", 0.2, analyst="bob", analyst_limit=0.4).charged_epsilon == 0.2
    status = ledger.budget(persons, analyst="ann", analyst_limit=0.4)
    assert status.analyst_epsilon_spent == pytest.approx(0.3)


def test_delta_budget(target: str) -> None:
    ledger = Ledger(target)
    ds = _dataset(ledger, delta=1e-6)
    with pytest.raises(BudgetExceededError, match=r"requested δ=2e-06, remaining δ=1e-06"):
        ledger.charge(ds, **{**_args("g", 0.1), "delta": 2e-6}, compute=_answer())
    assert ledger.charges() == [] and ledger.kept_charges() == []


def test_unknown_dataset_lists_known(target: str) -> None:
    ledger = Ledger(target)
    _dataset(ledger, "households")
    with pytest.raises(NotFoundError, match=r"No dataset 'persns'; registered: households\. Register it"):
        ledger.dataset("persns")


def test_tables_of_one_population_share_one_budget(target: str) -> None:
    ledger = Ledger(target)
    tables = [_dataset(ledger, name, eps=1.0, population="pop") for name in ("households", "persons", "signals")]
    assert {t.population for t in tables} == {"pop"}
    for i, t in enumerate(tables):
        _charge(ledger, t, f"q{i}", 0.3)
        for other in tables:  # a charge on any table lowers the one budget
            assert ledger.budget(other).epsilon_spent == pytest.approx(0.3 * (i + 1))
    with pytest.raises(BudgetExceededError, match=r"population 'pop' \(tables households, persons, signals\)"):
        _charge(ledger, tables[0], "q9", 0.2)
    assert ledger.budget(tables[2]).tables == ("households", "persons", "signals")


def test_every_version_shares_its_budget(target: str) -> None:
    ledger = Ledger(target)
    v1 = _dataset(ledger, eps=1.0)
    _charge(ledger, v1, "q", 1.0)
    v2 = _dataset(ledger, eps=1.0)  # re-registration: a new version, the same population
    assert (v1.version, v2.version) == (1, 2) and v2.population == v1.population
    assert ledger.dataset("households").version == 2
    assert ledger.budget(v2).epsilon_remaining == 0.0  # nothing restored
    with pytest.raises(BudgetExceededError):
        _charge(ledger, v2, "q", 0.1)  # same key on a new version is a new answer, and there is no ε left
    v3 = _dataset(ledger, eps=50.0)  # a bigger budget in the policy does not restore anything either
    assert v3.epsilon_budget == 1.0 and ledger.budget(v3).epsilon_remaining == 0.0


def test_population_rules_refuse_clearly(target: str) -> None:
    from sandbox._private.shared.errors import SchemaError

    ledger = Ledger(target)
    _dataset(ledger, "households", population="pop")
    with pytest.raises(SchemaError, match=r"belongs to population 'pop': every version of a dataset shares"):
        _dataset(ledger, "households", population="other")
    person_unit = DatasetRecord(
        "people", 1, "f" * 64, "s" * 64, '{"privacy_unit": "person"}', "/x", 1.0, 0.0, "now", "pop"
    )
    with pytest.raises(SchemaError, match=r"privacy unit 'person', but population 'pop' is protected per 'household'"):
        ledger.add_dataset(person_unit)
    assert [p.name for p in ledger.populations()] == ["pop"]


def _racer(target: str, i: int, table: str, barrier: Any, out: Any) -> None:
    ledger = Ledger(target)
    ds = ledger.dataset(table)
    barrier.wait()

    def slow() -> ComputedAnswer:
        time.sleep(0.02)  # a computation outside the transaction: others reserve meanwhile
        return _answer(float(i))()

    try:
        _charge(ledger, ds, f"race-{i}", 0.1, analyst=f"p{i}", compute=slow)
        out.put(("ok", i))
    except BudgetExceededError:
        out.put(("refused", i))
    except Exception as exc:  # pragma: no cover - reported by the assertion below
        out.put(("error", repr(exc)))


def _race(target: str, tables: list[str]) -> list[str]:
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(16), ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(target, i, tables[i % len(tables)], barrier, out)) for i in range(16)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    outcomes = [r[0] for r in results]
    assert "error" not in outcomes, results
    return outcomes


def test_sixteen_processes_race_for_the_last_of_a_budget(target: str) -> None:
    ledger = Ledger(target)
    ds = _dataset(ledger, eps=1.0)
    _charge(ledger, ds, "warm-up", 0.5)
    outcomes = _race(target, ["households"])
    status = ledger.budget(ds)
    assert outcomes.count("ok") == 5  # the last 0.5 buys exactly five queries of 0.1
    assert status.epsilon_spent <= 1.0 + 1e-9
    assert _consistent(ledger, "households") == pytest.approx(1.0)
    assert status.answers == 1 + outcomes.count("ok")


def test_sixteen_processes_over_three_tables_never_overspend_the_population(target: str) -> None:
    ledger = Ledger(target)
    tables = ["households", "persons", "signals"]
    first = [_dataset(ledger, name, eps=1.0, population="pop") for name in tables][0]  # noqa: RUF015
    _charge(ledger, first, "warm-up", 0.3)
    outcomes = _race(target, tables)
    assert outcomes.count("ok") == 7  # 0.7 left buys seven queries of 0.1, whichever tables they ask
    assert _consistent(ledger, "pop") <= 1.0 + 1e-9
    per_table = {t: len(ledger.charges(t)) for t in tables}
    assert sum(per_table.values()) == 1 + 7


def test_sqlite_lock_timeout_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from sandbox._private.shared.errors import SandboxError

    monkeypatch.setattr(ledger_db, "_BUSY_TIMEOUT_S", 0.2)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ds = _dataset(ledger)
    holder = sqlite3.connect(tmp_path / "ledger.sqlite", isolation_level=None)  # a writer without the lock file
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(SandboxError, match=r"stayed locked for 0 s .*another query or process holds it\. Retry"):
            _charge(ledger, ds, "q", 0.1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert ledger.charges() == [] and ledger.kept_charges() == []
