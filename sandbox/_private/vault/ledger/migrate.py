"""Migrate a schema-1 ledger (a budget per table version) to schema 2 (one budget per population), keeping every charge.

The migration is one transaction: either the whole ledger is migrated or nothing changed. ``charges`` is not
touched (every stored answer keeps its id, hash and ε); ``datasets`` gains its ``population`` column; the new tables
are created and the running totals computed once from the history (the one time the ledger sums it). Before
committing, the figures are checked: the number of charges and their ε, per table, equal what was there before,
and every population's spent ε equals the sum of its tables' charges.

Which tables form one population: by default the tables a generated population registers (households, persons,
signals: :data:`~sandbox._private.vault.registry.POPULATION_TABLES`) form population ``population`` when they
share their privacy unit, and every other table is a population of its own; ``groups`` overrides this. Each
population's budget is the one given (the policy's ``budget.epsilon_per_dataset`` by default): when the charges
of its tables already spent more, nothing is left to spend, and the plan says so.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sandbox._private.shared.errors import SchemaError

from .db import LedgerDB, Tx
from .schema import DDL, PG_FUNCTIONS, SCHEMA_VERSION, LedgerSchemaError, schema_version

__all__ = ["MigrationPlan", "plan_migration", "migrate_ledger", "DEFAULT_GROUP", "DEFAULT_POPULATION"]

DEFAULT_POPULATION = "population"
DEFAULT_GROUP: tuple[str, ...] = ("households", "persons", "signals")
_TOL = 1e-9


@dataclass(frozen=True)
class PlannedPopulation:
    """One population of the migrated ledger: its tables, budget and what their charges already spent."""

    name: str
    tables: tuple[str, ...]
    privacy_unit: str
    epsilon_budget: float
    delta_budget: float
    epsilon_spent: float
    delta_spent: float
    charges: int

    @property
    def epsilon_remaining(self) -> float:
        return max(0.0, self.epsilon_budget - self.epsilon_spent)


@dataclass(frozen=True)
class MigrationPlan:
    """What :func:`migrate_ledger` does: the populations, and the charges it keeps (per table: count and ε)."""

    populations: tuple[PlannedPopulation, ...]
    charges: int
    epsilon_by_table: Mapping[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """Return a human summary, one line per population."""
        out = [f"{self.charges} charges are kept, each with its id, answer, hash and ε"]
        for p in self.populations:
            left = "nothing left" if p.epsilon_remaining == 0 else f"{p.epsilon_remaining:g} left"
            out.append(
                f"population {p.name} ({p.privacy_unit or 'no privacy unit'}): tables {', '.join(p.tables)}; "
                f"{p.charges} charges spent ε {p.epsilon_spent:g} of {p.epsilon_budget:g} ({left})"
            )
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "charges": self.charges,
            "populations": {
                p.name: {
                    "tables": list(p.tables),
                    "epsilon_budget": p.epsilon_budget,
                    "delta_budget": p.delta_budget,
                    "epsilon_spent": p.epsilon_spent,
                    "charges": p.charges,
                }
                for p in self.populations
            },
        }


def _unit(schema_json: str) -> str:
    try:
        return str(json.loads(schema_json).get("privacy_unit", ""))
    except (ValueError, AttributeError):
        return ""


def _groups(tables: Mapping[str, str], groups: Mapping[str, Sequence[str]] | None) -> dict[str, list[str]]:
    """Assign every table (name -> privacy unit) to exactly one population."""
    out: dict[str, list[str]] = {}
    if groups:
        for pop, members in groups.items():
            out[pop] = list(members)
    else:
        default = [t for t in DEFAULT_GROUP if t in tables]
        if len(default) > 1 and len({tables[t] for t in default}) == 1:
            out[DEFAULT_POPULATION] = default
    placed = [t for members in out.values() for t in members]
    unknown = sorted(set(placed) - set(tables))
    if unknown:
        raise SchemaError(f"--population names tables the ledger does not have: {', '.join(unknown)}.")
    twice = sorted({t for t in placed if placed.count(t) > 1})
    if twice:
        raise SchemaError(f"Tables {', '.join(twice)} are in more than one population; put each in one.")
    for pop, members in out.items():
        units = {tables[t] for t in members}
        if len(units) > 1:
            raise SchemaError(
                f"Population {pop!r} would mix privacy units {sorted(units)}; a population's tables share one."
            )
    for t in sorted(set(tables) - set(placed)):
        if t in out:
            raise SchemaError(f"Table {t!r} is not in a population, and a population is already named {t!r}.")
        out[t] = [t]
    return out


def _read_v1(tx: Tx) -> tuple[dict[str, str], dict[str, list[tuple[str, float, float]]]]:
    tables: dict[str, str] = {}
    for name, schema_json in tx.execute("SELECT name, schema_json FROM datasets ORDER BY name, version"):
        tables[str(name)] = _unit(str(schema_json))
    charges: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    for dataset, analyst, eps, delta in tx.execute("SELECT dataset, analyst, epsilon, delta FROM charges"):
        charges[str(dataset)].append((str(analyst), float(eps), float(delta)))
    return tables, charges


def plan_migration(
    db: LedgerDB, *, epsilon: float, delta: float, groups: Mapping[str, Sequence[str]] | None = None
) -> MigrationPlan:
    """Plan the migration of a schema-1 ledger (nothing is written).

    Raises
    ------
    LedgerSchemaError
        The ledger is not of schema 1 (already migrated, empty, or newer).
    SchemaError
        ``groups`` names unknown tables, a table twice, or mixes privacy units.
    """
    with db.transaction(write=False) as tx:
        version = schema_version(tx)
        if version != 1:
            state = "empty" if version is None else f"already of schema {version}"
            raise LedgerSchemaError(f"The ledger {db!r} is {state}; there is nothing to migrate.")
        tables, charges = _read_v1(tx)
    pops = []
    for name, members in sorted(_groups(tables, groups).items()):
        rows = [c for t in members for c in charges.get(t, [])]
        pops.append(
            PlannedPopulation(
                name=name,
                tables=tuple(members),
                privacy_unit=tables[members[0]],
                epsilon_budget=float(epsilon),
                delta_budget=float(delta),
                epsilon_spent=sum(e for _, e, _ in rows),
                delta_spent=sum(d for _, _, d in rows),
                charges=len(rows),
            )
        )
    by_table = {t: sum(e for _, e, _ in rows) for t, rows in charges.items()}
    return MigrationPlan(tuple(pops), sum(len(v) for v in charges.values()), by_table)


def migrate_ledger(db: LedgerDB, plan: MigrationPlan) -> MigrationPlan:
    """Carry out ``plan`` in one transaction; check that every charge is kept before committing."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    with db.transaction() as tx:
        if schema_version(tx) != 1:
            raise LedgerSchemaError(f"The ledger {db!r} changed since the plan was made; plan the migration again.")
        _, charges = _read_v1(tx)
        if sum(len(v) for v in charges.values()) != plan.charges:
            raise LedgerSchemaError("The ledger gained charges since the plan was made; stop the vault and retry.")
        tx.execute("ALTER TABLE datasets ADD COLUMN population TEXT")
        for stmt in DDL:
            if stmt.startswith("CREATE TABLE IF NOT EXISTS datasets") or stmt.startswith(
                "CREATE TABLE IF NOT EXISTS charges"
            ):
                continue
            tx.execute(stmt)
        for p in plan.populations:
            tx.execute(
                "INSERT INTO populations (name, privacy_unit, epsilon_budget, delta_budget, epsilon_spent, "
                "delta_spent, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (p.name, p.privacy_unit, p.epsilon_budget, p.delta_budget, p.epsilon_spent, p.delta_spent, now),
            )
            for t in p.tables:
                tx.execute(
                    "UPDATE datasets SET population = ?, epsilon_budget = ?, delta_budget = ? WHERE name = ?",
                    (p.name, p.epsilon_budget, p.delta_budget, t),
                )
            spend: dict[str, float] = defaultdict(float)
            for t in p.tables:
                for analyst, eps, _ in charges.get(t, []):
                    spend[analyst] += eps
            for analyst, eps in sorted(spend.items()):
                tx.execute(
                    "INSERT INTO analyst_spend (population, analyst, epsilon_spent) VALUES (?, ?, ?)",
                    (p.name, analyst, eps),
                )
        if tx.backend == "postgresql":
            for function in PG_FUNCTIONS:
                tx.execute(function)
            tx.execute("ALTER TABLE datasets ALTER COLUMN population SET NOT NULL")
            tx.execute("ALTER TABLE datasets ADD FOREIGN KEY (population) REFERENCES populations (name)")
        tx.execute("INSERT INTO ledger_meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        _check_kept(tx, plan)
    return plan


def _check_kept(tx: Tx, plan: MigrationPlan) -> None:
    """Refuse to commit unless every charge is still there with its ε, and every population adds up."""
    after: dict[str, float] = defaultdict(float)
    n = 0
    for dataset, eps in tx.execute("SELECT dataset, epsilon FROM charges"):
        after[str(dataset)] += float(eps)
        n += 1
    if n != plan.charges or any(abs(after[t] - e) > _TOL for t, e in plan.epsilon_by_table.items()):
        raise LedgerSchemaError("The migration would change the charges; nothing was migrated. Report this bug.")
    missing = tx.execute("SELECT name FROM datasets WHERE population IS NULL")
    if missing:
        raise LedgerSchemaError(f"Tables {sorted({r[0] for r in missing})} got no population; nothing was migrated.")
    for p in plan.populations:
        row = tx.one(
            "SELECT COALESCE(SUM(c.epsilon), 0) FROM charges c JOIN datasets d ON d.name = c.dataset "
            "AND d.version = c.version WHERE d.population = ?",
            (p.name,),
        )
        if row is None or abs(float(row[0]) - p.epsilon_spent) > _TOL:
            raise LedgerSchemaError(f"Population {p.name!r} does not add up; nothing was migrated. Report this bug.")
