"""Run a study notebook with papermill against the vault, and keep a record of it.

:func:`run_study` checks the parameters against the notebook's parameters cell, executes the notebook with
papermill's nbclient engine (its tqdm progress bar included) in a kernel that learns its run id from
``SANDBOX_RUN_ID`` (the client sends it to the vault as ``X-Sandbox-Run``, so every charge and release is
recorded under it), stores the scrubbed output notebook, and writes the run record (see
:mod:`~sandbox._private.kernel.studies.record`). The executed notebook is never written to disk unscrubbed.

:func:`rerun_study` runs the stored copy of a run's notebook with the same parameters. The vault answers a
repeated query from its store (DESIGN invariant 3), so a rerun reproduces the released numbers exactly and
spends no new budget.

Like papermill, a run takes parameters from a YAML file (``-f``), YAML text (``-y``) and ``-p NAME VALUE``
pairs, in that order (later ones win); writes its output notebook to a path of your choice (the scrubbed one:
the unscrubbed notebook never reaches a disk); runs in a named kernel (``-k``) and working directory (``--cwd``,
by default the notebook's folder); and :func:`prepare_study` writes the parameterised notebook without running
it (``--prepare-only``). The injected-parameters cell is papermill's own (:func:`papermill.parameterize`), so a
notebook prepared here and by papermill with the same values has the same cell.

The kernel talks to this process over IPC sockets in a private temporary folder, not TCP: nothing listens on a
port, and ipykernel has no reason to warn that TCP is unencrypted. The kernel process's own stdout and stderr
(not the cells' outputs, which travel in the notebook) go to ``runs/<run_id>/kernel.log``, so the
``KeyboardInterrupt`` that jupyter_client's shutdown interrupt can make a kernel print lands there, not on the
terminal of someone reading the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox._private.shared.errors import (
    IntegrityError,
    InternalError,
    NotFoundError,
    OutputPathError,
    StudyError,
    StudyRunError,
)

from .lab import kernel_profile
from .params import PARAMETERS_TAG, load_params_file, load_params_yaml, read_parameters
from .record import (
    RUN_ID_ENV,
    WORKSPACE_ENV,
    Failure,
    RunRecord,
    RunStore,
    git_commit,
    new_run_id,
    now_iso,
    package_versions,
)
from .scrub import scrub_notebook
from .vault_access import VaultAccess, VaultUnavailable, confirm_ledger, notebook_uses_sandbox, vault_environment

if TYPE_CHECKING:  # nbformat imports jsonschema (slow): load it only when a study runs
    import nbformat

__all__ = ["run_study", "rerun_study", "prepare_study", "failure_report", "KERNEL_NAME", "KERNEL_LOG_NAME", "STDOUT"]

KERNEL_NAME = "python3"
#: Exception names raised in a cell when the vault cannot be reached.
_VAULT_DOWN = frozenset(
    {"VaultUnavailableError", "VaultNotRunningError", "ConnectError", "ConnectTimeout", "ConnectionRefusedError"}
)
_SOURCE_HEAD_LINES = 5
#: Name of the kernel process's own log (its stdout and stderr), in ``runs/<run_id>/``.
KERNEL_LOG_NAME = "kernel.log"
#: An output path of ``-`` writes the (scrubbed) output notebook to standard output, as in papermill.
STDOUT = "-"


class _Abort(Exception):
    """Internal: stop the run with this failure (never escapes this module)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the kernel (inherited by its process) and restore them afterwards."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _read_notebook(path: Path) -> tuple[bytes, nbformat.NotebookNode]:
    from papermill.iorw import load_notebook_node

    if not path.is_file():
        raise _Abort(Failure("missing_notebook", f"Notebook {str(path)!r} does not exist; check the path."))
    raw = path.read_bytes()
    try:
        nb = load_notebook_node(str(path))  # adds the metadata papermill expects on every cell
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Abort(Failure("missing_notebook", f"{str(path)!r} is not a Jupyter notebook: {exc}.")) from None
    return raw, nb


@dataclass(frozen=True)
class _Inputs:
    """The parameter values of a run, from every source (see :func:`run_study`)."""

    params: Mapping[str, Any] | None = None
    cli_params: Sequence[tuple[str, str]] = ()
    params_file: str | Path | None = None
    yaml_params: Sequence[str] = ()


