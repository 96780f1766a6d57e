"""``sandbox dataset`` and ``sandbox budget``: register protected tables and read their budgets."""

from __future__ import annotations

import click

from ._vault import _existing_workspace, _workspace

_policy = click.option("--policy", type=click.Path(dir_okay=False), help="Policy YAML that sets the budget.")
_ledger = click.option("--ledger-url", envvar="SANDBOX_LEDGER_URL", help="postgresql://... (default: the vault's).")


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
def add(name: str, path: str, schema_file: str, workspace: str, policy: str | None, ledger_url: str | None) -> None:
    """Copy PATH (Parquet or CSV) into the vault as a new version of NAME, checked against its schema."""
    from sandbox._private.vault.server import open_service

    rec = open_service(workspace, policy=policy, ledger_url=ledger_url).registry.add(name, path, schema_file)
    click.echo(f"registered {rec.name} v{rec.version}  ε budget {rec.epsilon_budget:g}  sha256 {rec.files_sha256}")


@dataset.command("add-population")
@click.argument("directory", type=click.Path(file_okay=False))
@_workspace
@_policy
@_ledger
def add_population(directory: str, workspace: str, policy: str | None, ledger_url: str | None) -> None:
    """Register households, persons and signals of a generated population (never its ground truth)."""
    from sandbox._private.vault.server import open_service

    for rec in open_service(workspace, policy=policy, ledger_url=ledger_url).registry.add_population(directory):
        click.echo(f"registered {rec.name} v{rec.version}  ε budget {rec.epsilon_budget:g}")


@dataset.command("list")
@_existing_workspace
@_ledger
def list_cmd(workspace: str, ledger_url: str | None) -> None:
    """List registered datasets (latest version of each)."""
    from sandbox._private.vault.server import open_service

    for d in open_service(workspace, ledger_url=ledger_url).ledger.datasets():
        click.echo(f"{d.name}\tv{d.version}\tε budget {d.epsilon_budget:g}\tschema {d.schema_sha256[:12]}")


@click.command("budget")
@click.argument("name")
@_existing_workspace
@_ledger
def budget(name: str, workspace: str, ledger_url: str | None) -> None:
    """Show the privacy budget of dataset NAME: total, spent, remaining."""
    from sandbox._private.vault.server import open_service

    svc = open_service(workspace, ledger_url=ledger_url)
    b = svc.ledger.budget(svc.ledger.dataset(name))
    click.echo(
        f"{b.dataset} v{b.version}: ε spent {b.epsilon_spent:g} of {b.epsilon_total:g} "
        f"(remaining {b.epsilon_remaining:g}); δ spent {b.delta_spent:g} of {b.delta_total:g}; {b.answers} answers"
    )
