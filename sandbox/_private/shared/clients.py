"""Which processes use a workspace's local vault: one lease file per client, so the vault can stop when all end.

A local vault is started for a process that needs one (``sb.connect()`` with no URL, ``sandbox run``,
``sandbox lab``, ``sandbox demo``; see :mod:`sandbox._private.kernel.launch`). Each such process, whether it
starts the vault or reuses a running one, first leaves a lease in ``<workspace>/vault/clients/<pid>.json``::

    {"pid": 4242, "start": "1234567", "since": "2026-12-01T11:00:00.000+00:00"}

``start`` is the process's start time as the kernel counts it (``/proc/<pid>/stat`` field 22), so a lease of a
process that ended is never mistaken for a later process that got the same pid. A vault started with
``--stop-when-unused`` (:mod:`sandbox._private.vault.watchdog`) reads the leases every half second and stops
cleanly, like on SIGTERM, once no leased process has lived for its grace period. A lease is never deleted by its
client: a process that ends, however it ends (also SIGKILL), simply stops being alive.

The files live beside the vault's own (mode 0600 in a 0700 folder), so only the workspace's owner can keep a
vault alive or read who uses it.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from .files import pid_alive, write_private
from .layout import WorkspaceLayout

__all__ = ["CLIENTS_DIR", "clients_dir", "register_client", "live_clients", "process_start", "process_running"]

#: Folder of the leases, inside the vault's folder.
CLIENTS_DIR = "clients"


def clients_dir(layout: WorkspaceLayout) -> Path:
    """Return ``<workspace>/vault/clients``."""
    return layout.root / CLIENTS_DIR


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """``(state, start time)`` of a process from ``/proc/<pid>/stat``, or None when it has no entry."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(") ", 1)[-1].split()
    except OSError:
        return None
    # after the command name: state is field 3 of the file, starttime field 22 (so index 0 and 19 here)
    return (fields[0], fields[19]) if len(fields) > 19 else None


def process_start(pid: int) -> str | None:
    """Return the start time of process ``pid`` (clock ticks since boot, as text), or None where unknown."""
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def process_running(pid: int, start: str | None = None) -> bool:
    """Whether process ``pid`` runs (not a zombie) and, when ``start`` is given, is the one that started then."""
    stat = _proc_stat(pid)
    if stat is None:
        return pid_alive(pid) if not Path("/proc/self/stat").exists() else False
    state, started = stat
    if state in ("Z", "X"):
        return False
    return start is None or started == start


def register_client(layout: WorkspaceLayout, pid: int | None = None) -> Path:
    """Leave the lease of process ``pid`` (default: this process) for the workspace's vault; return its path."""
    pid = os.getpid() if pid is None else pid
    folder = clients_dir(layout)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    lease = {"pid": pid, "start": process_start(pid), "since": datetime.now(UTC).isoformat(timespec="milliseconds")}
    path = folder / f"{pid}.json"
    write_private(path, json.dumps(lease) + "\n")
    return path


def live_clients(layout: WorkspaceLayout, *, prune: bool = True) -> list[int]:
    """Return the pids of leased processes that still run; with ``prune``, delete the leases of the others."""
    folder = clients_dir(layout)
    try:
        paths = sorted(folder.glob("*.json"))
    except OSError:
        return []
    alive = []
    for path in paths:
        try:
            lease = json.loads(path.read_text(encoding="utf-8"))
            pid, start = int(lease["pid"]), lease.get("start")
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written (atomically renamed in a moment) or not ours: leave it
        if process_running(pid, None if start is None else str(start)):
            alive.append(pid)
        elif prune:
            path.unlink(missing_ok=True)
    return alive
