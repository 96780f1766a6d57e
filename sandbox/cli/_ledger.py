"""``sandbox ledger``: migrate an old ledger, list populations and their budgets, set a population's budget."""

from __future__ import annotations

import click

from ._vault import _workspace

_ledger_url = click.option("--ledger-url", envvar="SANDBOX_LEDGER_URL", help="postgresql://... (default: the vault's).")


@click.group()
def ledger() -> None:
    """Manage the privacy ledger: one budget per population, shared by every table and version registered from it."""


def _groups(specs: tuple[str, ...]) -> dict[str, list[str]] | None:
    if not specs:
        return None
    out: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, tables = spec.partition("=")
        members = [t.strip() for t in tables.split(",") if t.strip()]
        if not sep or not name.strip() or not members:
            raise click.UsageError(
                f"--population {spec!r}: write NAME=TABLE[,TABLE...], e.g. population=households,persons"
            )
        out[name.strip()] = members
    return out


@ledger.command("migrate")
@_workspace
@_ledger_url
@click.option(
    "--population",
    "populations",
    multiple=True,
    metavar="NAME=TABLE[,TABLE...]",
    help="Tables that form one population (repeatable). Default: households, persons and signals form "
    "'population'; every other table is its own.",
)
@click.option(
    "--policy", type=click.Path(dir_okay=False), help="Policy whose budget.epsilon_per_dataset each population gets."
)
@click.option("--epsilon", type=float, default=None, help="ε budget of each population (default: the policy's).")
@click.option("--dry-run", is_flag=True, help="Show the plan; change nothing.")
def migrate(
    workspace: str,
    ledger_url: str | None,
    populations: tuple[str, ...],
    policy: str | None,
    epsilon: float | None,
    dry_run: bool,
) -> None:
    """Migrate a ledger of an older sandbox (a budget per table version) to one budget per population.

    Every charge is kept; the migration is one transaction, journalled. Stop the vault first. A SQLite ledger is
    first copied to ledger.sqlite.schema1-backup.
    """
    from sandbox._private.shared.layout import WorkspaceLayout
    from sandbox._private.shared.policy import load_policy
    from sandbox._private.vault.ledger.db import LedgerDB
    from sandbox._private.vault.ledger.migrate import migrate_ledger, plan_migration
    from sandbox._private.vault.outbox.journal import AuditLog
    from sandbox._private.vault.server import ledger_target

    layout = WorkspaceLayout.create(workspace)
    db = LedgerDB(ledger_target(layout, ledger_url))
    rules = load_policy(policy).budget
    plan = plan_migration(
        db, epsilon=epsilon if epsilon is not None else rules.epsilon_per_dataset, delta=rules.delta_per_dataset,
        groups=_groups(populations),
    )  # fmt: skip
    for line in plan.lines():
        click.echo(line)
    if dry_run:
        click.echo("dry run: nothing changed")
        return
    if db.backend == "sqlite":
        import sqlite3

        backup = f"{db.url}.schema1-backup"
        with sqlite3.connect(db.url) as src, sqlite3.connect(backup) as dst:
            src.backup(dst)
        click.echo(f"backup of the old ledger: {backup}")
    migrate_ledger(db, plan)
    from sandbox._private.vault.ledger.ledger import Ledger

    ledger_now = Ledger(db)
    journal = AuditLog(layout.journal)
    journal.append("admin", "ledger.migrated", {"from_schema": 1, "to_schema": 2, **plan.to_json()})
    logged = ledger_now.journal_unlogged(journal)
    click.echo(f"migrated: {len(plan.populations)} populations, {plan.charges} charges kept ({logged} journalled now)")


@ledger.command("populations")
@_workspace
@_ledger_url
def populations_cmd(workspace: str, ledger_url: str | None) -> None:
    """List populations: their tables, budget, spent and remaining ε."""
    from sandbox._private.vault.server import open_service

    for p in open_service(workspace, ledger_url=ledger_url).ledger.populations():
        click.echo(
            f"{p.name}\t{p.privacy_unit}\ttables {', '.join(p.tables)}\tε spent {p.epsilon_spent:g} of "
            f"{p.epsilon_budget:g} (remaining {p.epsilon_remaining:g})\t{p.answers} answers"
        )


@ledger.command("set-budget")
@click.argument("population")
@click.option("--epsilon", type=float, required=True, help="The population's new total ε budget.")
@click.option("--reason", required=True, help="The privacy officer's reason (journalled; reviewers read it).")
@click.option("--by", "actor", required=True, help="Who decided (the privacy officer's name).")
@_workspace
@_ledger_url
def set_budget(
    population: str, epsilon: float, reason: str, actor: str, workspace: str, ledger_url: str | None
) -> None:
    """Set a population's total ε budget: the privacy officer's decision, journalled. Spent ε never changes."""
    from sandbox._private.vault.outbox.journal import AuditLog
    from sandbox._private.vault.server import open_service

    if len(reason.strip()) < 10:
        raise click.UsageError("--reason: give the decision's reason in a sentence (at least 10 characters).")
    svc = open_service(workspace, ledger_url=ledger_url)
    before, after = svc.ledger.set_budget(population, epsilon=epsilon)
    AuditLog(svc.layout.journal).append(
        actor, "population.budget_set", {
            "population": population, "epsilon_budget_before": before.epsilon_budget,
            "epsilon_budget": after.epsilon_budget, "epsilon_spent": after.epsilon_spent, "reason": reason.strip(),
        },
    )  # fmt: skip
    click.echo(
        f"population {population}: ε budget {before.epsilon_budget:g} -> {after.epsilon_budget:g} "
        f"(spent {after.epsilon_spent:g}, remaining {after.epsilon_remaining:g})"
    )
