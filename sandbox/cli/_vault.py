"""``sandbox vault``: serve a workspace's vault and issue tokens."""

from __future__ import annotations

import click

from sandbox._private.shared.layout import WorkspaceLayout
from sandbox._private.vault.tokens import ROLES, TokenStore

from ._options import workspace_option

_workspace = workspace_option("Workspace directory; the vault keeps its files in WORKSPACE/vault/.")
#: ``--workspace`` of a command that needs an existing workspace.
_existing_workspace = workspace_option("Workspace directory (it must exist: WORKSPACE/vault/).", must_exist=True)


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
@click.option(
    "--stop-when-unused",
    "grace_s",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Stop SECONDS after the last process leased in WORKSPACE/vault/clients/ has ended "
    "(how sb.connect(), sandbox run and sandbox lab start a local vault). Not for a service.",
)
def serve_cmd(
    workspace: str,
    port: int,
    policy: str | None,
    ledger_url: str | None,
    socket_path: str | None,
    no_tcp: bool,
    grace_s: float | None,
) -> None:
    """Serve the vault on 127.0.0.1 (and/or a Unix socket) until SIGTERM; vault.json gives its url once it listens."""
    from sandbox._private.vault.server import serve

    if no_tcp and socket_path is None:
        raise click.UsageError("--no-tcp needs --socket PATH: the vault must listen somewhere.")
    if grace_s is not None:
        from sandbox._private.vault.watchdog import start_watchdog

        start_watchdog(workspace, grace_s)
    serve(workspace, port=None if no_tcp else port, socket_path=socket_path, policy=policy, ledger_url=ledger_url)


@vault.command("start")
@_existing_workspace
@click.option("--policy", type=click.Path(dir_okay=False), help="Policy YAML (default: policies/default.yaml).")
def start_cmd(workspace: str, policy: str | None) -> None:
    """Start the workspace's vault in the background and wait until it listens (stop: sandbox vault stop)."""
    from sandbox._private.kernel.launch import start_vault

    url, started = start_vault(workspace, policy)
    state = "started" if started else "already running"
    click.echo(f"vault of {workspace} {state} at {url}; stop it with: sandbox vault stop --workspace {workspace}")


@vault.command("stop")
@_existing_workspace
def stop_cmd(workspace: str) -> None:
    """Stop the workspace's running vault (SIGTERM: a clean shutdown); nothing to do if none runs."""
    from sandbox._private.kernel.launch import stop_local_vault

    if stop_local_vault(workspace):
        click.echo(f"stopped the vault of {workspace}")
    else:
        click.echo(f"no vault of {workspace} was running")


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
@_existing_workspace
def token_list(workspace: str) -> None:
    """List token holders and roles (never the tokens)."""
    for info in TokenStore(WorkspaceLayout.create(workspace).tokens).list():
        click.echo(f"{info.name}\t{info.role}\t{info.created}")
