"""Start or reuse the local vault of a workspace, for ``sb.connect()`` with no arguments.

A lock file (``vault/launch.lock``, ``flock``) makes concurrent kernels agree: the first starts
``sandbox vault serve`` as a child process in its own session on a free port and waits for ``vault.json``; the
others find the live vault and reuse it. The vault writes the local analyst's token once, to
``vault/client_token`` (mode 0600, readable only by the user who owns the workspace); this module only reads it.

The vault stops with the processes that use it. Every caller, the one that starts the vault and every one that
reuses it, first leaves a lease in ``vault/clients/`` (:mod:`sandbox._private.shared.clients`), and the vault is
started with ``--stop-when-unused``: it shuts itself down cleanly once none of those processes has run for
:data:`GRACE_S` seconds (``SANDBOX_LOCAL_VAULT_GRACE_S`` overrides it). A kernel restart within the grace period
finds the vault still running.

A workspace is never created behind the caller's back: a folder without ``vault/`` is refused with the fix
(wrong folder, ``SANDBOX_WORKSPACE``, or ``create=True`` for a new, empty workspace).
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sandbox._private.shared.clients import register_client
from sandbox._private.shared.errors import NotFoundError, SandboxError
from sandbox._private.shared.files import pid_alive
from sandbox._private.shared.layout import WorkspaceLayout

from .transport import probe_health

__all__ = [
    "ensure_local_vault",
    "local_token",
    "local_vault_uid",
    "require_workspace",
    "start_vault",
    "stop_local_vault",
    "CONNECT_FIX",
    "GRACE_S",
    "GRACE_ENV",
]

_START_TIMEOUT_S = 60.0
#: Seconds a local vault keeps running after the last process that used it has ended.
GRACE_S = 10.0
#: Environment variable that overrides :data:`GRACE_S` for the vaults this process starts.
GRACE_ENV = "SANDBOX_LOCAL_VAULT_GRACE_S"
# Local vaults this process started: they outlive a kernel restart by the grace period (other kernels reuse them),
# and holding the Popen objects keeps Python from warning that a child is still running when the handle is dropped.
_children: list[subprocess.Popen[bytes]] = []


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def local_token(layout: WorkspaceLayout) -> str:
    """Return the local analyst's token, which the workspace's vault writes when it starts."""
    try:
        return layout.client_token.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise SandboxError(
            f"The vault of {layout.workspace} has not written the local analyst token {layout.client_token}; "
            "restart it (`sandbox vault serve --workspace ...`) so that it does."
        ) from None


def _start(layout: WorkspaceLayout, policy: str | Path | None, *, stop_when_unused: bool = True) -> str:
    cmd = [
        sys.executable,
        "-c",
        "from sandbox.cli import run; run()",
        "vault",
        "serve",
        "--workspace",
        str(layout.workspace),
        "--port",
        "0",
        *(["--stop-when-unused", str(_grace_s())] if stop_when_unused else []),
    ]
    if policy is not None:
        cmd += ["--policy", str(policy)]
    fd = os.open(layout.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    _children.append(proc)
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        info = layout.read_discovery()
        if info is not None and info.get("pid") == proc.pid and probe_health(str(info["url"])):
            return str(info["url"])
        if proc.poll() is not None:
            raise SandboxError(
                f"The local vault exited with code {proc.returncode} before listening; see {layout.log}."
            )
        time.sleep(0.05)
    proc.terminate()
    raise SandboxError(f"The local vault did not start within {_START_TIMEOUT_S:.0f} s; see {layout.log}.")


def local_vault_uid(workspace: str | Path) -> int:
    """Return the OS account a local vault of ``workspace`` runs as: the owner of its vault folder.

    The client checks that the server at the local vault's address runs as this account before it sends the token
    (:mod:`.trust`), so a program of another user that took the port gets nothing.
    """
    return WorkspaceLayout(Path(workspace).resolve()).vault_owner()


def _grace_s() -> float:
    text = os.environ.get(GRACE_ENV)
    if text is None:
        return GRACE_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise SandboxError(f"{GRACE_ENV}={text!r} is not a number of seconds >= 0; unset it or write e.g. 10.")
    return value


#: What to do about a folder that holds no workspace, for a caller of ``sb.connect()``.
CONNECT_FIX = (
    "None is created behind your back. Run from the folder that holds your workspace, or name it: "
    "sb.connect('path/to/workspace'), --workspace PATH or SANDBOX_WORKSPACE=PATH. To make one, register data "
    "(`sandbox dataset add-population POPULATION --workspace {path}`, or `make demo`), or start an empty vault "
    "with sb.connect(..., create=True)."
)


def require_workspace(workspace: str | Path, fix: str = CONNECT_FIX) -> Path:
    """Return the resolved workspace; refuse a folder that holds no ``vault/`` (nothing is created), naming the fix.

    Raises
    ------
    NotFoundError
        ``workspace`` does not exist or has no ``vault/`` folder; the message ends with ``fix`` (``{path}`` in it
        is replaced by the workspace's path).
    """
    path = Path(workspace).resolve()
    if (path / "vault").is_dir():
        return path
    where = "does not exist" if not path.exists() else "has no vault/ folder"
    raise NotFoundError(f"No sandbox workspace at {path} (it {where}). {fix.format(path=path)}")


def ensure_local_vault(
    workspace: str | Path, policy: str | Path | None = None, *, create: bool = False
) -> tuple[str, str]:
    """Return ``(url, token)`` of a live local vault for ``workspace``, starting one if needed.

    Parameters
    ----------
    workspace : str or Path
        The workspace; it must hold a ``vault/`` folder unless ``create``.
    policy : str or Path, optional
        Policy of a vault started here (a running vault keeps its own).
    create : bool
        Create the workspace (and an empty vault) when it does not exist yet.

    Raises
    ------
    NotFoundError
        ``workspace`` holds no workspace and ``create`` is False.
    SandboxError
        The vault did not start (see ``vault/vault.log``).
    """
    if not create:
        require_workspace(workspace)
    layout = WorkspaceLayout.create(workspace)
    with _locked(layout.launch_lock):
        register_client(layout)  # before the probe: a vault about to stop for want of clients sees this one
        info = layout.read_discovery()
        if info is not None and probe_health(str(info["url"])):
            return str(info["url"]), local_token(layout)
        url = _start(layout, policy)
        return url, local_token(layout)


def start_vault(workspace: str | Path, policy: str | Path | None = None) -> tuple[str, bool]:
    """Start the workspace's vault in the background until :func:`stop_local_vault` (no watchdog).

    ``sandbox vault start`` runs this: a vault for commands that need one across several shell lines
    (``sandbox review ...``). Returns ``(url, started)``; ``started`` is False when one already runs (it is left as
    it is, watchdog or not).

    Raises
    ------
    NotFoundError
        ``workspace`` holds no workspace.
    """
    require_workspace(workspace)
    layout = WorkspaceLayout.create(workspace)
    with _locked(layout.launch_lock):
        info = layout.read_discovery()
        if info is not None and probe_health(str(info["url"])):
            return str(info["url"]), False
        return _start(layout, policy, stop_when_unused=False), True


def stop_local_vault(workspace: str | Path, timeout: float = 30.0) -> bool:
    """Stop the vault named by the workspace's ``vault.json`` (SIGTERM, clean shutdown); ``True`` if one ran."""
    layout = WorkspaceLayout(Path(workspace).resolve())
    info = layout.read_discovery()
    if info is None:
        return False
    pid = int(info["pid"])
    os.kill(pid, signal.SIGTERM)
    mine = [c for c in _children if c.pid == pid]
    if mine:
        mine[0].wait(timeout=timeout)
        _children.remove(mine[0])
        return True
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True
