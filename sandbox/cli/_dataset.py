"""``sandbox dataset`` and ``sandbox budget``: register protected tables and read their budgets."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ._vault import _existing_workspace, _workspace

if TYPE_CHECKING:
    from sandbox._private.vault.ledger.ledger import DatasetRecord
    from sandbox._private.vault.service import VaultService

_policy = click.option("--policy", type=click.Path(dir_okay=False), help="Policy YAML that sets the budget.")
_ledger = click.option("--ledger-url", envvar="SANDBOX_LEDGER_URL", help="postgresql://... (default: the vault's).")
_population = click.option(
    "--population",
    default=None,
    help="Population whose one budget the table spends (an existing one: the table joins it; journalled).",
)
_engine = click.option(
    "--engine",
    type=click.Choice(["duckdb", "spark"]),
    default="duckdb",
    show_default=True,
    help="Where the exact statistics are computed (spark: see docs/operator.md).",
)


@click.group()
def dataset() -> None:
    """Register protected datasets in the vault (the schema is public; the rows are not)."""


@dataset.command("add")
@click.argument("name")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--schema", "schema_file", required=True, type=click.Path(dir_okay=False), help="TableSchema JSON.")
@_workspace
@_policy
@_ledger
@_population
@_engine
def add(
    name: str,
    path: str,
    schema_file: str,
    workspace: str,
    policy: str | None,
    ledger_url: str | None,
    population: str | None,
    engine: str,
) -> None:
    """Copy PATH (Parquet or CSV) into the vault as a new version of NAME, checked against its schema.

    A new version spends the budget of NAME's population (re-registering restores nothing); a new table starts a
    population of its own unless --population names one.
    """
    from sandbox._private.vault.server import open_service

    svc = open_service(workspace, policy=policy, ledger_url=ledger_url)
    rec = svc.registry.add(name, path, schema_file, population=population, engine=engine)
    _echo_registered(svc, rec)
    click.echo(f"  sha256 {rec.files_sha256}")


def _echo_registered(svc: VaultService, rec: DatasetRecord) -> None:
    pop = svc.ledger.population(rec.population)
    click.echo(
        f"registered {rec.name} v{rec.version} in population {pop.name} "
        f"(tables {', '.join(pop.tables)}): ε budget {pop.epsilon_budget:g}, spent {pop.epsilon_spent:g}"
    )


@dataset.command("add-population")
@click.argument("directory", type=click.Path(file_okay=False))
@_workspace
@_policy
@_ledger
@click.option("--population", default=None, help="Name of the population (default: 'population', or the tables' own).")
@_engine
def add_population(
    directory: str,
    workspace: str,
    policy: str | None,
    ledger_url: str | None,
    population: str | None,
    engine: str,
) -> None:
    """Register households, persons and signals of a generated population under one budget (never its ground truth)."""
    from sandbox._private.vault.server import open_service

    svc = open_service(workspace, policy=policy, ledger_url=ledger_url)
    for rec in svc.registry.add_population(directory, population=population, engine=engine):
        _echo_registered(svc, rec)


@dataset.command("list")
@_existing_workspace
@_ledger
def list_cmd(workspace: str, ledger_url: str | None) -> None:
    """List registered datasets (latest version of each)."""
    from sandbox._private.vault.server import open_service

    for d in open_service(workspace, ledger_url=ledger_url).ledger.datasets():
        click.echo(f"{d.name}\tv{d.version}\tpopulation {d.population}\tschema {d.schema_sha256[:12]}")


@click.command("budget")
@click.argument("name")
@_existing_workspace
@_ledger
def budget(name: str, workspace: str, ledger_url: str | None) -> None:
    """Show the privacy budget of dataset NAME's population: total, spent, remaining (every table shares it)."""
    from sandbox._private.vault.server import open_service

    svc = open_service(workspace, ledger_url=ledger_url)
    b = svc.ledger.budget(svc.ledger.dataset(name))
    click.echo(
        f"{b.dataset} v{b.version} (population {b.population}: {', '.join(b.tables)}): ε spent {b.epsilon_spent:g} "
        f"of {b.epsilon_total:g} (remaining {b.epsilon_remaining:g}); δ spent {b.delta_spent:g} of "
        f"{b.delta_total:g}; {b.answers} answers" + (f", {b.kept} charges kept without an answer" if b.kept else "")
    )
