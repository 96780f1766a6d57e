"""Options and checks that several ``sandbox`` commands share: ``--workspace`` and "is this a workspace?"."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

__all__ = ["CLI_FIX", "workspace_option", "existing_workspace"]

#: What to do about a --workspace that holds no workspace, for a command-line user.
CLI_FIX = (
    "Pass --workspace PATH (or set SANDBOX_WORKSPACE) to the folder that holds vault/; a workspace is made by "
    "registering data (sandbox dataset add-population POPULATION --workspace PATH) or by make demo."
)


def existing_workspace(workspace: str | Path, fix: str = CLI_FIX) -> Path:
    """Return the resolved workspace; refuse one without ``vault/`` (a command that reads one never creates it)."""
    from sandbox._private.kernel.launch import require_workspace

    return require_workspace(workspace, fix)


def _must_exist(ctx: click.Context, param: click.Parameter, value: str) -> str:
    existing_workspace(value)
    return value


def workspace_option(help: str, *, must_exist: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--workspace`` (default ``workspace``, or ``$SANDBOX_WORKSPACE``); ``must_exist`` refuses a missing one."""
    return click.option(
        "--workspace",
        default="workspace",
        show_default=True,
        envvar="SANDBOX_WORKSPACE",
        type=click.Path(file_okay=False),
        callback=_must_exist if must_exist else None,
        help=help,
    )
