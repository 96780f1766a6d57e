"""Public entry points: generate a population in memory, or stream it to Parquet with a manifest.

``write_population`` writes into a temporary directory beside ``out_dir`` and renames it into place only when
every file, schema and the manifest are complete, so a failure never leaves a half-written dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sandbox import OutputPathError

from ._generate import BLOCK_SIZE, TABLES, arrow_schema, check_arguments, iter_chunks
from ._scenario import Scenario, load_scenario
from ._schemas import ground_truth_schema, population_schemas

__all__ = [
    "Population",
    "generate_population",
    "write_population",
    "population_is_current",
    "DEFAULT_CHUNK_SIZE",
    "FORMAT",
    "table_paths",
]

DEFAULT_CHUNK_SIZE = 131_072
FORMAT = "synthetic.population/1"
# Fixed row-group sizes, independent of chunking, so the files are byte-identical however the work is split.
_ROW_GROUP = {"households": 131_072, "persons": 262_144, "signals": 131_072, "ground_truth": 131_072}
_PATHS = {
    "households": "households.parquet",
    "persons": "persons.parquet",
    "signals": "signals.parquet",
    "ground_truth": "ground_truth/ground_truth.parquet",
}


def table_paths(out_dir: str | Path) -> dict[str, Path]:
    """Where each table of a written population lives."""
    return {name: Path(out_dir) / rel for name, rel in _PATHS.items()}


@dataclass(frozen=True)
class Population:
    """A generated population held in memory (for tests and small studies).

    Attributes
    ----------
    households, persons, signals : pandas.DataFrame
        The protected tables (categories as pandas categoricals with every category of the schema).
    ground_truth : pandas.DataFrame
        The latent truth; never part of a protected dataset.
    seed : int
    scenario : Scenario
    """

    households: pd.DataFrame
    persons: pd.DataFrame
    signals: pd.DataFrame
    ground_truth: pd.DataFrame
    seed: int
    scenario: Scenario


def _resolve(scenario: Scenario | str | Path | None, workers: int | None) -> tuple[Scenario, int]:
    return load_scenario(scenario), (workers if workers is not None else min(2, os.cpu_count() or 1))


def generate_population(
    n_households: int,
    *,
    seed: int,
    scenario: Scenario | str | Path | None = None,
    workers: int = 1,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Population:
    """Generate a population in memory.

    Parameters
    ----------
    n_households : int
        Number of households (persons and signals follow).
    seed : int
        Seed (>= 0). The same seed and scenario give the same rows whatever ``workers`` and ``chunk_size``.
    scenario : Scenario, str, Path or None
        A scenario, the name of a shipped one (``"default"``, ``"no_bias"``) or a YAML path; default ``"default"``.
    workers : int
        Worker processes.
    chunk_size : int
        Households per task (rounded up to whole blocks of 16,384).

    Returns
    -------
    Population
    """
    sc, workers = _resolve(scenario, workers)
    check_arguments(n_households, seed, workers, chunk_size)
    parts: dict[str, list[pa.Table]] = {t: [] for t in TABLES}
    for _, tables in iter_chunks(sc, n_households, seed, workers=workers, chunk_size=chunk_size):
        for name, tab in tables.items():
            parts[name].append(tab)
    frames = {n: pa.concat_tables(t).to_pandas() for n, t in parts.items()}
    return Population(frames["households"], frames["persons"], frames["signals"], frames["ground_truth"], seed, sc)


class _RowGroupWriter:
    """Buffers Arrow tables and writes row groups of exactly ``rows`` rows (the last may be shorter)."""

    def __init__(self, path: Path, schema: pa.Schema, rows: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Dictionary pages only for categories: for floats and ids they cost time and rarely pay off.
        categories = [f.name for f in schema if pa.types.is_dictionary(f.type)]
        self._writer = pq.ParquetWriter(path, schema, compression="snappy", use_dictionary=categories or False)
        self._rows = rows
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self.written = 0

    def add(self, table: pa.Table) -> None:
        self._buffer.append(table)
        self._buffered += table.num_rows
        while self._buffered >= self._rows:
            self._flush(self._rows)

    def _flush(self, rows: int) -> None:
        whole = pa.concat_tables(self._buffer).combine_chunks()
        self._writer.write_table(whole.slice(0, rows), row_group_size=rows)
        rest = whole.slice(rows)
        self._buffer, self._buffered = ([rest] if rest.num_rows else []), rest.num_rows
        self.written += rows

    def close(self) -> None:
        if self._buffered:
            self._flush(self._buffered)
        self._writer.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _prepare_target(out_dir: Path) -> Path:
    """Check that ``out_dir`` can be (re)placed and return a fresh temporary directory beside it."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputPathError(f"Output {str(out_dir)!r} is a file: give a directory path for the population.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "manifest.json").exists():
        raise OutputPathError(
            f"Output directory {str(out_dir)!r} is not empty and holds no population (no manifest.json): "
            "choose a new or empty directory, so nothing else is overwritten."
        )
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=parent))
    except OSError as exc:
        raise OutputPathError(
            f"Cannot write the population to {str(out_dir)!r}: creating a directory in {str(parent)!r} failed "
            f"({exc.strerror}). Choose a directory you can write to (--out), or fix its permissions."
        ) from None
    return tmp  # mkdtemp made it 0700: the population is protected data (ground truth included)


