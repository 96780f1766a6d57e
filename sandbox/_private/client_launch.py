"""Start or reuse the local vault of a workspace, for ``sb.connect()`` with no arguments.

A lock file (``vault/launch.lock``, ``flock``) makes concurrent kernels agree: the first starts
``sandbox vault serve`` as a child process in its own session on a free port and waits for ``vault.json``; the
others find the live vault and reuse it. The local analyst's token is created once and kept in
``vault/client_token`` (mode 0600), readable only by the user who owns the workspace.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from .errors import SandboxError
from .vault.layout import VaultLayout, pid_alive, write_private
from .vault.tokens import TokenStore

__all__ = ["ensure_local_vault", "local_token", "stop_local_vault"]

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


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def local_token(layout: VaultLayout) -> str:
    """Return the local analyst's token, creating it on first use."""
    try:
        return layout.client_token.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        name = "".join(ch if ch.isalnum() or ch in "_.@-" else "_" for ch in getpass.getuser())[:64] or "analyst"
        token = TokenStore(layout.tokens).create(name, "analyst")
        write_private(layout.client_token, token + "\n")
        return token


def _start(layout: VaultLayout, policy: str | Path | None) -> str:
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
    with layout.log.open("ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    _children.append(proc)
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        info = layout.read_discovery()
        if info is not None and info.get("pid") == proc.pid and _healthy(str(info["url"])):
            return str(info["url"])
        if proc.poll() is not None:
            raise SandboxError(
                f"The local vault exited with code {proc.returncode} before listening; see {layout.log}."
            )
        time.sleep(0.05)
    proc.terminate()
    raise SandboxError(f"The local vault did not start within {_START_TIMEOUT_S:.0f} s; see {layout.log}.")


def ensure_local_vault(workspace: str | Path, policy: str | Path | None = None) -> tuple[str, str]:
    """Return ``(url, token)`` of a live local vault for ``workspace``, starting one if needed."""
    layout = VaultLayout.create(workspace)
    with _locked(layout.launch_lock):
        token = local_token(layout)
        info = layout.read_discovery()
        if info is not None and _healthy(str(info["url"])):
            return str(info["url"]), token
        return _start(layout, policy), token


def stop_local_vault(workspace: str | Path, timeout: float = 30.0) -> bool:
    """Stop the vault named by the workspace's ``vault.json`` (SIGTERM, clean shutdown); ``True`` if one ran."""
    layout = VaultLayout(Path(workspace).resolve())
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
