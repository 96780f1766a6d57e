"""The dataset registry: copy a protected table into the vault, check it against its public schema, record it.

Registering ``NAME`` stores ``<workspace>/vault/data/NAME/<version>/data.parquet`` (or ``data.csv``; copied byte
for byte after the rows are checked against the schema) and ``schema.json``, then adds a row to the
ledger's ``datasets`` table with the files' sha256, the schema's sha256 and the budget from the policy. A new
registration of the same name is a new version with a fresh budget, which a reviewer sees.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sandbox._private.shared.canonical import sha256_file
from sandbox._private.shared.errors import SchemaError
from sandbox._private.shared.layout import WorkspaceLayout
from sandbox._private.shared.policy import Policy
from sandbox._private.shared.schema import TableSchema

from .ledger.ledger import DatasetRecord, Ledger

__all__ = ["DatasetRegistry", "POPULATION_TABLES"]

#: The tables of a generated population that ``add_population`` registers (never the ground truth).
POPULATION_TABLES: tuple[str, ...] = ("households", "persons", "signals")


def _check(src: Path, schema: TableSchema, engine: str = "duckdb") -> None:
    """Check the rows against the schema on the dataset's engine, reading the file in place (counts, never values)."""
    from .dp.tabledata import TableData

    try:
        TableData.load(src, schema, engine=engine)
    except SchemaError as exc:
        raise SchemaError(f"{src} does not match schema {schema.name!r}: {exc}") from None


@dataclass(frozen=True)
class DatasetRegistry:
    """Registers protected tables of one vault.

    Parameters
    ----------
    layout : WorkspaceLayout
        The workspace's vault files.
    ledger : Ledger
        Where the registration (and later the budget) is recorded.
    policy : Policy
        Supplies each new version's ε and δ budget.
    """

    layout: WorkspaceLayout
    ledger: Ledger
    policy: Policy

    def add(
        self, name: str, path: str | Path, schema: TableSchema | str | Path, *, engine: str = "duckdb"
    ) -> DatasetRecord:
        """Register ``path`` (Parquet or CSV) as a new version of dataset ``name``.

        ``engine`` answers it: ``duckdb`` in the vault process, or ``spark`` (see docs/operator.md).
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
        _check(src, sch, engine)
        version = self.ledger.next_version(name)
        dest = self.layout.dataset_dir(name, version)
        dest.mkdir(parents=True, exist_ok=False)
        target = dest / f"data{suffix}"
        shutil.copyfile(src, target)
        sch.save(dest / "schema.json")
        write_engine(dest, engine)
        record = DatasetRecord(
            name=name,
            version=version,
            files_sha256=sha256_file(target),
            schema_sha256=sch.sha256,
            schema_json=sch.to_json(),
            path=str(target),
            epsilon_budget=self.policy.budget.epsilon_per_dataset,
            delta_budget=self.policy.budget.delta_per_dataset,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        return self.ledger.add_dataset(record)

    def add_population(self, directory: str | Path, *, engine: str = "duckdb") -> list[DatasetRecord]:
        """Register the households, persons and signals tables of a generated population (never ground truth)."""
        root = Path(directory)
        out = []
        for table in POPULATION_TABLES:
            data, schema = root / f"{table}.parquet", root / "schema" / f"{table}.json"
            if not data.is_file() or not schema.is_file():
                raise SchemaError(
                    f"{root} is not a generated population: {data.name} or schema/{schema.name} is missing. "
                    "Create one with synthetic.write_population(out_dir, n_households)."
                )
            out.append(self.add(table, data, schema, engine=engine))
        return out
