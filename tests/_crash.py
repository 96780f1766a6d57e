"""Forked children killed with SIGKILL at random moments: shared by the crash tests."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable


def fork(target: Callable[..., None], *args: object) -> tuple[int, int]:
    """Run ``target(write_fd, *args)`` in a forked child; return its pid and the read end of its pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        os.close(r)
        code = 0
        try:
            target(w, *args)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(w)
    return pid, r


def kill_and_read(pid: int, fd: int) -> bytes:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)
