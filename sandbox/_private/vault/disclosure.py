"""Disclosure statistics of a DP table, computed when it is put in a release request rather than when it is asked.

A DP answer needs rows and sums per cell; the release gate and its reviewers also need, per cell, the households
behind it and (for sums, means and variances) the largest household contributions. Those take most of the exact
work of a national question (a pass per household and cell, against one scan for the answer), and most answers
are never released. So the vault answers with ``DPEngine.answer(..., disclosure=False)``: the stored private part
says ``"disclosure": "deferred"`` and names the dataset versions the answer read (:func:`deferred`). When the
answer is put in a release request, :func:`complete` computes the statistics on the same rows (each registered
file is checked against its sha256 when it is opened; the household bound is the answer's own) and hands the
gate the record with them. Nothing here is visible to an analyst: the gate's outcome rests on its DP tests, as
before, and the exact findings go to reviewers only.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from sandbox._private.shared.canonical import canonical_json
from sandbox._private.shared.errors import IntegrityError
from sandbox._private.shared.query import AggregateQuery

from .dp.engine import DPEngine
from .ledger.ledger import DatasetRecord
from .ledger.records import ChargeRecord
from .tables import OpenTables

__all__ = ["deferred", "is_deferred", "deferred_inputs", "completed", "Completer"]

DEFERRED = "deferred"


def deferred(private: Mapping[str, Any], records: Mapping[str, DatasetRecord]) -> dict[str, Any]:
    """Return an answer's private part with the dataset versions it read (when its statistics are deferred)."""
    out = dict(private)
    if out.get("disclosure") == DEFERRED:
        out["tables"] = {name: int(r.version) for name, r in sorted(records.items())}
    return out


def is_deferred(record: ChargeRecord) -> bool:
    """Whether a stored aggregate answer still lacks its disclosure statistics."""
    if record.kind != "aggregate":
        return False
    try:
        private = json.loads(record.private_json)
    except ValueError:
        return False
    return isinstance(private, dict) and private.get("disclosure") == DEFERRED


def deferred_inputs(record: ChargeRecord) -> tuple[AggregateQuery, dict[str, int], int]:
    """Return the query, the dataset versions it read and its household bound, of a deferred answer."""
    private = json.loads(record.private_json)
    versions = private.get("tables")
    if not isinstance(versions, dict) or not versions:
        raise IntegrityError(
            f"Result {record.id}: its disclosure statistics were deferred but it names no dataset versions; "
            "the ledger was changed outside the vault. Restore it from backup."
        )
    query = AggregateQuery.from_dict(json.loads(record.query_json))
    return query, {str(n): int(v) for n, v in versions.items()}, int(private["rows_per_unit"])


def completed(record: ChargeRecord, private: Mapping[str, Any], versions: Mapping[str, int]) -> ChargeRecord:
    """Return ``record`` with the full private part ``private`` (still naming the versions it read)."""
    return replace(record, private_json=canonical_json({**private, "tables": dict(versions)}))


class Completer:
    """Completes stored answers with their disclosure statistics (the vault's; a few recent ones kept in memory).

    This one computes in the calling thread (an in-process service); a served vault computes in a worker of its
    pool instead (``ComputeService.complete``).

    Parameters
    ----------
    dataset : callable
        ``dataset(name, version) -> DatasetRecord`` (the ledger's).
    tables : OpenTables
        The vault process's open tables.
    engine : callable
        Returns the DP engine of the policy in force.
    """

    def __init__(
        self,
        dataset: Callable[[str, int], DatasetRecord],
        tables: OpenTables,
        engine: Callable[[], DPEngine],
        size: int = 64,
    ) -> None:
        self._dataset, self._tables, self._engine, self._size = dataset, tables, engine, size
        self._done: OrderedDict[tuple[str, str], ChargeRecord] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, record: ChargeRecord) -> ChargeRecord:
        """Return ``record`` with its disclosure statistics (itself when it has them already)."""
        if not is_deferred(record):
            return record
        key = (record.id, record.private_json)
        with self._lock:
            hit = self._done.get(key)
        if hit is not None:
            return hit
        query, versions, k = deferred_inputs(record)
        records = {n: self._dataset(n, v) for n, v in versions.items()}
        catalog = self._tables.catalog(records, load=True)
        done = completed(record, self._engine().disclosure(query, catalog, k), versions)
        with self._lock:
            self._done[key] = done
            while len(self._done) > self._size:
                self._done.popitem(last=False)
        return done
