"""What the ledger holds, and how it is read: populations, their tables, stored answers and kept charges.

One budget per population, shared by every table and version.

One household is in the households, persons and signals tables of a population, so a query on any of them spends
the same budget. Every version of a dataset belongs to the population of its first version: registering a table
again never restores ε. A table joins a population when it is first registered (``population`` of its
:class:`DatasetRecord`; by default a new population named after the table), and only if its schema has the
population's privacy unit. Who registered what, and when a table joined an existing population, is journalled by
the registry (:mod:`sandbox._private.vault.registry`), not here: the ledger records, the journal tells.
"""

from __future__ import annotations

import json

from sandbox._private.shared.errors import NotFoundError, SchemaError

from .db import LedgerDB, Tx
from .records import BudgetStatus, ChargeRecord, DatasetRecord, KeptCharge, PopulationRecord

__all__ = ["LedgerStore", "CHARGE_COLS", "KEPT_COLS"]

_DATASET_COLS = (
    "name, version, files_sha256, schema_sha256, schema_json, path, epsilon_budget, delta_budget, created, population"
)
CHARGE_COLS = (
    "id, dataset, version, kind, query_key, query_json, epsilon, delta, mechanism, public_json, result_sha256, "
    "private_json, analyst, run_id, created"
)
KEPT_COLS = (
    "id, population, dataset, version, kind, query_key, query_json, epsilon, delta, analyst, run_id, state, owner, "
    "reason, created, finished"
)
_POP_COLS = "name, privacy_unit, epsilon_budget, delta_budget, epsilon_spent, delta_spent, created"


def _unit(schema_json: str) -> str:
    try:
        return str(json.loads(schema_json).get("privacy_unit", ""))
    except (ValueError, AttributeError):
        return ""


