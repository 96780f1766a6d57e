"""Which process holds a pending charge: ``host:pid:start``, and whether that process still lives.

A reservation records its owner, so that the vault can tell a computation that is still running (an identical
query waits for it) from one whose process died (its charge is kept as failed, and the question may be asked
again). The start time (clock ticks since boot, from ``/proc/<pid>/stat``) tells a reused pid from the original.
"""

from __future__ import annotations

import os
import socket

__all__ = ["process_owner", "owner_alive"]

_cache: dict[int, str] = {}


def _start_ticks(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(") ", 1)[-1].split()
    except OSError:
        return None
    if fields[0] == "Z":
        return None  # a zombie has ended
    return fields[19]  # field 22 of stat (starttime); fields[0] is field 3 (state)


def process_owner() -> str:
    """Return the owner string of this process."""
    pid = os.getpid()
    if pid not in _cache:
        _cache[pid] = f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or '?'}"
    return _cache[pid]


def owner_alive(owner: str) -> bool | None:
    """Whether the owning process lives: ``True``/``False`` on this host, ``None`` for another host (unknown)."""
    try:
        host, pid_text, start = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    ticks = _start_ticks(pid)
    return ticks is not None and (start == "?" or ticks == start)
