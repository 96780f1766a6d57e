"""The ``sandbox`` command: thin wrappers that parse arguments, call the library and turn errors into messages.

Each command group lives in its own module, listed in ``_COMMANDS`` and imported when it runs.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from sandbox._private.shared.errors import InternalError, SandboxError

__all__ = ["main", "cli", "run"]


# command name -> "module:attribute" of its click command; a module is imported only when its command runs (or
# when --help lists the commands), so `sandbox run` does not pay for scikit-learn or the vault's web stack.
_COMMANDS: dict[str, str] = {
    "budget": "._dataset:budget",
    "dataset": "._dataset:dataset",
    "demo": "._demo:demo",
    "lab": "._study:lab",
    "ledger": "._ledger:ledger",
    "policy": "._policy:policy",
    "rerun": "._study:rerun",
    "review": "._review:review",
    "run": "._study:run",
    "synth": "._synth:synth",
    "vault": "._vault:vault",
    "verify": "._verify:verify",
}


class _LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*_COMMANDS, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, attr = target.split(":")
        command = getattr(importlib.import_module(module, __name__), attr)
        if not isinstance(command, click.Command):
            raise InternalError(f"{target} is not a click command")
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="dutch-analysis-sandbox", prog_name="sandbox")
def cli() -> None:
    """Analysis sandbox for Dutch poverty and debt data.

    Generate synthetic populations, run the vault, query it with differential privacy, audit models for
    fairness, and review releases.
    """


#: Set to 1 to see the traceback of an unexpected error (a bug) instead of the one-line message.
DEBUG_ENV = "SANDBOX_DEBUG"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; no traceback reaches the user.

    Domain errors become a one-line message naming the fix and exit code 2; internal errors (bugs) exit 1 with a
    one-line message (``SANDBOX_DEBUG=1`` shows the traceback); Ctrl-C exits 130.
    """
    try:
        # without standalone mode click returns the code of a command that ended with ctx.exit(code)
        code = cli.main(args=argv, prog_name="sandbox", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
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
    except BrokenPipeError:  # `sandbox review list | head`: the reader left, nothing more to say
        return 0
    except OSError as exc:  # a file or folder the command was given: the message names it
        where = f" ({exc.filename})" if exc.filename else ""
        click.echo(f"error: {exc.strerror or exc}{where}; check the path and its permissions.", err=True)
        return 2
    except Exception as exc:  # the last line of defence: a bug, told in one line
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        click.echo(
            f"internal error: {type(exc).__name__}: {exc}. This is a bug in the sandbox; please report it with the "
            f"command you ran ({DEBUG_ENV}=1 shows the traceback).",
            err=True,
        )
        return 1
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
