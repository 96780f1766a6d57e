"""Generating blocks of the population and turning them into Arrow tables.

Determinism: households are generated in blocks of :data:`BLOCK_SIZE` (fixed, independent of the chunk size
and of the number of workers). Block ``b`` draws all its randomness from
``Generator(SFC64(SeedSequence([seed, b])))`` and its household ids are ``b * BLOCK_SIZE + 1 ...``; a chunk is
just a run of whole blocks. So the same seed and scenario give the same rows, in the same order, however the
work is split.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from multiprocessing.context import BaseContext

import numpy as np
import pyarrow as pa

from sandbox import ScenarioError

from ._calibrate import Calibrator
from ._categories import codes
from ._households import Ctx, household_stages
from ._members import person_rows
from ._outcomes import outcome_stages, signal_rows
from ._scenario import Scenario
from ._schemas import MAX_HOUSEHOLDS, ground_truth_schema, population_schemas

__all__ = [
    "BLOCK_SIZE",
    "TABLES",
    "Chunk",
    "arrow_schema",
    "chunks",
    "generate_chunk",
    "iter_chunks",
    "calibration_constants",
    "check_arguments",
]

BLOCK_SIZE = 16_384
REFERENCE_HOUSEHOLDS = 100_000
_REFERENCE_SEED = (0x5EED, 0xCA1B)
TABLES = ("households", "persons", "signals", "ground_truth")
# Integer width per column; categories are dictionary<int8, string>, ids int64, floats float64.
_INT_TYPES: dict[str, pa.DataType] = {"age": pa.int16(), "household_id": pa.int64(), "person_id": pa.int64()}
_CATEGORY_KEY = {("persons", "education_level"): "person_education_level"}
_constants_cache: dict[str, dict[str, np.ndarray]] = {}
_cache_lock = threading.Lock()


@functools.cache
def arrow_schema(table: str) -> pa.Schema:
    """Return the Arrow schema every block of ``table`` is written with."""
    schema = ground_truth_schema() if table == "ground_truth" else population_schemas()[table]
    fields = []
    for col in schema.columns:
        if col.kind == "category":
            typ: pa.DataType = pa.dictionary(pa.int8(), pa.string())
        elif col.kind == "bool":
            typ = pa.bool_()
        elif col.kind == "float":
            typ = pa.float64()
        else:
            typ = _INT_TYPES.get(col.name, pa.int8())
        fields.append(pa.field(col.name, typ, nullable=col.nullable))
    return pa.schema(fields)


def _to_table(table: str, cols: Mapping[str, np.ndarray]) -> pa.Table:
    schema = arrow_schema(table)
    arrays = []
    for f in schema:
        values = cols[f.name]
        if pa.types.is_dictionary(f.type):
            key = _CATEGORY_KEY.get((table, f.name), f.name)
            dictionary = pa.array(codes(key), type=pa.string())
            arrays.append(pa.DictionaryArray.from_arrays(pa.array(values, type=pa.int8()), dictionary))
        else:
            arrays.append(pa.array(np.asarray(values).astype(f.type.to_pandas_dtype(), copy=False), type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _run_block(sc: Scenario, cal: Calibrator, rng: np.random.Generator, first_id: int, n: int) -> dict[str, pa.Table]:
    ctx = Ctx(rng=rng, sc=sc, cal=cal, n=n)
    household_stages(ctx)
    outcome_stages(ctx)
    hid = np.arange(first_id, first_id + n, dtype=np.int64)
    ctx.h["household_id"] = hid
    persons = person_rows(ctx, hid)
    signals = signal_rows(ctx, hid)
    return {
        "households": _to_table("households", ctx.h),
        "persons": _to_table("persons", persons),
        "signals": _to_table("signals", signals),
        "ground_truth": _to_table("ground_truth", ctx.h),
    }


def calibration_constants(sc: Scenario) -> dict[str, np.ndarray]:
    """Return the scenario's intercepts, solved once on the fixed reference sample (cached per scenario sha256)."""
    key = sc.sha256
    with _cache_lock:
        if key not in _constants_cache:
            cal = Calibrator()
            rng = np.random.Generator(np.random.SFC64(np.random.SeedSequence(_REFERENCE_SEED)))
            _run_block(sc, cal, rng, 1, REFERENCE_HOUSEHOLDS)
            _constants_cache[key] = cal.values
        return dict(_constants_cache[key])


