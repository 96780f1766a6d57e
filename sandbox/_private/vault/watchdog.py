"""Stop a local vault once no process uses it: ``sandbox vault serve --stop-when-unused``.

A vault that ``sb.connect()``, ``sandbox run``, ``sandbox lab`` or ``sandbox demo`` started for the analyst runs
in its own session (Ctrl-C in the analyst's terminal does not reach it), so without this it would keep running,
holding the protected rows in memory and a port open, long after the notebook or command that needed it ended.

Each process that starts or reuses a local vault leaves a lease (:mod:`sandbox._private.shared.clients`). The
watchdog thread checks the leases every :data:`POLL_S` seconds; once none of the leased processes has been
running for ``grace_s`` seconds, it takes the launcher's lock (``vault/launch.lock``, so no client can be reusing
the vault at that moment), looks once more, and sends the vault's own process SIGTERM, so the vault shuts down
exactly as a service manager would stop it (requests in flight finish, ``vault.json`` is retracted). The grace
period lets a process that is about to reuse the vault (a kernel restarting, the next ``sandbox run``) take its
lease first.

A vault run as a service (``sandbox vault serve`` without the flag) has no watchdog and never stops by itself.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import threading
import time
from pathlib import Path

from sandbox._private.shared.clients import clients_dir, live_clients
from sandbox._private.shared.layout import WorkspaceLayout

__all__ = ["start_watchdog", "POLL_S", "DEFAULT_GRACE_S"]

#: Seconds between two looks at the leases.
POLL_S = 0.5
#: Seconds without a running client before the vault stops (``--stop-when-unused`` without a value).
DEFAULT_GRACE_S = 10.0


def _try_lock(path: Path) -> int | None:
    """Take the launcher's lock without waiting; None while a client holds it (it is arriving right now).

    A workspace whose vault folder is gone (deleted under the running vault) can have no client: -1, stop.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return -1 if not path.parent.is_dir() else None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _watch(layout: WorkspaceLayout, grace_s: float, stop: threading.Event) -> None:
    try:
        _loop(layout, grace_s, stop)
    except Exception as exc:  # never die silently: a vault nobody watches would run for ever
        print(f"[sandbox vault] stopping: the watchdog failed ({type(exc).__name__}: {exc})", file=sys.stderr)
        os.kill(os.getpid(), signal.SIGTERM)


def _loop(layout: WorkspaceLayout, grace_s: float, stop: threading.Event) -> None:
    last_seen = time.monotonic()
    while not stop.wait(POLL_S):
        if live_clients(layout):
            last_seen = time.monotonic()
            continue
        if time.monotonic() - last_seen < grace_s:
            continue
        fd = _try_lock(layout.launch_lock)
        if fd is None:
            continue
        if fd >= 0 and live_clients(layout):  # a client took its lease just before the lock: keep serving it
            os.close(fd)
            last_seen = time.monotonic()
            continue
        message = (
            f"stopping: no process has used this vault for {grace_s:g} s (every lease in "
            f"{clients_dir(layout)} belongs to a process that ended)"
        )
        print(f"[sandbox vault] {message}", file=sys.stderr, flush=True)  # into vault.log
        # The lock stays held until this process has exited, so the next client waits for this vault to be gone
        # (vault.json retracted) and then starts a new one, rather than reusing a vault that is shutting down.
        os.kill(os.getpid(), signal.SIGTERM)
        return


def start_watchdog(workspace: str | os.PathLike[str], grace_s: float = DEFAULT_GRACE_S) -> threading.Event:
    """Start the watchdog thread for ``workspace``'s vault; set the returned event to stop watching.

    Parameters
    ----------
    workspace : path
        The workspace whose ``vault/clients/`` leases keep the vault running.
    grace_s : float
        Seconds without any running client before the vault sends itself SIGTERM (>= 0).
    """
    if grace_s < 0:
        raise ValueError(f"grace_s must be >= 0 seconds, got {grace_s}")
    stop = threading.Event()
    layout = WorkspaceLayout(Path(workspace).resolve())
    thread = threading.Thread(target=_watch, args=(layout, grace_s, stop), name="sandbox-watchdog", daemon=True)
    thread.start()
    return stop
