"""TEMPORARY: reserve / finalise / fail on a ledger that only has ``charge(compute=...)``.

Until the ledger's reserve/finalise API (branch h11-ledger) is merged, this runs ``charge`` in a thread whose
``compute`` waits for the worker's answer. It holds the ledger's transaction while the worker computes (the old
behaviour) and a failed computation is rolled back, not kept. Delete this module when the ledger has ``reserve``.
"""

from __future__ import annotations

import threading
from typing import Any

from ..ledger.ledger import ChargeOutcome, ComputedAnswer, DatasetRecord, Ledger

__all__ = ["reserve", "finalise", "fail"]


class _Held:
    def __init__(self) -> None:
        self.entered = threading.Event()
        self.answer: ComputedAnswer | BaseException | None = None
        self.given = threading.Event()
        self.done = threading.Event()
        self.outcome: ChargeOutcome | BaseException | None = None


def reserve(ledger: Ledger, dataset: DatasetRecord, **kw: Any) -> Any:
    held = _Held()

    def compute() -> ComputedAnswer:
        held.entered.set()
        held.given.wait()
        if isinstance(held.answer, BaseException):
            raise held.answer
        assert held.answer is not None
        return held.answer

    def run() -> None:
        try:
            held.outcome = ledger.charge(dataset, compute=compute, **kw)
        except BaseException as exc:
            held.outcome = exc
        finally:
            held.done.set()
            held.entered.set()

    threading.Thread(target=run, daemon=True).start()
    held.entered.wait()
    if held.done.is_set():
        if isinstance(held.outcome, BaseException):
            raise held.outcome
        return held.outcome
    return held


def finalise(held: _Held, answer: ComputedAnswer) -> ChargeOutcome:
    held.answer = answer
    held.given.set()
    held.done.wait()
    if isinstance(held.outcome, BaseException):
        raise held.outcome
    assert isinstance(held.outcome, ChargeOutcome)
    return held.outcome


def fail(held: _Held, reason: str) -> None:
    held.answer = RuntimeError(reason)
    held.given.set()
    held.done.wait()
