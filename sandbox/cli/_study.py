"""``sandbox run``, ``sandbox rerun`` and ``sandbox lab``: study runs and the JupyterLab workbench.

Exit codes of ``run`` and ``rerun``: 0 success; 2 bad input (missing notebook, no parameters cell, unknown or
wrongly typed parameter); 3 a cell raised; 4 the kernel died or could not start; 5 the vault was not reachable;
130 interrupted. In every case the run record is stored first, and its path is printed.
"""

from __future__ import annotations

import signal
from types import FrameType

import click

from sandbox._private.kernel.studies.record import FAILURE_KINDS, RunRecord, RunStore

_EXIT_HELP = "; ".join(f"{code} {text}" for code, text in sorted(set(FAILURE_KINDS.values())))


def _finish(record: RunRecord, workspace: str) -> None:
    """Print the outcome; a failed run prints its report on stderr and exits with its failure's code."""
    from sandbox._private.kernel.studies.runner import failure_report

    path = RunStore(workspace).root / record.run_id
    if record.failure is not None:
        click.echo(f"Error: {failure_report(record)}\nrun record (marked failed): {path / 'record.json'}", err=True)
        raise click.exceptions.Exit(record.failure.exit_code)
    click.echo(f"run {record.run_id} succeeded")
    click.echo(f"  record:   {path / 'record.json'}")
    click.echo(f"  notebook: {path / 'output.ipynb'} ({record.scrubbed_outputs} output(s) removed when storing)")
    charged = sum(float(e.get("epsilon") or 0) for e in record.ledger if e.get("type") == "charge")
    click.echo(
        f"  ledger:   {len(record.ledger)} entr{'y' if len(record.ledger) == 1 else 'ies'}, ε charged {charged:g}"
    )
    if record.rerun_of:
        click.echo(f"  rerun of: {record.rerun_of}")


_workspace_option = click.option(
    "--workspace",
    default="workspace",
    show_default=True,
    envvar="SANDBOX_WORKSPACE",
    type=click.Path(file_okay=False),
    help="Workspace whose vault the notebook uses; runs are stored in WORKSPACE/runs/.",
)


@click.command("run", epilog=f"Exit codes: 0 success; {_EXIT_HELP}.")
@click.argument("notebook", type=click.Path(dir_okay=False))
@click.option(
    "-p",
    "--parameter",
    "parameters",
    nargs=2,
    multiple=True,
    metavar="NAME VALUE",
    help="Set a parameter; VALUE is read by the parameter's type (a str keeps '007' as '007').",
)
@click.option(
    "-f",
    "--parameters-file",
    "params_file",
    type=click.Path(dir_okay=False),
    help="YAML file of parameters (values keep their YAML types); -p overrides it.",
)
@click.option("--output-dir", type=click.Path(file_okay=False), help="Also copy the scrubbed output notebook here.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show the progress bar.")
@click.option(
    "--vault/--no-vault",
    default=None,
    help="Start or check the vault first (default: if the notebook imports sandbox).",
)
@_workspace_option
def run(
    notebook: str,
    parameters: tuple[tuple[str, str], ...],
    params_file: str | None,
    output_dir: str | None,
    progress: bool,
    vault: bool | None,
    workspace: str,
) -> None:
    """Execute NOTEBOOK with papermill against the vault and record the run."""
    from sandbox._private.kernel.studies.runner import run_study

    record = run_study(
        notebook,
        vault=vault,
        workspace=workspace,
        cli_params=parameters,
        params_file=params_file,
        output_dir=output_dir,
        progress=progress,
        check=False,
    )
    _finish(record, workspace)


@click.command("rerun", epilog=f"Exit codes: 0 success; {_EXIT_HELP}.")
@click.argument("run_id")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show the progress bar.")
@_workspace_option
def rerun(run_id: str, progress: bool, workspace: str) -> None:
    """Run RUN_ID's stored notebook again with the same parameters (stored answers: no new budget)."""
    from sandbox._private.kernel.studies.runner import rerun_study

    _finish(rerun_study(run_id, workspace, progress=progress, check=False), workspace)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@click.command("lab")
@_workspace_option
@click.option(
    "--notebooks",
    default="notebooks",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder JupyterLab opens.",
)
@click.option(
    "--port", default=0, show_default=True, type=click.IntRange(0, 65535), help="Port on 127.0.0.1 (0: a free one)."
)
@click.option("--vault/--no-vault", default=True, show_default=True, help="Start (or reuse) the workspace's vault.")
def lab(workspace: str, notebooks: str, port: int, vault: bool) -> None:
    """Start JupyterLab on 127.0.0.1 with a token, the vault, the pre-save hook and the budget display."""
    from sandbox._private.kernel.studies.lab import start_lab

    server = start_lab(workspace, notebooks, port=port, vault=vault)
    click.echo(server.url, nl=True)
    click.echo(f"JupyterLab log: {server.log_path}; press Ctrl-C to stop.", err=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop also stops JupyterLab
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
    if server.process.returncode not in (0, -15, None):
        raise click.ClickException(f"JupyterLab exited with code {server.process.returncode}; see {server.log_path}.")


__all__ = ["run", "rerun", "lab"]
