"""A worker's answer to a small question is the text the unoptimised path gives for the same noise draws.

The worker's per-answer savings (the statistics and the relation schema of a question asked again at a new
epsilon taken from memory, OpenDP called without its Python wrappers' conversions, canonical JSON in one pass)
must change nothing an analyst or the ledger sees: here every saving is switched off in turn (memories cleared,
OpenDP's wrappers with new domain and metric objects, the reference JSON rule) and the stored texts compared, the
noise fixed by one patched draw. The memory keys are checked to hold what an answer depends on.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from pathlib import Path
from typing import Any

import opendp.prelude as dp
import pytest
from conftest import write_policy

import sandbox as sb
import synthetic
from sandbox._private.shared import canonical
from sandbox._private.shared.query import AggregateQuery
from sandbox._private.vault.dp import aggregates, engine, mechanisms, opendp_calls
from sandbox._private.vault.dp.engine import DPEngine
from sandbox._private.vault.ledger import records
from sandbox._private.vault.ledger.ledger import EncodedAnswer
from sandbox._private.vault.server import open_service
from sandbox._private.vault.tables import OpenTables
from sandbox._private.vault.workers.worker import Task, run_task

dp.enable_features("contrib")

QUERIES: list[dict[str, Any]] = [
    {"dataset": "households", "kind": "count", "by": ["household_type"]},
    {"dataset": "households", "kind": "sum", "column": "disposable_income", "by": ["urbanisation", "poverty"]},
    {"dataset": "households", "kind": "mean", "column": "age", "where": (sb.col("n_children") >= 1).to_dict()},
    {"dataset": "households", "kind": "variance", "column": "savings_buffer", "delta": 1e-7},
    {"dataset": "households", "kind": "histogram", "column": "age", "bins": 7, "by": ["gender"]},
    {"dataset": "households", "kind": "quantile", "column": "disposable_income", "q": 0.5, "by": ["poverty"]},
    {"dataset": "persons", "kind": "count", "by": ["role"]},  # a many-row table: the household bound drops rows
    {"dataset": "persons", "kind": "mean", "column": "age", "join": [{"table": "households"}], "by": ["poverty"]},
]


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("worker")
    population = synthetic.write_population(root / "pop", 600, seed=8)
    svc = open_service(root / "ws", policy=write_policy(root / "p.yaml", epsilon_per_dataset=1e6))
    svc.registry.add_population(population)
    return svc


def _task(svc: Any, body: dict[str, Any], epsilon: float) -> Task:
    checked, record, recs, _ = svc._prepare_query({**body, "epsilon": epsilon})
    task = Task("aggregate", record, (checked.item, checked.cost), False, 10.0, recs)
    return pickle.loads(pickle.dumps(task))  # as the worker receives it


def _draws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fix the noise: every vector gets the same whole-number draws (cell i: (-1)**i * (3 i + 1)), a quantile a
    function of its epsilon and its cell's rows."""
    monkeypatch.setattr(mechanisms, "sample_zeros", lambda meas, n: [(-1) ** i * (3 * i + 1) for i in range(n)])
    monkeypatch.setattr(engine, "dp_quantile", lambda v, q, *, epsilon, bounds: bounds[0] + len(v) / epsilon)


def _wrapped_laplace(units: int, epsilon: float) -> tuple[Any, float]:
    """The Laplace sampler before this change: OpenDP's wrappers, new domain and metric objects each time."""
    make = lambda t: dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"), scale=t)  # noqa: E731
    t = units / epsilon
    while make(t).map(units) > epsilon:
        t = math.nextafter(t, math.inf)
    return make(t), t


def _wrapped_gaussian(units: int, epsilon: float, delta: float) -> tuple[Any, float]:
    rho = mechanisms.zcdp_rho(epsilon, delta)
    make = lambda s: dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T="i64")), dp.l2_distance(T="i64"), scale=s)  # noqa: E731
    sigma = units / math.sqrt(2.0 * rho)
    while make(sigma).map(units) > rho:
        sigma = math.nextafter(sigma, math.inf)
    return make(sigma), sigma