class LedgerStore:
    """The reading half of the :class:`~sandbox._private.vault.ledger.ledger.Ledger`, and dataset registration."""

    db: LedgerDB

    # -- datasets -----------------------------------------------------------------------------------------
    def next_version(self, name: str) -> int:
        with self.db.transaction(write=False) as tx:
            row = tx.one("SELECT MAX(version) FROM datasets WHERE name = ?", (name,))
        return int(row[0]) + 1 if row and row[0] is not None else 1

    def table_population(self, name: str) -> str | None:
        """Return the population a table belongs to, or ``None`` for a table never registered."""
        with self.db.transaction(write=False) as tx:
            row = tx.one("SELECT population FROM datasets WHERE name = ? ORDER BY version LIMIT 1", (name,))
        return None if row is None else str(row[0])

    def add_dataset(self, record: DatasetRecord) -> DatasetRecord:
        """Record a dataset version under its population (creating the population if it is new).

        Raises
        ------
        SchemaError
            A later version names another population than the first, or the table's privacy unit differs from
            the population's.
        """
        unit = _unit(record.schema_json)
        with self.db.transaction() as tx:
            first = tx.one("SELECT population FROM datasets WHERE name = ? ORDER BY version LIMIT 1", (record.name,))
            if first is not None and record.population and record.population != first[0]:
                raise SchemaError(
                    f"Dataset {record.name!r} belongs to population {first[0]!r}: every version of a dataset shares "
                    "its budget. Register it without a population (it joins its own), or under another name."
                )
            population = str(first[0]) if first is not None else (record.population or record.name)
            pop = tx.one(
                f"SELECT privacy_unit, epsilon_budget, delta_budget FROM populations WHERE name = ?{tx.lock_clause}",
                (population,),
            )
            if pop is None:
                tx.execute(
                    "INSERT INTO populations (name, privacy_unit, epsilon_budget, delta_budget, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (population, unit, record.epsilon_budget, record.delta_budget, record.created),
                )
                eps, delta = record.epsilon_budget, record.delta_budget
            else:
                if unit and pop[0] and unit != pop[0]:
                    raise SchemaError(
                        f"Table {record.name!r} has privacy unit {unit!r}, but population {population!r} is protected "
                        f"per {pop[0]!r}; a population's tables share one privacy unit. Register it in another "
                        "population."
                    )
                eps, delta = float(pop[1]), float(pop[2])
            out = DatasetRecord(
                record.name, record.version, record.files_sha256, record.schema_sha256, record.schema_json,
                record.path, eps, delta, record.created, population,
            )  # fmt: skip
            tx.execute(
                f"INSERT INTO datasets ({_DATASET_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                tuple(out.__dict__[c.strip()] for c in _DATASET_COLS.split(",")),
            )
        return out

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
        # one statement, no transaction around it (one round trip on PostgreSQL, not BEGIN, SELECT and COMMIT)
        if version is None:
            rows = self.db.read(
                f"SELECT {_DATASET_COLS} FROM datasets WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)
            )
        else:
            rows = self.db.read(f"SELECT {_DATASET_COLS} FROM datasets WHERE name = ? AND version = ?", (name, version))
        row = rows[0] if rows else None
        if row is None:
            known = ", ".join(d.name for d in self.datasets()) or "none"
            raise NotFoundError(
                f"No dataset {name!r}{'' if version is None else f' version {version}'}; registered: {known}. "
                "Register it with `sandbox dataset add NAME PATH --schema FILE`."
            )
        return DatasetRecord(*row)

    # -- populations --------------------------------------------------------------------------------------
    @staticmethod
    def _population_row(tx: Tx, name: str) -> PopulationRecord:
        row = tx.one(f"SELECT {_POP_COLS} FROM populations WHERE name = ?", (name,))
        if row is None:
            raise NotFoundError(f"No population {name!r}; `sandbox ledger populations` lists them.")
        tables = tuple(
            str(r[0])
            for r in tx.execute("SELECT DISTINCT name FROM datasets WHERE population = ? ORDER BY name", (name,))
        )
        answers = tx.one(
            "SELECT COUNT(*) FROM charges c JOIN datasets d ON d.name = c.dataset AND d.version = c.version "
            "WHERE d.population = ?",
            (name,),
        )  # counted when read: a running count would put the population's row lock into every finalise
        return PopulationRecord(
            str(row[0]), str(row[1]), float(row[2]), float(row[3]), float(row[4]), float(row[5]),
            int(answers[0]) if answers else 0, str(row[6]), tables,
        )  # fmt: skip

    def population(self, name: str) -> PopulationRecord:
        """One population with its budget, running totals and tables."""
        with self.db.transaction(write=False) as tx:
            return self._population_row(tx, name)

    def populations(self) -> list[PopulationRecord]:
        """Every population, by name."""
        with self.db.transaction(write=False) as tx:
            return [
                self._population_row(tx, str(r[0])) for r in tx.execute("SELECT name FROM populations ORDER BY name")
            ]

    def set_budget(
        self, name: str, *, epsilon: float, delta: float | None = None
    ) -> tuple[PopulationRecord, PopulationRecord]:
        """Set a population's total budget (the privacy officer's decision); returns the record before and after.

        The spent figures never change: lowering the budget below them leaves nothing to spend.
        """
        if not (epsilon > 0 and epsilon < float("inf")):
            raise SchemaError(f"A population's ε budget must be a finite number > 0, not {epsilon!r}.")
        with self.db.transaction() as tx:
            before = self._population_row(tx, name)
            new_delta = before.delta_budget if delta is None else float(delta)
            if not 0 <= new_delta < 1:
                raise SchemaError(f"A population's δ budget must be in [0, 1), not {delta!r}.")
            tx.execute(
                "UPDATE populations SET epsilon_budget = ?, delta_budget = ? WHERE name = ?", (epsilon, new_delta, name)
            )
            after = self._population_row(tx, name)
        return before, after

    # -- stored answers ---------------------------------------------------------------------------------
    @staticmethod
    def _charge_row(tx: Tx, dataset: DatasetRecord, query_key: str) -> ChargeRecord | None:
        row = tx.one(
            f"SELECT {CHARGE_COLS} FROM charges WHERE dataset = ? AND version = ? AND query_key = ?",
            (dataset.name, dataset.version, query_key),
        )
        return None if row is None else ChargeRecord(*row)

    @staticmethod
    def _population_of(tx: Tx, dataset: DatasetRecord) -> str:
        row = tx.one("SELECT population FROM datasets WHERE name = ? AND version = ?", (dataset.name, dataset.version))
        if row is None:
            raise NotFoundError(f"Dataset {dataset.name!r} version {dataset.version} is not registered.")
        return str(row[0])

    def budget(
        self, dataset: DatasetRecord, analyst: str | None = None, analyst_limit: float | None = None
    ) -> BudgetStatus:
        """Return the budget of the dataset's population (every table and version), and the analyst's on it."""
        with self.db.transaction(write=False) as tx:
            population = self._population_of(tx, dataset)
            pop = self._population_row(tx, population)
            kept = tx.one("SELECT COUNT(*) FROM reservations WHERE population = ?", (population,))
            mine = None
            if analyst is not None:
                r = tx.one(
                    "SELECT epsilon_spent FROM analyst_spend WHERE population = ? AND analyst = ?",
                    (population, analyst),
                )
                mine = float(r[0]) if r else 0.0
        return BudgetStatus(
            dataset=dataset.name,
            version=dataset.version,
            epsilon_total=pop.epsilon_budget,
            epsilon_spent=pop.epsilon_spent,
            delta_total=pop.delta_budget,
            delta_spent=pop.delta_spent,
            answers=pop.answers,
            analyst=analyst,
            analyst_epsilon_spent=mine,
            analyst_epsilon_limit=analyst_limit,
            population=population,
            tables=pop.tables,
            kept=int(kept[0]) if kept else 0,
        )

    def result(self, result_id: str) -> ChargeRecord:
        with self.db.transaction(write=False) as tx:
            row = tx.one(f"SELECT {CHARGE_COLS} FROM charges WHERE id = ?", (result_id,))
        if row is None:
            raise NotFoundError(f"No result with id {result_id!r}; ids come from a query's DPResult.id.")
        return ChargeRecord(*row)

    def charges(self, dataset: str | None = None) -> list[ChargeRecord]:
        """Every stored answer (of one dataset, all versions, when given), oldest first."""
        with self.db.transaction(write=False) as tx:
            if dataset is None:
                rows = tx.execute(f"SELECT {CHARGE_COLS} FROM charges ORDER BY created, id")
            else:
                rows = tx.execute(
                    f"SELECT {CHARGE_COLS} FROM charges WHERE dataset = ? ORDER BY created, id", (dataset,)
                )
        return [ChargeRecord(*r) for r in rows]

    def kept_charges(self, dataset: str | None = None, *, state: str | None = None) -> list[KeptCharge]:
        """Charges without a stored answer (pending or failed), oldest first; they count as spent."""
        where, params = [], []
        if dataset is not None:
            where.append("dataset = ?")
            params.append(dataset)
        if state is not None:
            where.append("state = ?")
            params.append(state)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self.db.transaction(write=False) as tx:
            rows = tx.execute(f"SELECT {KEPT_COLS} FROM reservations{clause} ORDER BY created, id", params)
        return [KeptCharge(*r) for r in rows]

    def kept_charge(self, charge_id: str) -> KeptCharge:
        with self.db.transaction(write=False) as tx:
            row = tx.one(f"SELECT {KEPT_COLS} FROM reservations WHERE id = ?", (charge_id,))
        if row is None:
            raise NotFoundError(f"No kept charge with id {charge_id!r}.")
        return KeptCharge(*row)
