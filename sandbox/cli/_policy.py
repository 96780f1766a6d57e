"""``sandbox policy``: check and show policies."""

from __future__ import annotations

import json

import click

from sandbox._private.shared.policy import load_policy


@click.group()
def policy() -> None:
    """Validate and inspect policy files (policies/*.yaml)."""


@policy.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
def check(path: str | None) -> None:
    """Validate PATH (default: the shipped policies/default.yaml) and print its sha256."""
    pol = load_policy(path)
    click.echo(f"ok  {pol.name}  sha256={pol.sha256}")


@policy.command("show")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
def show(path: str | None) -> None:
    """Print the validated policy at PATH as JSON, every default filled in."""
    pol = load_policy(path)
    click.echo(json.dumps(pol.model_dump(mode="json"), indent=2))
