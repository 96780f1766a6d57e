"""The ``sandbox`` command: thin wrappers that parse arguments, call the library and turn errors into messages.

Each command group lives in its own module and is registered in :func:`_register`.
"""

from __future__ import annotations

import sys

import click

from .._private.errors import InternalError, SandboxError

__all__ = ["main", "cli", "run"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="dutch-analysis-sandbox", prog_name="sandbox")
def cli() -> None:
    """Analysis sandbox for Dutch poverty and debt data.

    Generate synthetic populations, run the vault, query it with differential privacy, audit models for
    fairness, and review releases.
    """


def _register() -> None:
    from ._policy import policy

    cli.add_command(policy)


_register()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; domain errors become a one-line message and exit code 2 (1 for internal errors)."""
    try:
        cli.main(args=argv, prog_name="sandbox", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except InternalError as exc:
        click.echo(f"internal error: {exc}", err=True)
        return 1
    except SandboxError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
