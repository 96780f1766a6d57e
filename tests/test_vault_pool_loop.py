"""The worker pool on the vault's event loop (uvloop): its pipes to the workers stay blocking.

libuv puts every descriptor it polls into non-blocking mode; ``multiprocessing.Connection`` reads and writes a
message with blocking calls, so a message that is not wholly in the socket buffer when the loop wakes the pool
(a large task, or an answer still being written) failed half-read and the pool took the worker for dead without
noticing: a fairness audit after a release request waited forever (the served-vault case is
``tests/test_vault_jobs.py::test_audits_after_release_requests_are_answered``). The pool now sets each pipe back to
blocking after registering it.
"""

from __future__ import annotations

import asyncio
import os
import socket

import uvloop

from sandbox._private.shared.policy import load_policy
from sandbox._private.vault.workers.pool import WorkerPool


def test_uvloop_polls_descriptors_non_blocking() -> None:
    """The premise: without the pool's fix a polled pipe is non-blocking (a control of the check below)."""

    async def probe() -> bool:
        a, b = socket.socketpair()
        try:
            asyncio.get_running_loop().add_reader(a.fileno(), lambda: None)
            return os.get_blocking(a.fileno())
        finally:
            asyncio.get_running_loop().remove_reader(a.fileno())
            a.close()
            b.close()

    assert uvloop.run(probe()) is False


def test_pool_pipes_stay_blocking_on_uvloop() -> None:
    async def main() -> list[bool]:
        pool = WorkerPool(load_policy(None))
        await pool.start(wait=True)
        try:
            return [os.get_blocking(w.conn.fileno()) for lane in pool._lanes.values() for w in lane.workers]
        finally:
            await pool.close()

    blocking = uvloop.run(main())
    assert len(blocking) >= 2 and all(blocking), blocking