def _resolve_parameters(nb: nbformat.NotebookNode, given: _Inputs) -> dict[str, Any]:
    try:
        spec = read_parameters(nb)
    except StudyError as exc:
        tagged = any(PARAMETERS_TAG in c.get("metadata", {}).get("tags", []) for c in nb.cells)
        raise _Abort(Failure("invalid_parameters" if tagged else "no_parameters_cell", str(exc))) from None
    try:  # the file first, then each -y text, then params, then -p (later ones win, as in papermill)
        values = spec.validate(load_params_file(given.params_file) if given.params_file else {}, source="YAML value")
        for text in given.yaml_params:
            values.update(spec.validate(load_params_yaml(text), source="YAML value"))
        values.update(spec.validate(given.params or {}, source="value"))
        values.update(spec.parse_cli(given.cli_params))
    except StudyError as exc:
        raise _Abort(Failure("invalid_parameters", str(exc))) from None
    return values


def _parameterize(nb: nbformat.NotebookNode, values: Mapping[str, Any], path: Path, output: str, kernel: str) -> Any:
    """Inject the parameters cell and papermill's metadata exactly as ``papermill.execute_notebook`` does."""
    from papermill.execute import prepare_notebook_metadata, remove_error_markers
    from papermill.parameterize import parameterize_notebook

    if values:
        nb = parameterize_notebook(nb, dict(values), kernel_name=kernel)
    return remove_error_markers(prepare_notebook_metadata(nb, str(path), output, report_mode=False))


def _source_head(cell: Mapping[str, Any]) -> str:
    lines = str(cell.get("source", "")).splitlines()
    head = "\n".join(lines[:_SOURCE_HEAD_LINES])
    return head + ("\n..." if len(lines) > _SOURCE_HEAD_LINES else "")


def _cell_failure(nb: nbformat.NotebookNode) -> Failure | None:
    """Return the first cell that raised, or None when every cell succeeded."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") != "error":
                continue
            if output.get("ename") == "SystemExit" and output.get("evalue") in ("", "0"):
                continue
            ename, evalue = str(output.get("ename")), str(output.get("evalue"))
            down = ename in _VAULT_DOWN or evalue.startswith("Cannot reach the vault")  # the client's message
            kind = "vault_unavailable" if down else "cell_error"
            hint = (
                " Start the vault (`sandbox vault serve`) or check SANDBOX_VAULT_URL." if kind != "cell_error" else ""
            )
            where = _source_index(nb, index)
            said = evalue if evalue.endswith((".", "!", "?")) else f"{evalue}."
            message = f"Cell {where} (In [{cell.get('execution_count')}]) raised {ename}: {said}{hint}"
            return Failure(kind, message, where, _source_head(cell), ename, evalue)
    return None


def _source_index(nb: nbformat.NotebookNode, index: int) -> int:
    """Map executed cell ``index`` to its index in the notebook as written (without the injected cell)."""
    injected = any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells[:index])
    return index - 1 if injected else index


def _running_cell(nb: nbformat.NotebookNode) -> int | None:
    """Return the last cell papermill started (the one running when the kernel died), if any."""
    started = [i for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    return started[-1] if started else None


def _check_kernel(name: str) -> None:
    """Refuse an unknown kernel name before anything runs, listing the installed ones."""
    from jupyter_client.kernelspec import KernelSpecManager

    known = sorted(KernelSpecManager().find_kernel_specs())
    if name not in known:
        raise _Abort(
            Failure(
                "kernel_died",
                f"No Jupyter kernel named {name!r}; installed kernels: {', '.join(known) or '(none)'}. Pass one of "
                "them with -k NAME, or install this environment's: python -m ipykernel install --sys-prefix.",
            )
        )


def _kernel_config(socket_dir: Path, log_path: Path) -> Any:
    """Traitlets config for the kernel manager: IPC sockets in ``socket_dir``, the kernel's own output to a log."""
    from traitlets.config import Config

    return Config(
        {
            "KernelManager": {"transport": "ipc", "ip": str(socket_dir / "kernel")},
            "QuietKernelManager": {"kernel_log": str(log_path)},
        }
    )


