"""Registered tables, opened in place: one per dataset version and process, checked against the ledger's sha256.

The vault process (for in-process computations and the fairness audit's relation) and every worker process of the
pool (:mod:`.workers.worker`) keep one :class:`OpenTables`. Opening a table does not load its rows: the DP engine's
SQL engine (DuckDB by default, or Spark) reads the registered Parquet or CSV file in place, so every worker shares
the operating system's page cache of that file and nothing is copied per job. The file is hashed before its first
use in a process (or again when the caller asks, once per vault start), so a file changed after registration is
refused rather than answered.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox._private.shared.canonical import sha256_file
from sandbox._private.shared.errors import IntegrityError
from sandbox._private.shared.modelspec import FitQuery
from sandbox._private.shared.schema import TableSchema

from .dp.engine import Catalog, DPEngine
from .dp.sql.placement import engine_of
from .dp.tabledata import TableData
from .ledger.ledger import DatasetRecord
from .registry import POPULATION_TABLES

__all__ = ["OpenTables", "SchemaOnly", "parsed_schema", "population_of", "relation_query"]


@functools.lru_cache(maxsize=256)
def parsed_schema(schema_json: str) -> TableSchema:
    """Parse the schema of a registered table once (a registered schema never changes: it is hashed)."""
    return TableSchema.from_json(schema_json)


@dataclass(frozen=True)
class SchemaOnly:
    """A catalog entry for checking a query before any table is opened (only its schema is read)."""

    schema: TableSchema
    engine: str = "duckdb"


def population_of(record: DatasetRecord) -> str:
    """Return the population a dataset belongs to.

    The ledger's record of it; else (a record of an older ledger) the tables of a generated population form one and
    any other dataset is its own.
    """
    named = getattr(record, "population", None)
    if isinstance(named, str) and named:
        return named
    return "population" if record.name in POPULATION_TABLES else record.name


class OpenTables:
    """The tables this process has opened, by dataset version (thread-safe)."""

    def __init__(self) -> None:
        self._tables: dict[tuple[str, int], TableData] = {}
        self._lock = threading.Lock()

    def get(self, record: DatasetRecord, *, verify: bool = False) -> TableData:
        """Open ``record``'s file in place (hashing it first the first time, or again with ``verify``).

        Raises
        ------
        IntegrityError
            The file no longer hashes to the sha256 the ledger registered.
        """
        key = (record.name, record.version)
        with self._lock:
            if key not in self._tables or verify:
                digest = sha256_file(Path(record.path))
                if digest != record.files_sha256:
                    raise IntegrityError(
                        f"Data file of {record.name!r} v{record.version} hashes to {digest}, but the ledger "
                        f"registered {record.files_sha256}; it was changed after registration. Restore it or "
                        "register a new version."
                    )
            if key not in self._tables:
                # checked against the schema at registration and against its sha256 just now: open in place
                schema = parsed_schema(record.schema_json)
                self._tables[key] = TableData.load(
                    record.path, schema, engine=engine_of(record.path), validate=False, bounded=True
                )
            return self._tables[key]

    def catalog(self, records: Mapping[str, DatasetRecord], *, load: bool, verify: bool = False) -> Catalog:
        """Return the tables (or, without ``load``, only their schemas) and populations of ``records``."""
        tables: dict[str, Any] = {
            n: (self.get(r, verify=verify) if load else SchemaOnly(parsed_schema(r.schema_json)))
            for n, r in records.items()
        }
        return Catalog(tables, {n: population_of(r) for n, r in records.items()})

    def model_table(
        self,
        engine: DPEngine,
        record: DatasetRecord,
        public: Mapping[str, Any],
        extra: tuple[str, ...],
        records: Mapping[str, DatasetRecord],
        *,
        verify: bool = False,
    ) -> TableData:
        """Return the rows a stored model was fitted on (its relation, if any), with its columns and ``extra`` ones.

        ``records`` are the tables the model's relation reads (``relation_tables`` gives their names). For the
        in-vault fairness audit: a model fitted on a linked relation predicts on the same relation, and ``extra``
        names the protected attributes the audit groups by.
        """
        base = self.get(record, verify=verify)
        fq = relation_query(record, public)
        if fq is None:
            return base
        catalog = self.catalog({**records, record.name: record}, load=True, verify=verify)
        schema = fq.resolve(catalog.schemas()).schema
        columns = [fq.spec.target, *fq.spec.features, *(a for a in extra if a in schema)]
        return engine.model_table(fq.relation, catalog, columns)


def relation_query(record: DatasetRecord, public: Mapping[str, Any]) -> FitQuery | None:
    """Return the fit query of a stored model fitted on a linked relation (``None`` for a plain table)."""
    relation = public.get("relation") or {}
    if not relation:
        return None
    return FitQuery.from_dict({"dataset": record.name, "spec": public["spec"], "epsilon": 1.0, **relation})
