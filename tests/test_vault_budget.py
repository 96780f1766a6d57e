"""System tests of budget enforcement through real vault processes: exhaustion, a 16-process race over HTTP
spread over the three tables of one population, SIGKILL in the middle of queries, and the ledger on a real
PostgreSQL server."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import PostgresServer, VaultProcess, write_policy

from sandbox._private.vault.ledger.ledger import Ledger
from sandbox._private.vault.server import open_service

pytestmark = pytest.mark.system


def _start(
    factory: Callable[..., VaultProcess], population: Path, policy: Path, ledger_url: str | None = None
) -> VaultProcess:
    v = factory(policy=policy, ledger_url=ledger_url)
    open_service(v.workspace, policy=policy, ledger_url=ledger_url).registry.add_population(population)
    return v.start()


@pytest.fixture(scope="module")
def small_budget(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_policy(
        tmp_path_factory.mktemp("policy") / "small.yaml", epsilon_per_dataset=1.0, epsilon_per_query_max=0.5
    )


@pytest.fixture
def small_vault(vault_factory: Callable[..., VaultProcess], small_population: Path, small_budget: Path) -> VaultProcess:
    """A vault whose population (households, persons, signals) has one budget of 1.0."""
    return _start(vault_factory, small_population, small_budget)


def _count(eps: float, by: str = "household_type") -> dict[str, Any]:
    return {"dataset": "households", "kind": "count", "by": [by], "epsilon": eps}


def test_budget_exhaustion_names_requested_remaining_and_shortfall(small_vault: VaultProcess) -> None:
    v = small_vault
    with v.client() as c:
        assert c.post("/v1/query", json=_count(0.5)).status_code == 200
        assert c.post("/v1/query", json=_count(0.4, "urbanisation")).status_code == 200
        before = c.get("/v1/budget/households").json()
        r = c.post("/v1/query", json=_count(0.3, "arrears"))
        after = c.get("/v1/budget/households").json()
    assert r.status_code == 409
    assert r.json()["error"] == "BudgetExceededError"
    assert "requested ε=0.3, remaining ε=0.1, short by 0.2" in r.json()["message"]
    assert "smaller epsilon" in r.json()["message"] and "privacy officer" in r.json()["message"]
    assert "regist" not in r.json()["message"]
    assert before == after and after["epsilon_spent"] == pytest.approx(0.9)
    assert after["population"] == "population" and after["tables"] == ["households", "persons", "signals"]


_RACE = [
    {"dataset": "persons", "kind": "sum", "column": "income"},
    {"dataset": "households", "kind": "count", "by": ["urbanisation"]},
    {"dataset": "signals", "kind": "count"},
]


def _race_one(url: str, token: str, i: int, barrier: Any, out: Any) -> None:
    barrier.wait()
    r = httpx.post(
        url + "/v1/query",
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
        json={**_RACE[i % 3], "epsilon": 0.1 + i * 1e-9},
    )
    out.put((r.status_code, r.json().get("charged_epsilon")))


def test_sixteen_processes_over_three_tables_never_overspend_the_population(small_vault: VaultProcess) -> None:
    v = small_vault
    token = v.token()
    with v.client() as c:
        warm = {"dataset": "persons", "kind": "count", "by": ["gender"], "epsilon": 0.5}
        assert c.post("/v1/query", json=warm).status_code == 200
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(16), ctx.Queue()
    procs = [ctx.Process(target=_race_one, args=(v.url, token, i, barrier, out)) for i in range(16)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    statuses = sorted(s for s, _ in results)
    ledger = Ledger(v.layout.ledger)
    charges = ledger.charges()
    spent = sum(ch.epsilon for ch in charges)
    assert set(statuses) <= {200, 409}
    wins = statuses.count(200)
    assert wins == 4  # 0.5 left buys four of 0.1 + i·1e-9 (the fifth would need a little more than remains)
    assert spent <= 1.0 + 1e-9 and ledger.budget(ledger.dataset("signals")).epsilon_spent == pytest.approx(spent)
    assert len(charges) == 1 + wins and ledger.kept_charges() == []
    assert {ch.dataset for ch in charges[1:]} <= {"persons", "households", "signals"}


def test_sigkill_mid_queries_leaves_ledger_consistent(
    vault_factory: Callable[..., VaultProcess], small_population: Path, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "p.yaml", epsilon_per_dataset=1000.0, epsilon_per_query_max=1.0)
    v = _start(vault_factory, small_population, policy)
    v.token()
    answered: list[str] = []
    stop = threading.Event()

    def worker(w: int) -> None:
        with v.client() as c:
            for i in range(10_000):
                if stop.is_set():
                    return
                try:
                    r = c.post(
                        "/v1/query",
                        json={
                            "dataset": "persons",
                            "kind": "mean",
                            "column": "income",
                            "by": ["gender"],
                            "epsilon": 0.001 + 1e-7 * (w * 10_000 + i),
                        },
                    )
                except httpx.HTTPError:
                    return
                if r.status_code == 200:
                    answered.append(r.json()["id"])

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(answered) < 12 and time.monotonic() < deadline:
        time.sleep(0.01)
    v.kill()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(answered) >= 12

    ledger = Ledger(v.layout.ledger)
    charges = ledger.charges("persons")
    for ch in charges:
        ch.verify()  # every charge row carries its answer, and the answer its hash
        assert ch.public_json.startswith("{") and ch.epsilon > 0
    assert set(answered) <= {ch.id for ch in charges}  # every answer returned was charged first
    kept = ledger.kept_charges("persons")  # computations the kill interrupted: their charges stay spent
    status = ledger.budget(ledger.dataset("persons"))
    assert status.epsilon_spent == pytest.approx(sum(ch.epsilon for ch in charges) + sum(k.epsilon for k in kept))
    assert status.answers == len(charges)

    v.start()  # restart on the same ledger: its startup keeps the pending charges of the dead vault as failed
    with v.client() as c:
        r = c.post("/v1/query", json={"dataset": "persons", "kind": "count", "epsilon": 0.5})
        b = c.get("/v1/budget/persons").json()
    assert r.status_code == 200
    assert b["epsilon_spent"] == pytest.approx(status.epsilon_spent + 0.5)
    assert Ledger(v.layout.ledger).kept_charges(state="pending") == []
    from sandbox.cli import main

    assert main(["verify", "--workspace", str(v.workspace)]) == 0


def test_ledger_on_postgresql_through_the_vault(
    vault_factory: Callable[..., VaultProcess], small_population: Path, small_budget: Path, postgres: PostgresServer
) -> None:
    url = postgres.fresh_database("vault_system")
    v = _start(vault_factory, small_population, small_budget, ledger_url=url)
    with v.client() as c:
        first = c.post("/v1/query", json=_count(0.5)).json()
        again = c.post("/v1/query", json=_count(0.5)).json()
        ok = c.post("/v1/query", json=_count(0.5, "arrears"))
        refused = c.post("/v1/query", json=_count(0.1, "urbanisation"))
    assert again["id"] == first["id"] and again["charged_epsilon"] == 0.0
    assert ok.status_code == 200 and refused.status_code == 409
    pg = Ledger(url)
    assert [c.id for c in pg.charges("households")] == [first["id"], ok.json()["id"]]
    assert pg.budget(pg.dataset("households")).epsilon_spent == pytest.approx(1.0)
    assert not v.layout.ledger.exists()  # nothing went to SQLite
