"""The dataset registry: copy a protected table into the vault, check it against its public schema, record it.

Registering ``NAME`` stores ``<workspace>/vault/data/NAME/<version>/data.parquet`` (or ``data.csv``; copied byte
for byte after the rows are checked against the schema) and ``schema.json``, then adds a row to the ledger's
``datasets`` table with the files' sha256 and the schema's sha256, under the table's **population**:

* a table registered again is a new version in the population of its first version, and spends the same
  budget: re-registering never restores ε;
* a new table starts a new population (named after it) unless ``population`` names one; naming an existing
  population adds the table to it (an admin action: its tables then share one budget, and the table's privacy
  unit must be the population's);
* :meth:`DatasetRegistry.add_population` registers households, persons and signals of a generated population
  under one population and its one budget.

Every registration is journalled (``dataset.registered``; ``population.created`` for a new population,
``population.table_added`` when a table joins an existing one), so reviewers see which tables share a budget and
who added them. A new population's budget comes from the policy (``budget.epsilon_per_dataset``, which is the
budget of a population) when it is created, and does not change with later policies.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox._private.shared.canonical import sha256_file
from sandbox._private.shared.errors import SchemaError
from sandbox._private.shared.layout import WorkspaceLayout
from sandbox._private.shared.policy import Policy
from sandbox._private.shared.schema import TableSchema
from sandbox._private.shared.wire import NAME_RE

from .ledger.ledger import DatasetRecord, Ledger
from .outbox.journal import AuditLog

__all__ = ["DatasetRegistry", "POPULATION_TABLES", "DEFAULT_POPULATION"]

#: The tables of a generated population that ``add_population`` registers (never the ground truth).
POPULATION_TABLES: tuple[str, ...] = ("households", "persons", "signals")
#: The population ``add_population`` creates when none is named and none of its tables is registered yet.
DEFAULT_POPULATION = "population"


def _check(src: Path, schema: TableSchema, engine: str = "duckdb") -> None:
    """Check the rows against the schema on the dataset's engine, reading the file in place (counts, never values)."""
    from .dp.tabledata import TableData

    try:
        TableData.load(src, schema, engine=engine)
    except SchemaError as exc:
        raise SchemaError(f"{src} does not match schema {schema.name!r}: {exc}") from None


def _check_population_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise SchemaError(
            f"Population name {name!r} is not valid: use lower-case letters, digits and _, starting with a letter."
        )