def _execute(
    nb: nbformat.NotebookNode, *, path: Path, env: Mapping[str, str], opts: _Options, log_path: Path
) -> tuple[nbformat.NotebookNode, Failure | None]:
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient.exceptions import DeadKernelError
    from papermill.engines import papermill_engines
    from papermill.utils import chdir

    from .kernels import QuietKernelManager

    socket_dir = Path(tempfile.mkdtemp(prefix="sandbox-kernel-"))  # mode 0700: only this user reaches the sockets
    try:
        with _environment(**env), chdir(str(opts.cwd or path.parent)):
            nb = papermill_engines.execute_notebook_with_engine(
                None,
                nb,
                kernel_name=opts.kernel_name,
                input_path=str(path),
                output_path=None,
                progress_bar=opts.progress,
                log_output=False,
                start_timeout=opts.start_timeout,
                execution_timeout=opts.execution_timeout,
                kernel_manager_class=QuietKernelManager,
                config=_kernel_config(socket_dir, log_path),
            )
    except DeadKernelError as exc:
        index = _running_cell(nb)
        head = _source_head(nb.cells[index]) if index is not None else None
        src = _source_index(nb, index) if index is not None else None
        where = f"while running cell {src}" if src is not None else "during the run"
        msg = f"The kernel died {where} ({exc}); a cell may have used too much memory or crashed the interpreter."
        return nb, Failure("kernel_died", msg, src, head, "DeadKernelError", str(exc))
    except (NoSuchKernel, RuntimeError, TimeoutError, OSError) as exc:
        install = "python -m ipykernel install --sys-prefix"
        msg = f"The kernel {opts.kernel_name!r} could not start: {exc}. Install it: {install}"
        return nb, Failure("kernel_died", msg, None, None, type(exc).__name__, str(exc))
    finally:
        shutil.rmtree(socket_dir, ignore_errors=True)
    return nb, _cell_failure(nb)


def _write_notebook(node: Any, output: str | Path) -> None:
    """Write a notebook to ``output`` (``-``: standard output); an unwritable path names itself and the fix."""
    import nbformat

    if str(output) == STDOUT:
        sys.stdout.write(nbformat.writes(node) + "\n")
        sys.stdout.flush()
        return
    target = Path(output)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(node, target)
    except OSError as exc:
        raise OutputPathError(
            f"Cannot write the output notebook {str(target)!r}: {exc.strerror or exc}; choose a writable path."
        ) from None


def _store_outputs(store: RunStore, record: RunRecord, nb: nbformat.NotebookNode, opts: _Options) -> RunRecord:
    import nbformat

    clean, dropped = scrub_notebook(nb)
    node = nbformat.from_dict(clean)
    nbformat.write(node, store.run_dir(record.run_id) / "output.ipynb")
    if opts.output_dir is not None:
        _write_notebook(node, opts.output_dir / f"{Path(record.notebook).stem}.{record.run_id}.ipynb")
    if opts.output_path is not None:
        _write_notebook(node, opts.output_path)
    return replace(record, scrubbed_outputs=len(dropped))


@dataclass(frozen=True)
class _Options:
    """How to execute: everything :func:`run_study` passes down besides the notebook and its parameters."""

    output_dir: Path | None
    progress: bool
    kernel_name: str
    start_timeout: float
    execution_timeout: float | None
    vault: bool | None
    output_path: str | Path | None = None
    cwd: Path | None = None


