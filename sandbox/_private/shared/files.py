"""Durable file writes shared by the vault, the kernel's run records and the generator's callers.

One implementation of each step that a crash-safe write needs: write a private file atomically, fsync a
directory after a rename, and tell whether a process still lives.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["write_private", "fsync_dir", "pid_alive"]


def write_private(path: Path, text: str) -> None:
    """Write ``text`` atomically to ``path`` with mode 0600 (readable by the owner only)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def fsync_dir(path: Path) -> None:
    """Fsync a directory, so that a rename or a new file in it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (zombies of our own children count as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True