@dataclass(frozen=True)
class DatasetRegistry:
    """Registers protected tables of one vault.

    Parameters
    ----------
    layout : WorkspaceLayout
        The workspace's vault files (and its journal).
    ledger : Ledger
        Where the registration (and later the budget) is recorded.
    policy : Policy
        Supplies a new population's ε and δ budget.
    """

    layout: WorkspaceLayout
    ledger: Ledger
    policy: Policy

    def add(
        self,
        name: str,
        path: str | Path,
        schema: TableSchema | str | Path,
        *,
        population: str | None = None,
        engine: str = "duckdb",
        actor: str = "admin",
    ) -> DatasetRecord:
        """Register ``path`` (Parquet or CSV) as a new version of dataset ``name`` (see the module docstring).

        ``engine`` answers it: ``duckdb`` in the vault process, or ``spark`` (see docs/operator.md).

        Raises
        ------
        SchemaError
            The rows do not match the schema, ``population`` differs from the population of the table's earlier
            versions, or the table's privacy unit differs from the population's.
        """
        from .dp.sql.placement import check_engine, write_engine

        check_engine(engine)
        src = Path(path)
        sch = schema if isinstance(schema, TableSchema) else TableSchema.load(schema)
        if name != sch.name:
            raise SchemaError(
                f"Dataset name {name!r} differs from the schema's table name {sch.name!r}; use the same name."
            )
        if not src.is_file():
            raise SchemaError(f"Data file {str(src)!r} does not exist; give the path of a .parquet or .csv file.")
        suffix = src.suffix.lower()
        if suffix not in (".parquet", ".csv"):
            raise SchemaError(f"Data file {str(src)!r} is {suffix or 'without suffix'}; give a .parquet or .csv file.")
        if population is not None:
            _check_population_name(population)
        target_population = self._population_for(name, sch, population)
        _check(src, sch, engine)
        before = self._tables_of(target_population)
        version = self.ledger.next_version(name)
        dest = self.layout.dataset_dir(name, version)
        dest.mkdir(parents=True, exist_ok=False)
        target = dest / f"data{suffix}"
        shutil.copyfile(src, target)
        sch.save(dest / "schema.json")
        write_engine(dest, engine)
        record = self.ledger.add_dataset(
            DatasetRecord(
                name=name,
                version=version,
                files_sha256=sha256_file(target),
                schema_sha256=sch.sha256,
                schema_json=sch.to_json(),
                path=str(target),
                epsilon_budget=self.policy.budget.epsilon_per_dataset,
                delta_budget=self.policy.budget.delta_per_dataset,
                created=datetime.now(UTC).isoformat(timespec="seconds"),
                population=target_population,
            )
        )
        self.layout.secure()  # the copied rows and schema: 0600, like every vault file (also while a vault runs)
        self._journal(actor, record, sch, before)
        return record

    def _population_for(self, name: str, schema: TableSchema, population: str | None) -> str:
        """Return the population a new version of ``name`` joins; refuse a conflicting or mismatched one early."""
        current = self.ledger.table_population(name)
        if current is not None:
            if population is not None and population != current:
                raise SchemaError(
                    f"Dataset {name!r} belongs to population {current!r}: every version of a dataset shares its "
                    f"budget, so it cannot move to {population!r}. Register it without --population."
                )
            return current
        chosen = population or name
        existing = {p.name: p for p in self.ledger.populations()}
        if chosen in existing and existing[chosen].privacy_unit not in ("", schema.privacy_unit):
            raise SchemaError(
                f"Table {name!r} is protected per {schema.privacy_unit!r}, but population {chosen!r} per "
                f"{existing[chosen].privacy_unit!r}; a population's tables share one privacy unit."
            )
        return chosen

    def _tables_of(self, population: str) -> tuple[str, ...] | None:
        """Return the tables of an existing population (``None`` if it does not exist yet)."""
        for p in self.ledger.populations():
            if p.name == population:
                return p.tables
        return None

    def _journal(self, actor: str, record: DatasetRecord, schema: TableSchema, before: tuple[str, ...] | None) -> None:
        pop = self.ledger.population(record.population)
        events: list[tuple[str, str, dict[str, Any]]] = []
        if before is None:
            events.append(
                (actor, "population.created", {
                    "population": pop.name, "privacy_unit": pop.privacy_unit, "epsilon_budget": pop.epsilon_budget,
                    "delta_budget": pop.delta_budget, "tables": [record.name],
                })
            )  # fmt: skip
        elif record.name not in before:
            events.append(
                (actor, "population.table_added", {
                    "population": pop.name, "dataset": record.name, "privacy_unit": schema.privacy_unit,
                    "tables_before": list(before), "tables": list(pop.tables),
                    "epsilon_budget": pop.epsilon_budget, "epsilon_spent": pop.epsilon_spent,
                })
            )  # fmt: skip
        events.append(
            (actor, "dataset.registered", {
                "dataset": record.name, "version": record.version, "population": record.population,
                "files_sha256": record.files_sha256, "schema_sha256": record.schema_sha256,
                "privacy_unit": schema.privacy_unit, "epsilon_budget": pop.epsilon_budget,
                "epsilon_spent": pop.epsilon_spent,
            })
        )  # fmt: skip
        AuditLog(self.layout.journal).append_many(events)

    def add_population(
        self, directory: str | Path, *, population: str | None = None, engine: str = "duckdb", actor: str = "admin"
    ) -> list[DatasetRecord]:
        """Register the households, persons and signals tables of a generated population under one budget.

        The population is the one these tables already belong to (registering them again adds versions to it),
        else ``population`` (default ``"population"``). The ground truth is never registered.
        """
        root = Path(directory)
        files = []
        for table in POPULATION_TABLES:
            data, schema = root / f"{table}.parquet", root / "schema" / f"{table}.json"
            if not data.is_file() or not schema.is_file():
                raise SchemaError(
                    f"{root} is not a generated population: {data.name} or schema/{schema.name} is missing. "
                    "Create one with synthetic.write_population(out_dir, n_households)."
                )
            files.append((table, data, TableSchema.load(schema)))
        units = {s.privacy_unit for _, _, s in files}
        if len(units) != 1:
            raise SchemaError(
                f"The tables of {root} have different privacy units {sorted(units)}; they must share one."
            )
        current = {t: p for t, _, _ in files if (p := self.ledger.table_population(t)) is not None}
        if len(set(current.values())) > 1:
            raise SchemaError(
                f"The tables of {root} already belong to different populations ({current}); register them one by "
                "one with `sandbox dataset add`."
            )
        chosen = next(iter(current.values()), None) or population or DEFAULT_POPULATION
        if population is not None and population != chosen:
            raise SchemaError(
                f"These tables belong to population {chosen!r}; every version shares its budget, so they cannot "
                f"move to {population!r}. Register them without --population."
            )
        return [self.add(t, data, sch, population=chosen, engine=engine, actor=actor) for t, data, sch in files]