def run_study(
    notebook: str | Path,
    params: Mapping[str, Any] | None = None,
    *,
    workspace: str | Path,
    cli_params: Sequence[tuple[str, str]] = (),
    params_file: str | Path | None = None,
    output_dir: str | Path | None = None,
    progress: bool = True,
    check: bool = True,
    vault: bool | None = None,
    kernel_name: str = KERNEL_NAME,
    start_timeout: float = 60,
    execution_timeout: float | None = None,
    rerun_of: str | None = None,
    output_path: str | Path | None = None,
    yaml_params: Sequence[str] = (),
    cwd: str | Path | None = None,
) -> RunRecord:
    """Execute a study notebook with papermill and record the run.

    Parameters
    ----------
    notebook : str or Path
        The notebook to run; it must have a cell tagged ``parameters``.
    params : mapping, optional
        Typed parameter values (checked against the parameters cell).
    workspace : str or Path
        The workspace whose vault the notebook uses; the run is stored in ``<workspace>/runs/<run_id>/``.
    cli_params : sequence of (name, text)
        ``-p NAME VALUE`` pairs, parsed by each parameter's type (a ``str`` parameter keeps ``"007"``).
    params_file : str or Path, optional
        A YAML file of values, checked with their YAML types. ``yaml_params``, ``params`` and ``cli_params``
        override it, in that order.
    output_dir : str or Path, optional
        Also write the scrubbed output notebook here (it is always stored beside the record).
    output_path : str or Path, optional
        Also write the scrubbed output notebook to this file (``"-"``: standard output), as papermill's
        ``OUTPUT_PATH``.
    yaml_params : sequence of str
        YAML mappings of values (papermill's ``-y``), checked with their YAML types.
    cwd : str or Path, optional
        Working directory of the kernel (default: the notebook's folder).
    progress : bool
        Show papermill's progress bar.
    check : bool
        Raise when the run fails (the record is stored first). With ``False`` the failed record is returned.
    vault : bool, optional
        Make sure a vault answers before the kernel starts (see :mod:`~sandbox._private.kernel.studies.vault_access`).
        None (default): only when the notebook imports ``sandbox``.
    kernel_name : str
        Jupyter kernel to run the notebook in (``-k``); an unknown name fails before the run starts.
    start_timeout, execution_timeout : float
        Seconds to wait for the kernel to start, and for one cell (None: no limit).
    rerun_of : str, optional
        Run id this run repeats (set by :func:`rerun_study`).

    Returns
    -------
    RunRecord
        The stored record, status ``succeeded`` (or ``failed`` when ``check`` is False).

    Raises
    ------
    NotFoundError
        The notebook does not exist.
    StudyError
        No parameters cell, an unknown parameter or a wrong type.
    StudyRunError
        A cell raised, the kernel died or the vault was not reachable; the message shows the failing cell.
    """
    path = Path(notebook).resolve()
    _check_workspace(path, Path(workspace), vault)
    work_dir = Path(cwd).resolve() if cwd is not None else None
    if work_dir is not None and not work_dir.is_dir():
        raise NotFoundError(f"The working directory {str(work_dir)!r} (--cwd) does not exist; create it or fix it.")
    store = RunStore(workspace)
    record = RunRecord(new_run_id(), str(path), "running", now_iso(), packages=package_versions(), rerun_of=rerun_of)
    store.save(record)
    opts = _Options(
        Path(output_dir) if output_dir else None,
        progress,
        kernel_name,
        start_timeout,
        execution_timeout,
        vault,
        output_path,
        work_dir,
    )
    given = _Inputs(params, cli_params, params_file, tuple(yaml_params))
    try:
        record = _run(store, record, given, opts)
    except _Abort as abort:
        record = store.load(record.run_id).finished(abort.failure)  # the last saved step knows the most
    except KeyboardInterrupt:
        record = store.load(record.run_id)
        store.save(record.finished(Failure("interrupted", "The run was interrupted (Ctrl-C).")))
        raise
    store.save(record)
    if check and record.failure is not None:
        raise _error_for(record)
    return record


def _vault_access(store: RunStore, nb: nbformat.NotebookNode, wanted: bool | None) -> VaultAccess | None:
    if wanted is False or (wanted is None and not notebook_uses_sandbox(nb)):
        return None
    try:
        return vault_environment(store.workspace)
    except VaultUnavailable as exc:
        raise _Abort(Failure("vault_unavailable", str(exc))) from None


def _check_workspace(notebook: Path, workspace: Path, vault: bool | None) -> None:
    """Refuse, before anything is written, a run that needs a local vault in a folder that holds no workspace."""
    if vault is False or os.environ.get("SANDBOX_VAULT_URL") or (workspace / "vault").is_dir():
        return
    if vault is None:
        try:
            if not notebook_uses_sandbox(json.loads(notebook.read_text(encoding="utf-8"))):
                return
        except (OSError, ValueError):
            return  # the run records why the notebook cannot be read
    from sandbox._private.kernel.launch import require_workspace

    require_workspace(
        workspace,
        "The notebook needs the workspace's vault: pass --workspace PATH (or set SANDBOX_WORKSPACE) to the folder "
        "that holds vault/, run `make demo` to make one, or --no-vault for a notebook that does not use the sandbox.",
    )


def _run(store: RunStore, record: RunRecord, given: _Inputs, opts: _Options) -> RunRecord:
    path = Path(record.notebook)
    raw, nb = _read_notebook(path)
    (store.run_dir(record.run_id) / "source.ipynb").write_bytes(raw)
    commit, dirty = git_commit(path)
    record = replace(record, notebook_sha256=hashlib.sha256(raw).hexdigest(), git_commit=commit, git_dirty=dirty)
    store.save(record)
    values = _resolve_parameters(nb, given)
    record = replace(record, parameters=values)
    store.save(record)
    _check_kernel(opts.kernel_name)
    access = _vault_access(store, nb, opts.vault)
    env = {RUN_ID_ENV: record.run_id, WORKSPACE_ENV: str(store.workspace), **(access.env() if access else {})}
    env["IPYTHONDIR"] = str(kernel_profile(store.workspace))  # marked displays are kept as in the lab
    output = "" if opts.output_path is None else str(opts.output_path)
    nb = _parameterize(nb, values, path, output, opts.kernel_name)
    log_path = store.run_dir(record.run_id) / KERNEL_LOG_NAME
    executed, failure = _execute(nb, path=path, env=env, opts=opts, log_path=log_path)
    record = _store_outputs(store, record, executed, opts)
    ledger = confirm_ledger(store.run_dir(record.run_id), access)
    return record.finished(failure, ledger=ledger)


