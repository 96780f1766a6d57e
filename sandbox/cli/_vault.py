"""``sandbox vault``: serve a workspace's vault and issue tokens."""

from __future__ import annotations

import click

from sandbox._private.shared.layout import WorkspaceLayout
from sandbox._private.vault.tokens import ROLES, TokenStore

_workspace = click.option(
    "--workspace",
    default="workspace",
    show_default=True,
    envvar="SANDBOX_WORKSPACE",
    type=click.Path(file_okay=False),
    help="Workspace directory; the vault keeps its files in WORKSPACE/vault/.",
)


@click.group()
def vault() -> None:
    """Run the vault (the process that holds protected rows and the ledger) and manage its tokens."""


@vault.command("serve")
@_workspace
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port.")
@click.option("--policy", type=click.Path(dir_okay=False), help="Policy YAML (default: policies/default.yaml).")
@click.option("--ledger-url", envvar="SANDBOX_LEDGER_URL", help="postgresql://... (default: SQLite in the workspace).")
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(dir_okay=False),
    help="Also listen on this Unix socket (a deployment: its folder owned by the vault, group the analysts).",
)
@click.option("--no-tcp", is_flag=True, help="With --socket: no loopback TCP port (then no browser review page).")
def serve_cmd(
    workspace: str, port: int, policy: str | None, ledger_url: str | None, socket_path: str | None, no_tcp: bool
) -> None:
    """Serve the vault on 127.0.0.1 (and/or a Unix socket) until SIGTERM; vault.json gives its url once it listens."""
    from sandbox._private.vault.server import serve

    if no_tcp and socket_path is None:
        raise click.UsageError("--no-tcp needs --socket PATH: the vault must listen somewhere.")
    serve(workspace, port=None if no_tcp else port, socket_path=socket_path, policy=policy, ledger_url=ledger_url)


@vault.group("token")
def token() -> None:
    """Bearer tokens (only their sha256 is stored)."""


@token.command("create")
@_workspace
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the token may do.")
@click.option("--name", required=True, help="Who holds the token (recorded with every charge).")
def token_create(workspace: str, role: str, name: str) -> None:
    """Create a token and print it once; store it safely, it cannot be shown again."""
    layout = WorkspaceLayout.create(workspace)
    click.echo(TokenStore(layout.tokens).create(name, role))


@token.command("list")
@_workspace
def token_list(workspace: str) -> None:
    """List token holders and roles (never the tokens)."""
    for info in TokenStore(WorkspaceLayout.create(workspace).tokens).list():
        click.echo(f"{info.name}\t{info.role}\t{info.created}")
