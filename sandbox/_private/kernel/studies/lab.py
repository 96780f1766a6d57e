"""Start JupyterLab as the analyst's workbench: loopback only, a fresh token, the pre-save hook, the extension.

:func:`start_lab` writes a private configuration under ``<workspace>/lab/``:

- ``jupyter_server_config.py``: the pre-save hook of :mod:`~sandbox._private.kernel.studies.presave`;
- ``ipython/profile_default/ipython_kernel_config.py``: kernels load the ``sandbox`` IPython extension, so the
  budget display works without ``%load_ext sandbox``;
- ``settings/``: JupyterLab user settings that switch off news and update checks (nothing leaves the machine);

then starts (or reuses) the workspace's vault, starts ``jupyter lab`` on 127.0.0.1 with a generated token
(``--allow-root`` when run as root) and waits until the server answers. A local vault started (or reused) here
holds leases for this process and for JupyterLab's, so it stops by itself once both have ended
(:mod:`sandbox._private.vault.watchdog`). Kernels inherit ``SANDBOX_WORKSPACE``,
``SANDBOX_VAULT_URL`` and ``SANDBOX_TOKEN``, so ``sb.connect()`` reaches the workspace's vault from any folder.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from sandbox._private.shared.clients import register_client
from sandbox._private.shared.errors import OutputPathError, StudyRunError
from sandbox._private.shared.layout import WorkspaceLayout

from .record import WORKSPACE_ENV
from .vault_access import VaultUnavailable, vault_environment

__all__ = ["LabServer", "start_lab", "free_port", "write_lab_config", "kernel_profile", "working_copies", "TEMPLATES"]

#: The project's shipped notebooks. ``sandbox lab`` never serves this folder itself: running and saving there
#: would write outputs into the templates, so it serves working copies in ``<workspace>/notebooks``.
TEMPLATES = Path(__file__).resolve().parents[4] / "notebooks"

_SERVER_CONFIG = """\
# Written by `sandbox lab`; rewritten on every start.
c = get_config()  # noqa: F821
c.FileContentsManager.pre_save_hook = "sandbox._private.kernel.studies.presave.pre_save_hook"
"""
_KERNEL_CONFIG = """\
# Written by `sandbox lab`: every kernel shows the remaining privacy budget after a cell that spent some.
c = get_config()  # noqa: F821
c.InteractiveShellApp.extensions = ["sandbox"]
"""
_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def working_copies(workspace: Path, templates: Path = TEMPLATES) -> Path:
    """Copy the shipped notebooks that are not there yet into ``<workspace>/notebooks``; return that folder.

    Copies the analyst already has (and may have changed) are left as they are.
    """
    target = WorkspaceLayout(workspace).notebooks
    try:
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        for src in sorted(templates.glob("*.ipynb")):
            dst = target / src.name
            if not dst.exists():
                dst.write_bytes(src.read_bytes())
    except OSError as exc:
        raise OutputPathError(f"Cannot copy the notebooks into {target}: {exc}; check the workspace.") from None
    return target


def kernel_profile(workspace: Path) -> Path:
    """Write the IPython profile that makes every kernel load the ``sandbox`` extension; return its IPYTHONDIR.

    ``sandbox lab`` and ``sandbox run`` both start kernels with it, so marked displays (dummy frames, results,
    the budget line) look and are kept the same in the lab and in a stored run.
    """
    ipython = WorkspaceLayout(workspace).lab / "ipython"
    try:
        (ipython / "profile_default").mkdir(parents=True, exist_ok=True, mode=0o700)
        (ipython / "profile_default" / "ipython_kernel_config.py").write_text(_KERNEL_CONFIG, encoding="utf-8")
    except OSError as exc:
        raise OutputPathError(f"Cannot write the kernel profile in {ipython}: {exc}; check the workspace.") from None
    return ipython


def write_lab_config(workspace: Path) -> Path:
    """Write the configuration described in the module docstring; return ``<workspace>/lab``."""
    lab = WorkspaceLayout(workspace).lab
    try:
        kernel_profile(workspace)
        (lab / "settings").mkdir(parents=True, exist_ok=True, mode=0o700)
        (lab / "jupyter_server_config.py").write_text(_SERVER_CONFIG, encoding="utf-8")
        for name, values in _SETTINGS.items():
            target = lab / "settings" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(values), encoding="utf-8")
    except OSError as exc:
        raise OutputPathError(
            f"Cannot write the JupyterLab configuration in {lab}: {exc}; check the workspace."
        ) from None
    return lab


@dataclass
class LabServer:
    """A running JupyterLab started by :func:`start_lab`; stop it with :meth:`stop`."""

    process: subprocess.Popen[bytes]
    port: int
    token: str
    root_dir: Path
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The URL to open, token included."""
        return f"http://127.0.0.1:{self.port}/lab?token={self.token}"

    def stop(self, timeout: float = 20) -> None:
        """Stop the server (SIGTERM to its process group, then SIGKILL) and its kernels."""
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout)
        except ProcessLookupError:
            pass


