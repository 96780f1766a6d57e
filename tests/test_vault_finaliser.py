"""The served vault's ledger batches: what arrives while a batch runs goes in the next, each gets its own outcome.

A stand-in ledger records the batches it is given; the real ``Ledger.finalise_many`` and ``reserve_many`` are
tested against ``finalise`` and ``reserve`` in ``tests/test_ledger_transactions.py``; the vault's checked
reservations here, against the same requests one at a time.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from sandbox._private.shared.errors import IntegrityError
from sandbox._private.vault.workers.flow import ComputeService, _Batched


def _one_by_one(run: Any) -> Any:
    """A ``run_many`` that calls ``run`` on each item (the stand-in ledgers' batches below)."""
    return lambda items: [run(*item) for item in items]


class _Ledger:
    def __init__(self, fail_ids: set[str] = frozenset(), crash: bool = False) -> None:  # type: ignore[assignment]
        self.batches: list[list[str]] = []
        self.first = threading.Event()
        self.release = threading.Event()
        self.fail_ids, self.crash = fail_ids, crash

    def finalise_many(self, items: list[tuple[Any, Any]]) -> list[Any]:
        self.batches.append([r for r, _ in items])
        if len(self.batches) == 1:  # hold the first store until the others have queued
            self.first.set()
            self.release.wait(10)
        if self.crash and len(self.batches) == 2:
            raise OSError("disk full")
        return [IntegrityError(f"{r} not pending") if r in self.fail_ids else f"stored {r}" for r, _ in items]


async def _store_all(ledger: _Ledger, ids: list[str]) -> list[Any]:
    fin = _Batched(ledger.finalise_many)
    first = asyncio.ensure_future(fin.submit((ids[0], "answer")))
    await asyncio.to_thread(ledger.first.wait, 10)
    rest = [asyncio.ensure_future(fin.submit((i, "answer"))) for i in ids[1:]]
    await asyncio.sleep(0.05)
    ledger.release.set()
    return await asyncio.gather(first, *rest, return_exceptions=True)


def test_answers_that_finish_during_a_store_share_the_next_and_get_their_own_outcomes() -> None:
    ledger = _Ledger(fail_ids={"r3"})
    got = asyncio.run(_store_all(ledger, [f"r{i}" for i in range(6)]))
    assert ledger.batches == [["r0"], ["r1", "r2", "r3", "r4", "r5"]]
    assert got[:3] == ["stored r0", "stored r1", "stored r2"] and got[4:] == ["stored r4", "stored r5"]
    assert isinstance(got[3], IntegrityError) and str(got[3]) == "r3 not pending"


def test_a_failed_store_fails_every_charge_of_its_batch_and_the_finaliser_goes_on() -> None:
    ledger = _Ledger(crash=True)

    async def run() -> tuple[list[Any], Any]:
        fin = _Batched(ledger.finalise_many)
        first = asyncio.ensure_future(fin.submit(("r0", "answer")))
        await asyncio.to_thread(ledger.first.wait, 10)
        rest = [asyncio.ensure_future(fin.submit((i, "answer"))) for i in ("r1", "r2")]
        await asyncio.sleep(0.05)
        ledger.release.set()
        got = await asyncio.gather(first, *rest, return_exceptions=True)
        return list(got), await fin.submit(("r9", "answer"))

    got, after = asyncio.run(run())
    assert ledger.batches == [["r0"], ["r1", "r2"], ["r9"]]  # the second store raised
    assert got[0] == "stored r0"
    assert all(isinstance(g, OSError) and str(g) == "disk full" for g in got[1:])
    assert after == "stored r9"


def test_reserving_together_gives_each_request_its_own_outcome(tmp_path: Path, small_population: Path) -> None:
    """Reference: the same requests checked and reserved one at a time on a second vault with the same tables.

    One batch holds two fresh counts, a query the check refuses (an unknown column), one over the policy's
    per-query ε, a twin of the first (pending) and a third fresh count: each gets what it gets on its own.
    """
    from sandbox._private.vault.server import open_service
    from sandbox._private.vault.tokens import TokenInfo

    def service(name: str) -> ComputeService:
        vault = open_service(tmp_path / name)
        vault.registry.add_population(small_population)
        return ComputeService(vault, pool=None)  # type: ignore[arg-type]  # reservations only: no worker runs

    together, alone = service("together"), service("alone")
    caller = TokenInfo("t_1", "ann", "analyst", "now")
    bodies = [
        {"dataset": "households", "kind": "count", "by": ["household_type"], "epsilon": 0.1},
        {"dataset": "households", "kind": "count", "epsilon": 0.2},
        {"dataset": "households", "kind": "count", "by": ["no_such_column"], "epsilon": 0.1},
        {"dataset": "households", "kind": "count", "epsilon": 50.0},
        {"dataset": "households", "kind": "count", "by": ["household_type"], "epsilon": 0.1},
        {"dataset": "households", "kind": "count", "epsilon": 0.3},
    ]

    def items(cs: ComputeService, some: list[dict[str, Any]]) -> list[Any]:
        return [((lambda b=b: cs._check_query(b)), caller, None) for b in some]

    def seen(got: Any) -> tuple[str, str]:
        if isinstance(got, BaseException):
            return type(got).__name__, str(got)
        charge, res = got
        return type(res).__name__, f"{charge.query_key} {res.epsilon:g} {res.epsilon_remaining:.6f}"

    batch = [seen(g) for g in together._reserve_many(items(together, bodies))]
    ref = [seen(alone._reserve_many(items(alone, [b]))[0]) for b in bodies]
    assert batch == ref
    assert [k for k, _ in batch] == [
        "Reservation", "Reservation", "QueryError", "QueryError", "AnswerPendingError", "Reservation"
    ], batch  # fmt: skip


def test_a_result_whose_caller_was_cancelled_goes_to_the_orphan_handler() -> None:
    """A request cancelled while its reservation was being made: the reservation is handed on (to be failed)."""
    started, release = threading.Event(), threading.Event()

    def slow(name: str) -> str:
        started.set()
        release.wait(10)
        return f"{name} reserved"

    orphans: list[str] = []

    async def run() -> list[str]:
        batched: _Batched[tuple[str], str] = _Batched(_one_by_one(slow), orphan=orphans.append)
        gone = asyncio.ensure_future(batched.submit(("q0",)))
        await asyncio.to_thread(started.wait, 10)
        gone.cancel()
        release.set()
        return [await batched.submit(("q1",))]

    assert asyncio.run(run()) == ["q1 reserved"]
    assert orphans == ["q0 reserved"]


def test_requests_checked_together_read_each_tables_version_once(tmp_path: Path, small_population: Path) -> None:
    """One read of the current version per table for a batch; a version registered after the batch is seen next."""
    from sandbox._private.vault.server import open_service
    from sandbox._private.vault.tokens import TokenInfo

    vault = open_service(tmp_path / "ws")
    vault.registry.add_population(small_population)
    cs = ComputeService(vault, pool=None)  # type: ignore[arg-type]
    reads: list[str] = []
    read = vault.ledger.dataset

    def counted(name: str, version: int | None = None) -> Any:
        reads.append(name)
        return read(name, version)

    vault.ledger.dataset = counted  # type: ignore[method-assign]
    caller = TokenInfo("t_1", "ann", "analyst", "now")
    bodies = [{"dataset": "households", "kind": "count", "epsilon": 0.01 * (i + 1)} for i in range(5)]
    got = cs._reserve_many([((lambda b=b: cs._check_query(b)), caller, None) for b in bodies])
    assert reads == ["households"] and {g[1].version for g in got} == {1}  # type: ignore[index]
    vault.registry.add(
        "households", small_population / "households.parquet", small_population / "schema" / "households.json"
    )
    got = cs._reserve_many([((lambda: cs._check_query({**bodies[0], "epsilon": 0.5})), caller, None)])
    assert reads == ["households", "households"] and got[0][1].version == 2  # type: ignore[index]
    with vault.one_moment():  # the same block in the caller's thread: its versions are the moment's
        assert vault._records(("households",))["households"].version == 2
        assert vault._records(("households",))["households"].version == 2
    assert reads == ["households"] * 3
    # the next batch reads no version: it takes v2 as current, and the ledger's lookup confirms it
    got = cs._reserve_many([((lambda: cs._check_query({**bodies[0], "epsilon": 0.6})), caller, None)])
    assert reads == ["households"] * 3 and got[0][1].version == 2  # type: ignore[index]


def test_a_batch_checked_against_an_old_version_is_checked_again(tmp_path: Path, small_population: Path) -> None:
    """A version registered by another process after this vault's last read is used by the next batch, even when
    every request of that batch would fail its check against the older version: each gets what it gets on v2."""
    import json

    import pyarrow.parquet as pq

    from sandbox._private.vault.server import open_service
    from sandbox._private.vault.tokens import TokenInfo

    vault = open_service(tmp_path / "ws")
    vault.registry.add_population(small_population)
    cs = ComputeService(vault, pool=None)  # type: ignore[arg-type]
    caller = TokenInfo("t_1", "ann", "analyst", "now")
    count = {"dataset": "households", "kind": "count", "epsilon": 0.1}
    assert cs._reserve_many([((lambda: cs._check_query(count)), caller, None)])[0][1].version == 1  # type: ignore[index]
    # v2, with a column v1 does not have, registered by another process: this vault's memory of v1 is not touched
    table = pq.read_table(small_population / "households.parquet")
    pq.write_table(table.append_column("tier", table.column("household_type")), tmp_path / "households.parquet")
    schema = json.loads((small_population / "schema" / "households.json").read_text(encoding="utf-8"))
    schema["columns"].append({**next(c for c in schema["columns"] if c["name"] == "household_type"), "name": "tier"})
    (tmp_path / "households.json").write_text(json.dumps(schema), encoding="utf-8")
    other = open_service(tmp_path / "ws")
    other.registry.add("households", tmp_path / "households.parquet", tmp_path / "households.json")
    by_tier = {**count, "by": ["tier"], "epsilon": 0.2}
    got = cs._reserve_many([((lambda: cs._check_query(by_tier)), caller, None)])
    assert not isinstance(got[0], BaseException), got[0]  # checked against v2, where the column exists
    assert got[0][1].version == 2 and got[0][0].dataset.version == 2
