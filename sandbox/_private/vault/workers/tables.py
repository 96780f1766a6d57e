"""Protected tables shared by every worker process: converted once, kept as memory-mapped Arrow IPC files.

Converting a registered Parquet or CSV file into the engine's form (:class:`~..dp.tabledata.TableData`: rows sorted by
household, category codes, float values, ranks; checked against the public schema) is the slow step, and the
result is large (about 1 GiB for 8 M households). So it is done once per dataset version, by the first worker that
needs it, and written to ``vault/cache/tables/<name>/<version>/<files sha256>.arrow``: one uncompressed Arrow IPC
record batch whose columns are exactly the engine's arrays. Every worker then memory-maps that file and reads the
arrays in place (``to_numpy(zero_copy_only=True)``): the operating system keeps one copy in its page cache for all
of them, nothing is copied per job, and a respawned worker is ready at once.

The file's name carries the sha256 of the registered file it came from, and the source file is checked against the
ledger's sha256 before it is converted (and once per vault start before the cache is used; the pool asks for that
with ``verify=True``). The cache is written to a temporary file and renamed, under a lock, so a crash never leaves a
half-written table and two workers never convert the same table at once. Mode 0600, like every vault file.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pyarrow as pa

from sandbox._private.shared.canonical import sha256_file
from sandbox._private.shared.errors import IntegrityError
from sandbox._private.shared.files import fsync_dir
from sandbox._private.shared.schema import TableSchema

from ..dp.tabledata import TableData
from ..ledger.ledger import DatasetRecord
from ..service import _parsed_schema

__all__ = ["SharedTables", "cache_path", "write_table_file", "open_table_file"]

_FORMAT = "sandbox.table-cache/1"
_UNIT, _RANK = "__unit_index", "__rank"


def cache_path(root: Path, record: DatasetRecord) -> Path:
    """Where the shared form of ``record`` lives under the cache folder ``root``."""
    return root / record.name / str(record.version) / f"{record.files_sha256[:32]}.arrow"


def write_table_file(table: TableData, path: Path, files_sha256: str) -> None:
    """Write ``table``'s arrays to ``path`` as one Arrow IPC record batch, atomically (mode 0600)."""
    columns = {_UNIT: table.unit_index, _RANK: table.rank}
    columns.update({f"c:{name}": arr for name, arr in table.codes.items()})
    columns.update({f"v:{name}": arr for name, arr in table.values.items()})
    meta = {
        "format": _FORMAT,
        "files_sha256": files_sha256,
        "schema_sha256": table.schema.sha256,
        "n_rows": table.n_rows,
        "n_units": table.n_units,
    }
    batch = pa.record_batch([pa.array(a) for a in columns.values()], names=list(columns))
    batch = batch.replace_schema_metadata({"sandbox": json.dumps(meta)})
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            with pa.ipc.new_file(fh, batch.schema) as writer:
                writer.write_batch(batch)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _column(table: pa.Table, name: str) -> np.ndarray:
    column = table.column(name)
    if column.num_chunks == 1:
        arr = column.chunk(0).to_numpy(zero_copy_only=True)
    else:  # an empty table may come back without a chunk
        arr = column.combine_chunks().to_numpy(zero_copy_only=False) if column.num_chunks else np.empty(0)
        arr = arr.astype(column.type.to_pandas_dtype(), copy=False)
    if arr.flags.writeable:  # a view of the read-only map never is; make sure
        arr.setflags(write=False)
    return arr


def open_table_file(path: Path, schema: TableSchema) -> TableData:
    """Memory-map a file written by :func:`write_table_file` and return its arrays as a :class:`TableData`."""
    source = pa.memory_map(str(path), "r")
    table = pa.ipc.open_file(source).read_all()
    meta = json.loads((table.schema.metadata or {})[b"sandbox"])
    if meta.get("format") != _FORMAT or meta.get("schema_sha256") != schema.sha256:
        raise IntegrityError(
            f"The shared table file {path} does not belong to schema {schema.name!r} ({meta.get('schema_sha256')}); "
            "delete the vault's cache folder and the vault rebuilds it."
        )
    codes = {n[2:]: _column(table, n) for n in table.column_names if n.startswith("c:")}
    values = {n[2:]: _column(table, n) for n in table.column_names if n.startswith("v:")}
    return TableData(
        schema=schema,
        n_rows=int(meta["n_rows"]),
        n_units=int(meta["n_units"]),
        unit_index=_column(table, _UNIT),
        rank=_column(table, _RANK),
        codes=MappingProxyType(codes),
        values=MappingProxyType(values),
    )


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _verify_source(record: DatasetRecord) -> None:
    digest = sha256_file(Path(record.path))
    if digest != record.files_sha256:
        raise IntegrityError(
            f"Data file of {record.name!r} v{record.version} hashes to {digest}, but the ledger registered "
            f"{record.files_sha256}; it was changed after registration. Restore it or register a new version."
        )


class SharedTables:
    """The tables one worker process has opened (memory maps of the shared files; see the module docstring).

    Parameters
    ----------
    root : Path
        The cache folder, ``<workspace>/vault/cache/tables``.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._open: dict[tuple[str, int, str], TableData] = {}

    def get(self, record: DatasetRecord, *, verify: bool = False) -> TableData:
        """Return the table of ``record``, converting it first if no worker has; ``verify`` rehashes the source."""
        key = (record.name, record.version, record.files_sha256)
        if key in self._open and not verify:
            return self._open[key]
        schema = _parsed_schema(record.schema_json)  # the object the vault process checked the query against
        path = cache_path(self.root, record)
        if verify:
            _verify_source(record)
        if not path.exists():
            with _locked(path):
                if not path.exists():
                    if not verify:
                        _verify_source(record)
                    write_table_file(TableData.load(record.path, schema), path, record.files_sha256)
        table = open_table_file(path, schema)
        self._open[key] = table
        return table