def prepare_study(
    notebook: str | Path,
    output_path: str | Path,
    params: Mapping[str, Any] | None = None,
    *,
    cli_params: Sequence[tuple[str, str]] = (),
    params_file: str | Path | None = None,
    yaml_params: Sequence[str] = (),
    kernel_name: str = KERNEL_NAME,
) -> nbformat.NotebookNode:
    """Write ``notebook`` with its parameters injected, without running it (papermill's ``--prepare-only``).

    The values are checked against the parameters cell exactly as for :func:`run_study`; nothing is executed, no
    vault is needed and no run is recorded (nothing ran and nothing was charged).

    Parameters
    ----------
    notebook : str or Path
        The study notebook.
    output_path : str or Path
        Where to write the prepared notebook (``"-"``: standard output).
    params, cli_params, params_file, yaml_params, kernel_name
        As for :func:`run_study`.

    Returns
    -------
    nbformat.NotebookNode
        The prepared notebook (as written).

    Raises
    ------
    NotFoundError
        The notebook does not exist or is not a notebook.
    StudyError
        No parameters cell, an unknown parameter or a wrong type.
    OutputPathError
        ``output_path`` cannot be written.
    """
    path = Path(notebook).resolve()
    try:
        _, nb = _read_notebook(path)
        values = _resolve_parameters(nb, _Inputs(params, cli_params, params_file, tuple(yaml_params)))
    except _Abort as abort:
        error = NotFoundError if abort.failure.kind == "missing_notebook" else StudyError
        raise error(abort.failure.message) from None
    nb = _parameterize(nb, values, path, str(output_path), kernel_name)
    _write_notebook(nb, output_path)
    return nb


def failure_report(record: RunRecord) -> str:
    """Describe a failed run in a few lines: what failed and the failing cell's source."""
    failure = record.failure
    if failure is None:
        return f"run {record.run_id} succeeded"
    lines = [f"run {record.run_id} failed ({failure.kind}): {failure.message}"]
    if failure.source_head:
        lines.append(f"--- cell {failure.cell_index} ---")
        lines.extend("    " + line for line in failure.source_head.splitlines())
    return "\n".join(lines)


def _error_for(record: RunRecord) -> Exception:
    if record.failure is None:
        raise InternalError(f"run {record.run_id} has no failure to raise")
    message = failure_report(record)
    if record.failure.kind == "missing_notebook":
        return NotFoundError(message)
    if record.failure.kind in ("no_parameters_cell", "invalid_parameters"):
        return StudyError(message)
    return StudyRunError(message)


def rerun_study(
    run_id: str, workspace: str | Path, *, progress: bool = True, check: bool = True, **kwargs: Any
) -> RunRecord:
    """Run the stored copy of run ``run_id``'s notebook again with the same parameters.

    The stored ``source.ipynb`` is checked against the recorded sha256 first; answers the vault already gave
    are served from its store, so the rerun spends no new budget.

    Raises
    ------
    NotFoundError
        No such run in the workspace.
    IntegrityError
        The stored notebook no longer matches the recorded sha256.
    """
    store = RunStore(workspace)
    original = store.load(run_id)
    source = store.root / run_id / "source.ipynb"
    if original.notebook_sha256 is None or not source.is_file():
        raise NotFoundError(f"Run {run_id} has no stored notebook (it failed before reading one); run it anew.")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    if digest != original.notebook_sha256:
        raise IntegrityError(
            f"The stored notebook of {run_id} has sha256 {digest[:12]}..., but the record says "
            f"{original.notebook_sha256[:12]}...; the run folder was changed and cannot be rerun."
        )
    return run_study(
        source,
        dict(original.parameters),
        workspace=workspace,
        progress=progress,
        check=check,
        rerun_of=run_id,
        **kwargs,
    )