@dataclass(frozen=True)
class Chunk:
    """A run of whole blocks ``[first_block, stop_block)`` of a population of ``n_households``."""

    seed: int
    n_households: int
    first_block: int
    stop_block: int

    @property
    def n_rows(self) -> int:
        """Households in this chunk."""
        return min(self.stop_block * BLOCK_SIZE, self.n_households) - self.first_block * BLOCK_SIZE


def chunks(n_households: int, seed: int, chunk_size: int) -> list[Chunk]:
    """Split the population into chunks of whole blocks (``chunk_size`` households, rounded up to blocks)."""
    n_blocks = math.ceil(n_households / BLOCK_SIZE)
    per = max(1, math.ceil(chunk_size / BLOCK_SIZE))
    return [Chunk(seed, n_households, b, min(b + per, n_blocks)) for b in range(0, n_blocks, per)]


def generate_chunk(sc: Scenario, constants: Mapping[str, np.ndarray], chunk: Chunk) -> dict[str, pa.Table]:
    """Generate the four tables of one chunk (block by block, concatenated)."""
    cal = Calibrator(constants)
    parts: dict[str, list[pa.Table]] = {t: [] for t in TABLES}
    for b in range(chunk.first_block, chunk.stop_block):
        first = b * BLOCK_SIZE
        n = min(BLOCK_SIZE, chunk.n_households - first)
        rng = np.random.Generator(np.random.SFC64(np.random.SeedSequence([chunk.seed, b])))
        for name, tab in _run_block(sc, cal, rng, first + 1, n).items():
            parts[name].append(tab)
    return {name: pa.concat_tables(tabs) for name, tabs in parts.items()}


def iter_chunks(
    sc: Scenario, n_households: int, seed: int, *, workers: int, chunk_size: int
) -> Iterator[tuple[Chunk, dict[str, pa.Table]]]:
    """Chunks in order, generated by ``workers`` processes with at most ``2 * workers`` chunks in flight."""
    constants = calibration_constants(sc)
    todo = chunks(n_households, seed, chunk_size)
    if workers <= 1 or len(todo) <= 1:
        for ch in todo:
            yield ch, generate_chunk(sc, constants, ch)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=_context()) as pool:
        pending: list[tuple[Chunk, Future[dict[str, pa.Table]]]] = []
        it = iter(todo)
        for ch in it:
            pending.append((ch, pool.submit(generate_chunk, sc, constants, ch)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            ch, fut = pending.pop(0)
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(generate_chunk, sc, constants, nxt)))
            yield ch, fut.result()


def _context() -> BaseContext:
    """Return the multiprocessing context: fork where available, else spawn.

    With fork, workers start at once and never re-import the caller's ``__main__`` (so a plain script without a
    main guard, or code piped to python, works). The workers only run numpy and pyarrow, which reinitialise
    their thread pools after fork, and touch no lock of the parent.
    """
    return get_context("fork" if "fork" in get_all_start_methods() else "spawn")


def check_arguments(n_households: object, seed: object, workers: object, chunk_size: object) -> None:
    """Validate the size arguments; errors name the argument and the fix."""
    checks = (
        ("n_households", n_households, 1, MAX_HOUSEHOLDS),
        ("seed", seed, 0, 2**63 - 1),
        ("workers", workers, 1, 64),
        ("chunk_size", chunk_size, 1, 10**9),
    )
    for name, value, lo, hi in checks:
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or not lo <= int(value) <= hi:
            raise ScenarioError(f"{name} must be a whole number from {lo} to {hi}, got {value!r}.")
