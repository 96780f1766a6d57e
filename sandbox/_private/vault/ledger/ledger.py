"""The privacy ledger: registered datasets, their budgets, and every DP answer with its charge.

All writes go through this module; the one that matters is :meth:`Ledger.charge`, a single transaction that

1. locks the dataset row (SQLite ``BEGIN IMMEDIATE``; PostgreSQL ``SELECT ... FOR UPDATE``),
2. returns the stored answer at zero cost when the same canonical query was answered on the same dataset
   version before (DESIGN invariant 3: no averaging attacks),
3. otherwise checks the remaining budget of the dataset and, if the policy sets one, of the analyst,
4. computes the DP answer while holding the lock, inserts the row (charge and answer together) and commits,

and only then hands the answer back (invariant 2). A charge is therefore recorded exactly when its answer is
stored, concurrent charges serialise, and a refused or failed query leaves the ledger unchanged.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox._private.shared.canonical import canonical_json, sha256_hex
from sandbox._private.shared.errors import BudgetExceededError, NotFoundError

from .db import LedgerDB, Tx
from .records import BudgetStatus, ChargeOutcome, ChargeRecord, ComputedAnswer, DatasetRecord

__all__ = [
    "Ledger",
    "DatasetRecord",
    "ChargeRecord",
    "ComputedAnswer",
    "ChargeOutcome",
    "BudgetStatus",
]

_EPS_TOL = 1e-9  # float slack when comparing a sum of charges with a budget

_DDL = (
    """CREATE TABLE IF NOT EXISTS datasets (
        name TEXT NOT NULL, version INTEGER NOT NULL, files_sha256 TEXT NOT NULL, schema_sha256 TEXT NOT NULL,
        schema_json TEXT NOT NULL, path TEXT NOT NULL, epsilon_budget DOUBLE PRECISION NOT NULL,
        delta_budget DOUBLE PRECISION NOT NULL, created TEXT NOT NULL, PRIMARY KEY (name, version))""",
    """CREATE TABLE IF NOT EXISTS charges (
        id TEXT PRIMARY KEY, dataset TEXT NOT NULL, version INTEGER NOT NULL, kind TEXT NOT NULL,
        query_key TEXT NOT NULL, query_json TEXT NOT NULL, epsilon DOUBLE PRECISION NOT NULL,
        delta DOUBLE PRECISION NOT NULL, mechanism TEXT NOT NULL, public_json TEXT NOT NULL,
        result_sha256 TEXT NOT NULL, private_json TEXT NOT NULL, analyst TEXT NOT NULL, run_id TEXT,
        created TEXT NOT NULL, UNIQUE (dataset, version, query_key),
        FOREIGN KEY (dataset, version) REFERENCES datasets (name, version))""",
    "CREATE INDEX IF NOT EXISTS charges_by_analyst ON charges (dataset, version, analyst)",
)
_CHARGE_COLS = (
    "id, dataset, version, kind, query_key, query_json, epsilon, delta, mechanism, public_json, result_sha256, "
    "private_json, analyst, run_id, created"
)
_DATASET_COLS = "name, version, files_sha256, schema_sha256, schema_json, path, epsilon_budget, delta_budget, created"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _short(what: str, requested: float, remaining: float) -> str:
    return f"requested {what}={requested:.6g}, remaining {what}={remaining:.6g}, short by {requested - remaining:.6g}"


class Ledger:
    """The ledger of one vault (SQLite file or PostgreSQL URL); see the module docstring.

    Parameters
    ----------
    target : str, Path or LedgerDB
        SQLite file path or ``postgresql://`` URL.
    """

    def __init__(self, target: str | Path | LedgerDB) -> None:
        self.db = target if isinstance(target, LedgerDB) else LedgerDB(target)
        with self.db.transaction() as tx:
            for stmt in _DDL:
                tx.execute(stmt)

    # -- datasets -----------------------------------------------------------------------------------------
    def next_version(self, name: str) -> int:
        with self.db.transaction(write=False) as tx:
            row = tx.one("SELECT MAX(version) FROM datasets WHERE name = ?", (name,))
        return int(row[0]) + 1 if row and row[0] is not None else 1

    def add_dataset(self, record: DatasetRecord) -> DatasetRecord:
        with self.db.transaction() as tx:
            tx.execute(
                f"INSERT INTO datasets ({_DATASET_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.name,
                    record.version,
                    record.files_sha256,
                    record.schema_sha256,
                    record.schema_json,
                    record.path,
                    record.epsilon_budget,
                    record.delta_budget,
                    record.created,
                ),
            )
        return record

    def datasets(self) -> list[DatasetRecord]:
        """Return the latest version of every dataset, by name."""
        with self.db.transaction(write=False) as tx:
            rows = tx.execute(
                f"SELECT {_DATASET_COLS} FROM datasets d WHERE version = "
                "(SELECT MAX(version) FROM datasets e WHERE e.name = d.name) ORDER BY name"
            )
        return [DatasetRecord(*r) for r in rows]

    def dataset(self, name: str, version: int | None = None) -> DatasetRecord:
        """Return a dataset version (the latest by default); the error lists the datasets that exist."""
        with self.db.transaction(write=False) as tx:
            if version is None:
                row = tx.one(
                    f"SELECT {_DATASET_COLS} FROM datasets WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)
                )
            else:
                row = tx.one(f"SELECT {_DATASET_COLS} FROM datasets WHERE name = ? AND version = ?", (name, version))
        if row is None:
            known = ", ".join(d.name for d in self.datasets()) or "none"
            raise NotFoundError(
                f"No dataset {name!r}{'' if version is None else f' version {version}'}; registered: {known}. "
                "Register it with `sandbox dataset add NAME PATH --schema FILE`."
            )
        return DatasetRecord(*row)

    # -- charging -----------------------------------------------------------------------------------------
    def charge(
        self,
        dataset: DatasetRecord,
        *,
        kind: str,
        query_key: str,
        query: Mapping[str, Any],
        epsilon: float,
        delta: float,
        analyst: str,
        run_id: str | None,
        compute: Callable[[], ComputedAnswer],
        analyst_limit: float | None = None,
    ) -> ChargeOutcome:
        """Charge and answer one query in a single transaction (see the module docstring).

        Raises
        ------
        BudgetExceededError
            If the dataset's (or the analyst's) remaining ε or δ is smaller than the request; nothing is written.
        """
        with self.db.transaction() as tx:
            locked = tx.one(
                f"SELECT epsilon_budget, delta_budget FROM datasets WHERE name = ? AND version = ?{tx.lock_clause}",
                (dataset.name, dataset.version),
            )
            if locked is None:
                raise NotFoundError(f"Dataset {dataset.name!r} version {dataset.version} is not registered.")
            existing = tx.one(
                f"SELECT {_CHARGE_COLS} FROM charges WHERE dataset = ? AND version = ? AND query_key = ?",
                (dataset.name, dataset.version, query_key),
            )
            eps_spent = _spent(tx, dataset)[0]
            if existing is not None:
                return ChargeOutcome(ChargeRecord(*existing), True, max(0.0, float(locked[0]) - eps_spent))
            self._check_budget(tx, dataset, float(locked[0]), float(locked[1]), epsilon, delta, analyst, analyst_limit)
            answer = compute()
            record = self._record(dataset, kind, query_key, query, epsilon, delta, analyst, run_id, answer)
            tx.execute(
                f"INSERT INTO charges ({_CHARGE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                tuple(record.__dict__[c.strip()] for c in _CHARGE_COLS.split(",")),
            )
        return ChargeOutcome(record, False, max(0.0, float(locked[0]) - eps_spent - record.epsilon))

    @staticmethod
    def _record(
        dataset: DatasetRecord,
        kind: str,
        query_key: str,
        query: Mapping[str, Any],
        epsilon: float,
        delta: float,
        analyst: str,
        run_id: str | None,
        answer: ComputedAnswer,
    ) -> ChargeRecord:
        pub = canonical_json(dict(answer.public))
        return ChargeRecord(
            id="r_" + secrets.token_urlsafe(18),
            dataset=dataset.name,
            version=dataset.version,
            kind=kind,
            query_key=query_key,
            query_json=canonical_json(dict(query)),
            epsilon=float(epsilon),
            delta=float(delta),
            mechanism=answer.mechanism,
            public_json=pub,
            result_sha256=sha256_hex(pub),
            private_json=canonical_json(dict(answer.private)),
            analyst=analyst,
            run_id=run_id,
            created=_now(),
        )

    @staticmethod
    def _check_budget(
        tx: Tx,
        dataset: DatasetRecord,
        eps_total: float,
        delta_total: float,
        epsilon: float,
        delta: float,
        analyst: str,
        analyst_limit: float | None,
    ) -> None:
        eps_spent, delta_spent = _spent(tx, dataset)
        eps_left, delta_left = eps_total - eps_spent, delta_total - delta_spent
        where = f"dataset {dataset.name!r} v{dataset.version}"
        if epsilon > eps_left + _EPS_TOL:
            raise BudgetExceededError(
                f"Privacy budget of {where} exceeded: {_short('ε', epsilon, max(eps_left, 0.0))}. Ask for a "
                "smaller epsilon, reuse a stored answer, or ask a reviewer to register a new dataset version."
            )
        if delta > delta_left + _EPS_TOL * 1e-6:
            raise BudgetExceededError(
                f"Privacy budget of {where} exceeded: {_short('δ', delta, max(delta_left, 0.0))}. Use a pure-DP "
                "query (delta=0) or ask a reviewer to register a new dataset version."
            )
        if analyst_limit is None:
            return
        row = tx.one(
            "SELECT COALESCE(SUM(epsilon), 0) FROM charges WHERE dataset = ? AND version = ? AND analyst = ?",
            (dataset.name, dataset.version, analyst),
        )
        mine_left = analyst_limit - float(row[0] if row else 0.0)
        if epsilon > mine_left + _EPS_TOL:
            raise BudgetExceededError(
                f"Your analyst budget on {where} is exceeded: {_short('ε', epsilon, max(mine_left, 0.0))}. "
                "Ask for a smaller epsilon or reuse a stored answer."
            )

    # -- reading ------------------------------------------------------------------------------------------
    def budget(
        self, dataset: DatasetRecord, analyst: str | None = None, analyst_limit: float | None = None
    ) -> BudgetStatus:
        with self.db.transaction(write=False) as tx:
            eps_spent, delta_spent = _spent(tx, dataset)
            row = tx.one(
                "SELECT COUNT(*) FROM charges WHERE dataset = ? AND version = ?", (dataset.name, dataset.version)
            )
            mine = None
            if analyst is not None:
                r = tx.one(
                    "SELECT COALESCE(SUM(epsilon), 0) FROM charges WHERE dataset = ? AND version = ? AND analyst = ?",
                    (dataset.name, dataset.version, analyst),
                )
                mine = float(r[0]) if r else 0.0
        return BudgetStatus(
            dataset=dataset.name,
            version=dataset.version,
            epsilon_total=dataset.epsilon_budget,
            epsilon_spent=eps_spent,
            delta_total=dataset.delta_budget,
            delta_spent=delta_spent,
            answers=int(row[0]) if row else 0,
            analyst=analyst,
            analyst_epsilon_spent=mine,
            analyst_epsilon_limit=analyst_limit,
        )

    def result(self, result_id: str) -> ChargeRecord:
        with self.db.transaction(write=False) as tx:
            row = tx.one(f"SELECT {_CHARGE_COLS} FROM charges WHERE id = ?", (result_id,))
        if row is None:
            raise NotFoundError(f"No result with id {result_id!r}; ids come from a query's DPResult.id.")
        return ChargeRecord(*row)

    def charges(self, dataset: str | None = None) -> list[ChargeRecord]:
        """Every stored answer (of one dataset, all versions, when given), oldest first."""
        with self.db.transaction(write=False) as tx:
            if dataset is None:
                rows = tx.execute(f"SELECT {_CHARGE_COLS} FROM charges ORDER BY created")
            else:
                rows = tx.execute(f"SELECT {_CHARGE_COLS} FROM charges WHERE dataset = ? ORDER BY created", (dataset,))
        return [ChargeRecord(*r) for r in rows]


def _spent(tx: Tx, dataset: DatasetRecord) -> tuple[float, float]:
    row = tx.one(
        "SELECT COALESCE(SUM(epsilon), 0), COALESCE(SUM(delta), 0) FROM charges WHERE dataset = ? AND version = ?",
        (dataset.name, dataset.version),
    )
    return (float(row[0]), float(row[1])) if row else (0.0, 0.0)