@pytest.mark.parametrize("body", QUERIES, ids=[f"{q['dataset']}-{q['kind']}" for q in QUERIES])
def test_an_answer_is_the_unoptimised_paths_text_for_the_same_draws(
    vault: Any, body: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _draws(monkeypatch)
    eng, tables = DPEngine(vault.policy), OpenTables()
    first = EncodedAnswer.of(run_task(_task(vault, body, 0.5), eng, tables))
    again = [EncodedAnswer.of(run_task(_task(vault, body, eps), eng, tables)) for eps in (0.25, 0.5)]
    assert again[1] == first  # from memory: the same text
    assert again[0] != first  # a new epsilon: new figures (same draws, another scale)
    # everything off: no memories, OpenDP through its wrappers, the reference JSON rule
    aggregates.clear_cache()
    monkeypatch.setattr(engine, "_RESOLVED", engine._Resolved())
    monkeypatch.setattr(aggregates, "_answer_key", lambda *a: None)
    monkeypatch.setattr(mechanisms, "_laplace_sampler", _wrapped_laplace)
    monkeypatch.setattr(mechanisms, "_gaussian_sampler", _wrapped_gaussian)
    monkeypatch.setattr(records, "canonical_json", canonical._reference_json)
    for eps, fast in ((0.5, first), (0.25, again[0])):
        slow = EncodedAnswer.of(run_task(_task(vault, body, eps), DPEngine(vault.policy), OpenTables()))
        assert slow.public_json == fast.public_json
        assert slow.private_json == fast.private_json
        assert slow.mechanism == fast.mechanism


def test_a_question_asked_again_at_a_new_epsilon_is_not_planned_again(
    vault: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng, tables = DPEngine(vault.policy), OpenTables()
    body = {"dataset": "persons", "kind": "sum", "column": "age", "by": ["gender"], "where": {"role": ["child"]}}
    run_task(_task(vault, body, 0.3), eng, tables)
    later = [_task(vault, body, eps) for eps in (0.31, 0.32, 1e-3)]  # checked in the vault (which resolves them)
    other = _task(vault, {**body, "where": {"role": ["partner"]}}, 0.3)
    calls = {"scan": 0, "resolve": 0}
    real_scan, real_resolve = aggregates._answer_cells, AggregateQuery.resolve

    def scan(*a: Any) -> Any:
        calls["scan"] += 1
        return real_scan(*a)

    def resolve(self: AggregateQuery, schemas: Any) -> Any:
        calls["resolve"] += 1
        return real_resolve(self, schemas)

    monkeypatch.setattr(aggregates, "_answer_cells", scan)
    monkeypatch.setattr(AggregateQuery, "resolve", resolve)
    for task in later:
        run_task(task, eng, tables)
    assert calls == {"scan": 0, "resolve": 0}
    run_task(other, eng, tables)  # another filter: planned (on the same relation, so its schema is known)
    assert calls == {"scan": 1, "resolve": 0}


def test_the_statistics_key_holds_all_but_epsilon_and_delta(vault: Any) -> None:
    tables = OpenTables()
    recs = {n: vault.ledger.dataset(n) for n in ("persons", "households")}
    catalog = tables.catalog(recs, load=True)

    def key(k: int = 3, **kw: Any) -> Any:
        q = AggregateQuery.from_dict({"dataset": "persons", "kind": "mean", "column": "age", "epsilon": 1.0, **kw})
        return aggregates._answer_key(q, q.resolve(catalog.schemas()), catalog, k)

    base = key(by=["gender"])
    assert base is not None and key(by=["gender"]) == base
    assert key(by=["gender"], epsilon=0.1) == base
    assert key(by=["gender"], delta=1e-6) == base
    others = [
        key(k=2, by=["gender"]),
        key(by=["role"]),
        key(by=["gender", "role"]),
        key(),
        key(by=["gender"], where=(sb.col("age") >= 18).to_dict()),
        key(by=["gender"], where=(sb.col("age") >= 19).to_dict()),
        key(by=["gender"], join=[{"table": "households"}]),
        key(by=["gender"], derive=[{"name": "band", "bin": "age", "edges": [0, 18, 105]}]),
    ]
    assert len({base, *others}) == len(others) + 1
    # values that compare equal but are not the same text (1 == 1.0 == True) are not taken for each other
    one = key(where={"op": "==", "column": "age", "value": 1})
    assert one is not None and one != key(where={"op": "==", "column": "age", "value": 1.0})
    # another table object (its key), or a table whose values are not known to lie in their bounds
    fresh = OpenTables().catalog(recs, load=True)
    q = AggregateQuery("persons", "count", epsilon=1.0)
    assert aggregates._answer_key(q, q.resolve(fresh.schemas()), fresh, 3) != aggregates._answer_key(
        q, q.resolve(catalog.schemas()), catalog, 3
    )
    # schemas that are not the catalog's objects (equal copies): no key (planned as before)
    copies = {n: dataclasses.replace(s) for n, s in catalog.schemas().items()}
    assert aggregates._answer_key(q, q.resolve(copies), catalog, 3) is None


def test_the_resolved_schema_is_the_queries_own_and_only_for_the_same_schema_objects(vault: Any) -> None:
    recs = {n: vault.ledger.dataset(n) for n in ("persons", "households")}
    catalog = OpenTables().catalog(recs, load=True)
    memo = engine._Resolved()
    q = AggregateQuery.from_dict(
        {"dataset": "persons", "kind": "count", "epsilon": 1.0, "join": [{"table": "households"}]}
    )
    rs = memo.resolve(q, catalog.schemas())
    assert rs == q.resolve(catalog.schemas())
    assert memo.resolve(q, catalog.schemas()) is rs
    copies = {n: dataclasses.replace(s) for n, s in catalog.schemas().items()}  # equal, other objects: anew
    again = memo.resolve(q, copies)
    assert again == rs and again is not rs and memo.resolve(q, copies) is again
    with pytest.raises(sb.QueryError, match="no dataset 'signals_x'"):
        memo.resolve(AggregateQuery("signals_x", "count", epsilon=1.0), catalog.schemas())


def test_opendp_errors_come_through_as_opendps() -> None:
    with pytest.raises(dp.OpenDPException):
        opendp_calls.make_laplace(-1.0)
    with pytest.raises(dp.OpenDPException):
        opendp_calls.make_gaussian(math.nan)


def test_the_lean_constructors_make_the_wrappers_measurements() -> None:
    for scale in (0.5, 2.0, 1e6):
        lean = opendp_calls.make_laplace(scale)
        wrapped = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"), scale=scale)
        assert str(lean.output_measure) == str(wrapped.output_measure)
        assert [lean.map(u) for u in (1, 7, 10**6)] == [wrapped.map(u) for u in (1, 7, 10**6)]
        lean_g = opendp_calls.make_gaussian(scale)
        wrapped_g = dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T="i64")), dp.l2_distance(T="i64"), scale=scale)
        assert str(lean_g.output_measure) == str(wrapped_g.output_measure)
        assert [opendp_calls.privacy_map(lean_g, u) for u in (1, 7)] == [wrapped_g.map(u) for u in (1, 7)]


def test_the_benchmark_runs(tmp_path: Path) -> None:
    from benchmarks import bench_worker_answer

    policy, tasks = bench_worker_answer._tasks(tmp_path, 300, bench_worker_answer._WARMUP + 20)
    per, cells = bench_worker_answer.time_worker(policy, tasks)
    assert per > 0 and cells == 5
