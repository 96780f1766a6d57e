"""Which engine answers a registered dataset: ``duckdb`` (default, in the vault process) or ``spark``.

The choice is made when the dataset is registered (``sandbox dataset add ... --engine spark``) and kept beside the
copied file as ``engine.json``; a version directory without it is a DuckDB dataset. The engine only changes where
the exact statistics are computed: noise, the ledger and the keys stay in the vault process either way.
"""

from __future__ import annotations

import json
from pathlib import Path

from sandbox._private.shared.errors import SchemaError

from .runner import ENGINES

__all__ = ["ENGINE_FILE", "check_engine", "write_engine", "engine_of"]

ENGINE_FILE = "engine.json"


def check_engine(engine: str) -> str:
    """Return ``engine`` if it is known; else SchemaError naming the choices."""
    if engine not in ENGINES:
        raise SchemaError(f"Unknown engine {engine!r}; register the dataset with engine 'duckdb' or 'spark'.")
    return engine


def write_engine(directory: Path, engine: str) -> None:
    """Record the engine of the dataset version stored in ``directory``."""
    (directory / ENGINE_FILE).write_text(json.dumps({"engine": check_engine(engine)}) + "\n", encoding="utf-8")


def engine_of(data_path: str | Path) -> str:
    """Return the engine recorded beside a registered data file (``duckdb`` if none was recorded)."""
    f = Path(data_path).parent / ENGINE_FILE
    if not f.is_file():
        return "duckdb"
    try:
        return check_engine(str(json.loads(f.read_text(encoding="utf-8"))["engine"]))
    except (OSError, ValueError, KeyError, TypeError):
        raise SchemaError(f'{f} is not a valid engine record; it should be {{"engine": "duckdb"}}.') from None
