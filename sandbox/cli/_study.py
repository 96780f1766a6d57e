"""``sandbox run``, ``sandbox rerun`` and ``sandbox lab``: study runs and the JupyterLab workbench.

Exit codes of ``run`` and ``rerun``: 0 success; 2 bad input (missing notebook, no parameters cell, unknown or
wrongly typed parameter); 3 a cell raised; 4 the kernel died or could not start; 5 the vault was not reachable;
130 interrupted. In every case the run record is stored first, and its path is printed.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from types import FrameType

import click

from sandbox._private.kernel.studies.record import FAILURE_KINDS, RunRecord, RunStore

from ._options import workspace_option

_EXIT_HELP = "; ".join(f"{code} {text}" for code, text in sorted(set(FAILURE_KINDS.values())))


def _finish(record: RunRecord, workspace: str, output: str | None = None) -> None:
    """Print the outcome; a failed run prints its report on stderr and exits with its failure's code.

    With the output notebook on standard output (``OUTPUT_PATH`` ``-``) the summary goes to stderr.
    """
    from sandbox._private.kernel.studies.runner import STDOUT, failure_report

    path = RunStore(workspace).root / record.run_id
    if record.failure is not None:
        click.echo(f"Error: {failure_report(record)}\nrun record (marked failed): {path / 'record.json'}", err=True)
        raise click.exceptions.Exit(record.failure.exit_code)
    err = output == STDOUT
    click.echo(f"run {record.run_id} succeeded", err=err)
    click.echo(f"  record:   {path / 'record.json'}", err=err)
    click.echo(
        f"  notebook: {path / 'output.ipynb'} ({record.scrubbed_outputs} output(s) removed when storing)", err=err
    )
    if output is not None and not err:
        click.echo(f"  output:   {Path(output).resolve()} (the same scrubbed notebook)", err=err)
    charged = sum(float(e.get("epsilon") or 0) for e in record.ledger if e.get("type") == "charge")
    entries = f"{len(record.ledger)} entr{'y' if len(record.ledger) == 1 else 'ies'}"
    click.echo(f"  ledger:   {entries}, ε charged {charged:g}", err=err)
    if record.rerun_of:
        click.echo(f"  rerun of: {record.rerun_of}", err=err)


_workspace_option = workspace_option("Workspace whose vault the notebook uses; runs are stored in WORKSPACE/runs/.")


@click.command("run", epilog=f"Exit codes: 0 success; {_EXIT_HELP}.")
@click.argument("notebook", type=click.Path(dir_okay=False))
@click.argument("output_path", required=False, metavar="[OUTPUT_PATH]")
@click.option(
    "-p",
    "--parameter",
    "--parameters",
    "parameters",
    nargs=2,
    multiple=True,
    metavar="NAME VALUE",
    help="Set a parameter; VALUE is read by the parameter's type (a str keeps '007' as '007').",
)
@click.option(
    "-y",
    "--parameters-yaml",
    "--parameters_yaml",
    "yaml_params",
    multiple=True,
    metavar="YAML",
    help="Parameters as a YAML mapping, e.g. -y '{epsilon: 0.5, features: [total_debt]}' (types kept).",
)
@click.option(
    "-f",
    "--parameters-file",
    "--parameters_file",
    "params_file",
    type=click.Path(dir_okay=False),
    help="YAML file of parameters (values keep their YAML types); -y and -p override it.",
)
@click.option(
    "--prepare-only",
    is_flag=True,
    help="Write the notebook with its parameters injected to OUTPUT_PATH without running it (no vault, no record).",
)
@click.option(
    "-k", "--kernel", "kernel_name", default=None, metavar="NAME", help="Jupyter kernel to run in (default: python3)."
)
@click.option(
    "--cwd",
    type=click.Path(file_okay=False),
    default=None,
    help="Working directory of the kernel (default: the notebook's folder).",
)
@click.option("--help-notebook", is_flag=True, help="List the notebook's parameters (type, default, comment) and exit.")
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
    output_path: str | None,
    parameters: tuple[tuple[str, str], ...],
    yaml_params: tuple[str, ...],
    params_file: str | None,
    prepare_only: bool,
    kernel_name: str | None,
    cwd: str | None,
    help_notebook: bool,
    output_dir: str | None,
    progress: bool,
    vault: bool | None,
    workspace: str,
) -> None:
    """Execute NOTEBOOK with papermill against the vault and record the run.

    OUTPUT_PATH (optional; '-' for standard output) receives the output notebook as stored in the run record:
    outputs that could show protected data are scrubbed first, and the unscrubbed notebook is never written.
    """
    from sandbox._private.kernel.studies.runner import KERNEL_NAME, prepare_study, run_study

    if help_notebook:
        _help_notebook(notebook)
        return
    kernel = kernel_name or KERNEL_NAME
    if prepare_only:
        if output_path is None:
            raise click.UsageError(
                "--prepare-only writes the prepared notebook to OUTPUT_PATH; give one ('-': stdout)."
            )
        prepare_study(
            notebook,
            output_path,
            cli_params=parameters,
            params_file=params_file,
            yaml_params=yaml_params,
            kernel_name=kernel,
        )
        if output_path != "-":
            click.echo(f"prepared {Path(output_path).resolve()} (parameters injected, not run; nothing recorded)")
        return
    record = run_study(
        notebook,
        vault=vault,
        workspace=workspace,
        cli_params=parameters,
        params_file=params_file,
        yaml_params=yaml_params,
        output_dir=output_dir,
        output_path=output_path,
        kernel_name=kernel,
        cwd=cwd,
        progress=progress,
        check=False,
    )
    _finish(record, workspace, output_path)


def _help_notebook(notebook: str) -> None:
    from sandbox._private.kernel.studies.params import describe_parameters
    from sandbox._private.shared.errors import NotFoundError, StudyError

    path = Path(notebook)
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFoundError(f"Notebook {notebook!r} does not exist; check the path.") from None
    except (OSError, ValueError) as exc:
        raise StudyError(f"{notebook!r} is not a Jupyter notebook: {exc}.") from None
    click.echo(describe_parameters(nb, path.name))


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

    # From the first moment: SIGTERM (a service manager's stop) and Ctrl-C stop JupyterLab too, also while it starts.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    server = None
    try:
        server = start_lab(workspace, notebooks, port=port, vault=vault)
        click.echo(server.url, nl=True)
        click.echo(f"JupyterLab log: {server.log_path}; press Ctrl-C to stop.", err=True)
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.stop()
        signal.signal(signal.SIGTERM, previous)
    if server is not None and server.process.returncode not in (0, -15, None):
        raise click.ClickException(f"JupyterLab exited with code {server.process.returncode}; see {server.log_path}.")


__all__ = ["run", "rerun", "lab"]
