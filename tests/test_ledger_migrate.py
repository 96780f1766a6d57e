"""Migrating a schema-1 ledger (a budget per table version) to one budget per population keeps every charge.

The old ledger is built here with the DDL of schema 1 (as ``main`` wrote it before populations) and filled with
charges on several tables, versions and analysts. Reference: the charges before the migration (ids, hashes, ε),
and their sums per population computed here.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from sandbox._private.shared.canonical import canonical_json, sha256_hex
from sandbox._private.shared.errors import BudgetExceededError
from sandbox._private.vault.ledger.db import LedgerDB
from sandbox._private.vault.ledger.ledger import CHARGE_EVENT, ComputedAnswer, Ledger
from sandbox._private.vault.ledger.migrate import migrate_ledger, plan_migration
from sandbox._private.vault.ledger.schema import LedgerSchemaError
from sandbox._private.vault.outbox.journal import read_entries
from sandbox._private.vault.outbox.verify import verify_workspace
from sandbox.cli import main

# The ledger's DDL before round 2 (schema 1), verbatim.
OLD_DDL = (
    """CREATE TABLE IF NOT EXISTS datasets (
        name TEXT NOT NULL, version INTEGER NOT NULL, files_sha256 TEXT NOT NULL, schema_sha256 TEXT NOT NULL,
        schema_json TEXT NOT NULL, path TEXT NOT NULL, epsilon_budget DOUBLE PRECISION NOT NULL,
        delta_budget DOUBLE PRECISION NOT NULL, created TEXT NOT NULL, PRIMARY KEY (name, version))""",
    """CREATE TABLE IF NOT EXISTS charges (
        id TEXT PRIMARY KEY, dataset TEXT NOT NULL, version INTEGER NOT NULL, kind TEXT NOT NULL,
        query_key TEXT NOT NULL, query_json TEXT NOT NULL, epsilon DOUBLE PRECISION NOT NULL,
        delta DOUBLE PRECISION NOT NULL, mechanism TEXT NOT NULL, public_json TEXT NOT NULL,
        result_sha256 TEXT NOT NULL, private_json TEXT NOT NULL, analyst TEXT NOT NULL, run_id TEXT,
        created TEXT NOT NULL, UNIQUE (dataset, version, query_key),
        FOREIGN KEY (dataset, version) REFERENCES datasets (name, version))""",
    "CREATE INDEX IF NOT EXISTS charges_by_analyst ON charges (dataset, version, analyst)",
)
# (table, versions, charges per version, ε per charge): households v1 and v2 spent 4.0 + 4.0, persons 3.0,
# signals 0.5 (11.5 in all, each table within its old budget of 10), extra 3.0
SPEND = [("households", 2, 8, 0.5), ("persons", 1, 6, 0.5), ("signals", 1, 2, 0.25), ("extra", 1, 3, 1.0)]


def _build_old(db: LedgerDB) -> list[tuple[Any, ...]]:
    rows = []
    with db.transaction() as tx:
        for stmt in OLD_DDL:
            tx.execute(stmt)
        n = 0
        for table, versions, per_version, eps in SPEND:
            schema = json.dumps({"name": table, "privacy_unit": "household"})
            for v in range(1, versions + 1):
                tx.execute(
                    "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (table, v, "f" * 64, "s" * 64, schema, f"/data/{table}/{v}", 10.0, 1e-6, "2026-01-01"),
                )
                for j in range(per_version):
                    n += 1
                    public = canonical_json({"values": [n]})
                    row = (
                        f"r_old{n}", table, v, "aggregate", f"k{j}", "{}", eps, 0.0, "Laplace", public,
                        sha256_hex(public), "{}", ("ann", "bob")[n % 2], None, f"2026-01-01T00:00:{n:02d}",
                    )  # fmt: skip
                    tx.execute(f"INSERT INTO charges VALUES ({', '.join('?' * 15)})", row)
                    rows.append(row)
    return rows


@pytest.fixture(params=["sqlite", "postgresql"])
def old_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, list[tuple[Any, ...]]]:
    if request.param == "sqlite":
        target = str(tmp_path / "ws" / "vault" / "ledger.sqlite")
    else:
        target = request.getfixturevalue("postgres").fresh_database("migrate_" + request.node.name[5:20].lower())
    return target, _build_old(LedgerDB(target))


def _charges(target: str) -> list[tuple[Any, ...]]:
    with LedgerDB(target).transaction(write=False) as tx:
        return tx.execute("SELECT * FROM charges ORDER BY id")  # the same columns as the old rows


def test_old_ledger_is_refused_with_the_migration_command(old_ledger: tuple[str, list[Any]]) -> None:
    target, _ = old_ledger
    with pytest.raises(LedgerSchemaError, match=r"older sandbox \(schema 1.*Migrate it with `sandbox ledger migrate"):
        Ledger(target)


def test_migration_keeps_every_charge_and_shares_one_budget(old_ledger: tuple[str, list[Any]]) -> None:
    target, rows = old_ledger
    db = LedgerDB(target)
    plan = plan_migration(db, epsilon=10.0, delta=1e-6)
    assert [(p.name, p.tables) for p in plan.populations] == [
        ("extra", ("extra",)),
        ("population", ("households", "persons", "signals")),
    ]
    assert _charges(target) == sorted(rows)  # planning changes nothing
    migrate_ledger(db, plan)
    assert _charges(target) == sorted(rows)  # every charge, byte for byte: id, hash, ε, analyst, time

    ledger = Ledger(target)
    expected: dict[str, float] = defaultdict(float)
    by_analyst: dict[tuple[str, str], float] = defaultdict(float)
    for r in rows:
        pop = "extra" if r[1] == "extra" else "population"
        expected[pop] += r[6]
        by_analyst[(pop, r[12])] += r[6]
    pop = ledger.population("population")
    assert pop.epsilon_spent == pytest.approx(expected["population"]) == pytest.approx(11.5)
    assert pop.epsilon_remaining == 0.0  # 11.5 spent of 10: the old per-table budgets hid the overspend
    assert pop.answers == 24 and ledger.population("extra").epsilon_spent == pytest.approx(3.0)
    status = ledger.budget(ledger.dataset("persons"), analyst="ann", analyst_limit=20.0)
    assert status.population == "population" and status.analyst_epsilon_spent == pytest.approx(
        by_analyst[("population", "ann")]
    )
    for r in rows:
        ledger.result(r[0]).verify()
    with pytest.raises(BudgetExceededError):
        ledger.charge(
            ledger.dataset("signals"), kind="aggregate", query_key="new", query={}, epsilon=0.1, delta=0.0,
            analyst="ann", run_id=None, compute=lambda: ComputedAnswer({}, {}, "x"),
        )  # fmt: skip
    extra = ledger.charge(
        ledger.dataset("extra"), kind="aggregate", query_key="new", query={}, epsilon=0.5, delta=0.0,
        analyst="ann", run_id=None, compute=lambda: ComputedAnswer({"v": 1}, {}, "x"),
    )  # fmt: skip
    assert extra.epsilon_remaining == pytest.approx(6.5)
    with pytest.raises(LedgerSchemaError, match="already of schema 2; there is nothing to migrate"):
        plan_migration(db, epsilon=10.0, delta=1e-6)


def test_migration_groups_and_refusals(old_ledger: tuple[str, list[Any]]) -> None:
    from sandbox._private.shared.errors import SchemaError

    target, rows = old_ledger
    db = LedgerDB(target)
    with pytest.raises(SchemaError, match="tables the ledger does not have: nope"):
        plan_migration(db, epsilon=10.0, delta=1e-6, groups={"p": ["households", "nope"]})
    with pytest.raises(SchemaError, match="persons are in more than one population"):
        plan_migration(db, epsilon=10.0, delta=1e-6, groups={"a": ["persons"], "b": ["persons", "signals"]})
    plan = plan_migration(db, epsilon=20.0, delta=1e-6, groups={"all": ["households", "persons", "signals", "extra"]})
    migrate_ledger(db, plan)
    assert Ledger(target).population("all").epsilon_spent == pytest.approx(sum(r[6] for r in rows))
    assert _charges(target) == sorted(rows)


def test_cli_migrate_backs_up_journals_and_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    target = str(ws / "vault" / "ledger.sqlite")
    rows = _build_old(LedgerDB(target))
    assert main(["budget", "households", "--workspace", str(ws)]) == 2
    assert "sandbox ledger migrate --workspace" in capsys.readouterr().err
    assert main(["ledger", "migrate", "--workspace", str(ws), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "27 charges are kept" in out and "dry run: nothing changed" in out
    assert "population population (household): tables households, persons, signals; 24 charges spent ε 11.5" in out
    assert main(["ledger", "migrate", "--workspace", str(ws)]) == 0
    out = capsys.readouterr().out
    assert "migrated: 2 populations, 27 charges kept (27 journalled now)" in out
    backup = sqlite3.connect(target + ".schema1-backup")
    assert backup.execute("SELECT COUNT(*) FROM charges").fetchone()[0] == 27
    backup.close()
    entries = read_entries(ws / "vault" / "audit.jsonl")
    assert entries[0].type == "ledger.migrated"
    logged = {e.payload["id"]: e.payload for e in entries if e.type == CHARGE_EVENT}
    assert set(logged) == {r[0] for r in rows}
    assert all(logged[r[0]]["result_sha256"] == r[10] for r in rows)
    report = verify_workspace(ws)
    assert report.ok, report.first_problem
    assert main(["ledger", "populations", "--workspace", str(ws)]) == 0
    assert "population\thousehold\ttables households, persons, signals\tε spent 11.5 of 10" in capsys.readouterr().out
