"""The served vault's ledger batches: what arrives while a batch runs goes in the next, each gets its own outcome.

A stand-in ledger records the batches it is given; the real ``Ledger.finalise_many`` is tested against
``Ledger.finalise`` in ``tests/test_ledger_transactions.py``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from sandbox._private.shared.errors import IntegrityError
from sandbox._private.vault.workers.flow import _Batched, _each


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


def test_each_keeps_every_items_own_exception() -> None:
    def reserve(name: str, eps: float) -> str:
        if eps > 1:
            raise ValueError(f"{name}: epsilon {eps} over the cap")
        return f"{name} reserved {eps}"

    async def run() -> list[Any]:
        batched: _Batched[tuple[str, float], str] = _Batched(_each(reserve))
        calls = [batched.submit((f"q{i}", eps)) for i, eps in enumerate((0.5, 2.0, 0.1))]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    got = asyncio.run(run())
    assert got[0] == "q0 reserved 0.5" and got[2] == "q2 reserved 0.1"
    assert isinstance(got[1], ValueError) and str(got[1]) == "q1: epsilon 2.0 over the cap"


def test_a_result_whose_caller_was_cancelled_goes_to_the_orphan_handler() -> None:
    """A request cancelled while its reservation was being made: the reservation is handed on (to be failed)."""
    started, release = threading.Event(), threading.Event()

    def slow(name: str) -> str:
        started.set()
        release.wait(10)
        return f"{name} reserved"

    orphans: list[str] = []

    async def run() -> list[str]:
        batched: _Batched[tuple[str], str] = _Batched(_each(slow), orphan=orphans.append)
        gone = asyncio.ensure_future(batched.submit(("q0",)))
        await asyncio.to_thread(started.wait, 10)
        gone.cancel()
        release.set()
        return [await batched.submit(("q1",))]

    assert asyncio.run(run()) == ["q1 reserved"]
    assert orphans == ["q0 reserved"]
