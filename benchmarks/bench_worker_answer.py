"""CPU time a vault worker process spends per small DP aggregate answer, beside the floor of its noise alone.

Issue 11's many-clients figure (``benchmarks.bench_vault --only 2``) asks ``count by household_type`` of a
20,000-household table with a new epsilon each time, so every question is computed and charged; on two cores
every millisecond of CPU a worker spends per answer counts. This builds what a worker builds (a
:class:`~sandbox._private.vault.dp.engine.DPEngine` on the policy and its own
:class:`~sandbox._private.vault.tables.OpenTables`) for a population written with ``synthetic.write_population``
and registered in a vault in a temporary folder, checks each question in the vault (not timed), and then times,
in CPU seconds (:func:`time.process_time`) over ``--calls`` calls after a warm-up, what the worker loop does per
job: unpickle the :class:`~sandbox._private.vault.workers.worker.Task`, ``EncodedAnswer.of(run_task(task, engine,
tables))``, pickle the reply. The exact cells are cached after the first call (the exact part does not depend on
epsilon), so the figure is the per-answer overhead around the noise.

Beside it, floors for the same vector length and the same new epsilon per call, through OpenDP's Python
wrappers (with the domain and metric built once): the sample of one discrete Laplace measurement built once (the
noise alone), and a new measurement for the new scale with its privacy map checked and its sample (what any
answer at a new epsilon must do); and, where the engine has them (:mod:`sandbox._private.vault.dp.opendp_calls`),
the same through its lean calls. The ratios are ours over the new-measurement floors.

Run: ``.venv/bin/python -m benchmarks.bench_worker_answer [--calls 3000] [--households 20000]``.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import opendp.prelude as dp

from sandbox._private.vault.dp.engine import DPEngine
from sandbox._private.vault.ledger.ledger import EncodedAnswer
from sandbox._private.vault.server import open_service
from sandbox._private.vault.tables import OpenTables
from sandbox._private.vault.workers.worker import Task, run_task

_POLICY = """version: 1
name: bench
budget:
  epsilon_per_dataset: 1000000.0
  epsilon_per_query_max: 2.0
"""
_WARMUP = 200


def _epsilon(i: int) -> float:
    """A new epsilon for call ``i`` (every question is computed, as in the many-clients figure)."""
    return 0.5 + i * 1e-7


def _tasks(work: Path, households: int, calls: int) -> tuple[Any, list[bytes]]:
    """Register a synthetic population and return the policy and ``calls`` pickled tasks (checked in the vault)."""
    import synthetic

    pop = synthetic.write_population(work / "pop", households, seed=20261201)
    policy = work / "policy.yaml"
    policy.write_text(_POLICY, encoding="utf-8")
    svc = open_service(work / "ws", policy=policy)
    svc.registry.add("households", Path(pop) / "households.parquet", Path(pop) / "schema" / "households.json")
    out = []
    for i in range(calls):
        body = {"dataset": "households", "kind": "count", "by": ["household_type"], "epsilon": _epsilon(i)}
        checked, record, records, _ = svc._prepare_query(body)
        task = Task("aggregate", record, (checked.item, checked.cost), i == 0, 10.0, records)
        out.append(pickle.dumps((f"job{i}", task), protocol=pickle.HIGHEST_PROTOCOL))
    return svc.policy, out


def time_worker(policy: Any, tasks: list[bytes]) -> tuple[float, int]:
    """CPU seconds per job of the worker loop (after ``_WARMUP`` jobs), and the answer's number of cells."""
    engine, tables = DPEngine(policy), OpenTables()

    def job(raw: bytes) -> bytes:
        job_id, task = pickle.loads(raw)
        reply = ("ok", job_id, EncodedAnswer.of(run_task(task, engine, tables)))
        return pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)

    for raw in tasks[:_WARMUP]:
        last = job(raw)
    timed = tasks[_WARMUP:]
    start = time.process_time()
    for raw in timed:
        job(raw)
    per = (time.process_time() - start) / len(timed)
    answer: EncodedAnswer = pickle.loads(last)[2]
    import json

    return per, len(json.loads(answer.public_json)["rows"])


def time_lean_floor(cells: int, calls: int) -> float | None:
    """CPU seconds per call of the engine's lean OpenDP calls: new measurement, its map check, its sample.

    ``None`` on a source tree without :mod:`sandbox._private.vault.dp.opendp_calls` (before it was added).
    """
    try:
        from sandbox._private.vault.dp import opendp_calls as oc
    except ImportError:
        return None
    start = time.process_time()
    for i in range(calls):
        eps = _epsilon(i)
        meas = oc.make_laplace(1.0 / eps)
        assert oc.privacy_map(meas, 1) <= eps * (1 + 1e-9)
        oc.sample_zeros(meas, cells)
    return (time.process_time() - start) / calls


def time_floor(cells: int, calls: int) -> tuple[float, float]:
    """CPU seconds per call: a prebuilt measurement's sample; a new measurement, its map check and its sample."""
    domain, metric = dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64")
    fixed = dp.m.make_laplace(domain, metric, scale=2.0)
    zeros = [0] * cells
    for _ in range(_WARMUP):
        fixed(zeros)
    start = time.process_time()
    for _ in range(calls):
        fixed(zeros)
    sample = (time.process_time() - start) / calls
    start = time.process_time()
    for i in range(calls):
        eps = _epsilon(i)
        meas = dp.m.make_laplace(domain, metric, scale=1.0 / eps)
        assert meas.map(1) <= eps * (1 + 1e-9)
        meas(zeros)
    return sample, (time.process_time() - start) / calls


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=3000, help="timed calls (after a warm-up of 200)")
    ap.add_argument("--households", type=int, default=20_000, help="households in the synthetic population")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        policy, tasks = _tasks(Path(tmp), args.households, args.calls + _WARMUP)
        ours, cells = time_worker(policy, tasks)
    sample, sampler = time_floor(cells, args.calls)
    lean = time_lean_floor(cells, args.calls)
    print(f"count by household_type ({cells} cells), {args.households:,} households, {args.calls} calls, CPU per call")
    print(f"  worker job (unpickle, run_task, EncodedAnswer.of, pickle): {ours * 1e3:8.3f} ms")
    print(f"  floor: new measurement + map check + sample (wrappers):  {sampler * 1e3:8.3f} ms")
    print(f"  floor: sample of a prebuilt measurement (wrappers):      {sample * 1e3:8.3f} ms")
    if lean is not None:
        print(f"  floor: new measurement + map check + sample (lean):      {lean * 1e3:8.3f} ms")
    print(f"  ratio ours / floor (new measurement, wrappers):          {ours / sampler:8.1f}x")
    if lean is not None:
        print(f"  ratio ours / floor (new measurement, lean):              {ours / lean:8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
