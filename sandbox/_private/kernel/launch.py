"""Start or reuse the local vault of a workspace, for ``sb.connect()`` with no arguments.

A lock file (``vault/launch.lock``, ``flock``) makes concurrent kernels agree: the first starts
``sandbox vault serve`` as a child process in its own session on a free port and waits for ``vault.json``; the
others find the live vault and reuse it. The vault writes the local analyst's token once, to
``vault/client_token`` (mode 0600, readable only by the user who owns the workspace); this module only reads it.
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

from sandbox._private.shared.errors import SandboxError
from sandbox._private.shared.files import pid_alive
from sandbox._private.shared.layout import WorkspaceLayout

from .transport import probe_health

__all__ = ["ensure_local_vault", "local_token", "local_vault_uid", "stop_local_vault"]

_START_TIMEOUT_S = 60.0
# Local vaults this process started: they outlive a kernel restart on purpose (other kernels reuse them), and
# holding the Popen objects keeps Python from warning that a child is still running when the handle is dropped.
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


def _start(layout: WorkspaceLayout, policy: str | Path | None) -> str:
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


def ensure_local_vault(workspace: str | Path, policy: str | Path | None = None) -> tuple[str, str]:
    """Return ``(url, token)`` of a live local vault for ``workspace``, starting one if needed."""
    layout = WorkspaceLayout.create(workspace)
    with _locked(layout.launch_lock):
        info = layout.read_discovery()
        if info is not None and probe_health(str(info["url"])):
            return str(info["url"]), local_token(layout)
        url = _start(layout, policy)
        return url, local_token(layout)


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