def _finish(tmp: Path, out_dir: Path) -> None:
    """Move the complete ``tmp`` into place (folders 0700, files 0600); an earlier population there is replaced."""
    for path in tmp.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)
    tmp.chmod(0o700)
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.rename(out_dir, old / "population")
    os.rename(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_all(
    tmp: Path,
    sc: Scenario,
    n_households: int,
    seed: int,
    workers: int,
    chunk_size: int,
    on_chunk: Callable[[int], object],
) -> dict[str, int]:
    writers = {t: _RowGroupWriter(p, arrow_schema(t), _ROW_GROUP[t]) for t, p in table_paths(tmp).items()}
    try:
        for chunk, tables in iter_chunks(sc, n_households, seed, workers=workers, chunk_size=chunk_size):
            for name, tab in tables.items():
                writers[name].add(tab)
            on_chunk(chunk.n_rows)
    finally:
        for w in writers.values():
            w.close()
    return {t: w.written for t, w in writers.items()}


def _manifest(tmp: Path, sc: Scenario, n_households: int, seed: int, rows: dict[str, int]) -> dict[str, object]:
    schemas = population_schemas()
    (tmp / "schema").mkdir()
    for name, schema in schemas.items():
        schema.save(tmp / "schema" / f"{name}.json")
    ground_truth_schema().save(tmp / "ground_truth" / "schema.json")
    files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
    return {
        "format": FORMAT,
        "seed": seed,
        "n_households": n_households,
        "scenario": {"name": sc.name, "sha256": sc.sha256},
        "block_size": BLOCK_SIZE,
        "row_group_size": _ROW_GROUP,
        "rows": rows,
        "schema_sha256": {n: s.sha256 for n, s in schemas.items()},
        "files": {f: _sha256(tmp / f) for f in files},
        "ground_truth": "ground_truth/ is the latent truth for measuring label bias: never register it.",
    }


def write_population(
    out_dir: str | Path,
    n_households: int,
    *,
    seed: int,
    scenario: Scenario | str | Path | None = None,
    workers: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
) -> Path:
    """Stream a population to Parquet files, their public schemas and a manifest.

    Writes ``households.parquet``, ``persons.parquet``, ``signals.parquet``, ``ground_truth/`` (kept apart,
    never a protected dataset), ``schema/<table>.json`` and ``manifest.json`` (seed, scenario sha256, row
    counts, file sha256s). Everything is written to a temporary directory beside ``out_dir`` and renamed into
    place at the end; on any error the temporary directory is removed and ``out_dir`` is left as it was.

    Parameters
    ----------
    out_dir : str or Path
        Target directory: new, empty, or an earlier population (replaced).
    n_households, seed, scenario, chunk_size
        As for :func:`generate_population`.
    workers : int, optional
        Worker processes; default ``min(2, cpu_count)``.
    progress : bool
        Show a tqdm progress bar (households) on stderr.

    Returns
    -------
    Path
        ``out_dir``.
    """
    sc, n_workers = _resolve(scenario, workers)
    check_arguments(n_households, seed, n_workers, chunk_size)
    out = Path(out_dir)
    tmp = _prepare_target(out)
    try:
        from tqdm import tqdm

        with tqdm(total=n_households, unit="hh", disable=not progress, desc="households") as bar:
            rows = _write_all(tmp, sc, n_households, seed, n_workers, chunk_size, bar.update)
        manifest = _manifest(tmp, sc, n_households, seed, rows)
        (tmp / "scenario.json").write_text(json.dumps(sc.to_mapping(), indent=2, sort_keys=True) + "\n")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        _finish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def population_is_current(
    out_dir: str | Path, n_households: int, *, seed: int, scenario: Scenario | str | Path | None = None
) -> bool:
    """Whether ``out_dir`` holds exactly this population (same size, seed, scenario and intact files)."""
    out = Path(out_dir)
    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    sc = load_scenario(scenario)
    if (manifest.get("format"), manifest.get("n_households"), manifest.get("seed")) != (FORMAT, n_households, seed):
        return False
    if manifest.get("scenario", {}).get("sha256") != sc.sha256:
        return False
    files = manifest.get("files", {})
    return all((out / f).is_file() and _sha256(out / f) == digest for f, digest in files.items())