def _command(port: int, token: str, root_dir: Path, lab: Path) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        f"--config={lab / 'jupyter_server_config.py'}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


def _wait_ready(server: LabServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{server.port}/api/status"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            log = server.log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise StudyRunError(f"JupyterLab exited with code {server.process.returncode} while starting:\n{log}")
        try:
            if httpx.get(url, headers={"Authorization": f"token {server.token}"}, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.stop()
    raise StudyRunError(
        f"JupyterLab did not answer on port {server.port} within {timeout:.0f} s; see {server.log_path}."
    )


def start_lab(
    workspace: str | Path,
    root_dir: str | Path,
    *,
    port: int = 0,
    token: str | None = None,
    timeout: float = 90,
    vault: bool = True,
) -> LabServer:
    """Start JupyterLab for ``workspace`` serving ``root_dir`` and wait until it answers.

    Parameters
    ----------
    workspace : str or Path
        The workspace (its vault, runs and the ``lab/`` configuration).
    root_dir : str or Path
        The folder JupyterLab shows. The project's own ``notebooks/`` is never served itself: its notebooks are
        copied into ``<workspace>/notebooks`` (once; the analyst's copies are kept) and that folder is served.
    port : int
        Port on 127.0.0.1; 0 picks a free one.
    token : str, optional
        Login token; a random one by default.
    timeout : float
        Seconds to wait for the server.
    vault : bool
        Start (or reuse) the workspace's vault first, or check ``SANDBOX_VAULT_URL``; kernels get its URL and
        token, so ``sb.connect()`` reaches it from any notebook folder.

    Returns
    -------
    LabServer
        The running server; call :meth:`LabServer.stop` when done.
    """
    ws = Path(workspace).resolve()
    root = Path(root_dir).resolve()
    if not root.is_dir():
        raise OutputPathError(f"Notebook folder {root} does not exist; pass --notebooks DIR.")
    vault_env: dict[str, str] = {}
    if vault:  # first: a folder that is no workspace is refused before anything is written into it
        try:
            vault_env = vault_environment(ws).env()
        except VaultUnavailable as exc:
            raise StudyRunError(str(exc)) from None
    ws.mkdir(parents=True, exist_ok=True)
    if root == TEMPLATES.resolve():  # never run and save in the shipped templates: serve working copies
        root = working_copies(ws)
    lab = write_lab_config(ws)
    port = port or free_port()
    token = token or secrets.token_urlsafe(24)
    env = {**os.environ, **vault_env}
    env.update(
        {
            WORKSPACE_ENV: str(ws),
            "IPYTHONDIR": str(lab / "ipython"),
            "JUPYTERLAB_SETTINGS_DIR": str(lab / "settings"),
            "JUPYTER_PLATFORM_DIRS": "1",
        }
    )
    log_path = lab / "jupyterlab.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            _command(port, token, root, lab), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    if vault and not os.environ.get("SANDBOX_VAULT_URL"):
        register_client(WorkspaceLayout(ws), proc.pid)  # the local vault runs as long as JupyterLab does
    server = LabServer(proc, port, token, root, log_path)
    try:
        _wait_ready(server, timeout)
    except BaseException:  # interrupted while it starts (Ctrl-C, SIGTERM): never leave a JupyterLab behind
        server.stop()
        raise
    return server
