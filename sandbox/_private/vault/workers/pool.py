"""The vault's worker pool: processes that compute, so the event loop that serves HTTP never does.

Two lanes, each with its own processes and queue, so a short query never waits behind a model fit:

* ``query``: aggregate queries (``policy.workers.query_processes``, 0 = one per CPU core);
* ``fit``: model fits and fairness audits (``fit_processes``), at the lowest CPU priority (nice 19, SCHED_BATCH), so
  that on a busy machine a query still gets the cores first.

Admission (:meth:`WorkerPool.admit`) happens before anything is charged: when every process of the lane is busy and
its queue (``queue_per_lane``) is full the caller gets :class:`VaultBusyError` with ``retry_after`` (HTTP 503), and
an analyst with ``max_waiting_per_analyst`` jobs waiting already gets the same error with ``status=429``. One
analyst runs at most ``max_running_per_analyst`` jobs at once in a lane; their further jobs wait while other
analysts' jobs go first, so no analyst can take every process of a lane.

A job runs under its lane's CPU limit (``RLIMIT_CPU`` in the worker) and wall-clock limit (a timer here). A job
that is cancelled (its client went away), or runs over a limit, is stopped by killing its worker (SIGKILL: a fit in
C code cannot be interrupted any other way); a fresh worker takes its place from the fork server at once.

The pool lives in the vault's event loop: it reads its workers' pipes and exit sentinels with ``add_reader``, so
waiting costs no thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from types import MappingProxyType
from typing import Any

from sandbox._private.shared.errors import ComputeLimitError, InternalError, SandboxError, VaultBusyError
from sandbox._private.shared.policy import Policy
from sandbox._private.shared.wire import error_class

from ..dp.answers import Checked
from ..ledger.ledger import EncodedAnswer
from .worker import Task, worker_main

__all__ = ["WorkerPool", "Slot", "LANES", "lane_of", "is_cancelled"]

LANES = ("query", "fit")
_FIT_NICE = 19  # with SCHED_BATCH (worker.py): on a busy machine the query lane gets the cores first
_PRELOAD = ["sandbox._private.vault.workers.worker", "sandbox._private.vault.dp.fairness_audit"]
_BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_STOPPING = "The vault stopped during the computation; ask again when it is back."


def read_only(d: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    """Rebuild a read-only mapping in a worker (the pickle form of ``MappingProxyType``)."""
    return MappingProxyType(d)


def _reduce_mapping_proxy(m: MappingProxyType[Any, Any]) -> tuple[Any, tuple[dict[Any, Any]]]:
    return read_only, (dict(m),)


# Frozen value objects (specs, schemas) hold read-only mappings; a worker gets them as read-only mappings again.
ForkingPickler.register(MappingProxyType, _reduce_mapping_proxy)


def lane_of(kind: str) -> str:
    """Return the lane of a task kind: aggregates in ``query``; fits, audits and disclosure statistics in ``fit``."""
    return "query" if kind == "aggregate" else "fit"


class _Cancelled(SandboxError):
    """Internal: the job was cancelled (by its client's disconnect or a DELETE); never sent to a client as is."""


@dataclass
class Slot:
    """A place in a lane, taken at admission and given back when the job ends (or was never run)."""

    pool: WorkerPool
    lane: str
    analyst: str
    released: bool = False
    running: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.pool._release(self)


@dataclass
class _Pending:
    slot: Slot
    job_id: str
    task: Task
    wall_seconds: float
    future: asyncio.Future[EncodedAnswer]
    worker: _Worker | None = None
    timer: asyncio.TimerHandle | None = None
    started: float | None = None
    on_start: Callable[[], None] | None = None


@dataclass
class _Worker:
    lane: _Lane
    process: Any
    conn: Connection
    pending: _Pending | None = None
    stopping: bool = False
    ended: bool = False  # its exit was seen (its pipe at EOF, or its sentinel)


@dataclass
class _Lane:
    name: str
    processes: int
    queue_limit: int
    cpu_seconds: float
    wall_seconds: float
    nice: int
    workers: list[_Worker] = field(default_factory=list)
    idle: collections.deque[_Worker] = field(default_factory=collections.deque)
    queue: collections.deque[_Pending] = field(default_factory=collections.deque)
    admitted: int = 0
    running_by: collections.Counter[str] = field(default_factory=collections.Counter)
    mean_seconds: float = 1.0  # running mean of job durations, for Retry-After

    @property
    def capacity(self) -> int:
        return self.processes + self.queue_limit

    def retry_after(self) -> int:
        waiting = max(1, self.admitted - self.processes + 1)
        return max(1, min(60, math.ceil(self.mean_seconds * waiting / max(self.processes, 1))))


class WorkerPool:
    """Worker processes in two lanes (see the module docstring).

    Parameters
    ----------
    policy : Policy
        ``policy.workers`` sizes the lanes and limits the jobs; the workers get the policy for the engine.
    """

    def __init__(self, policy: Policy) -> None:
        rules = policy.workers
        cores = os.cpu_count() or 1
        self.policy = policy
        self.max_running = rules.max_running_per_analyst
        self.max_waiting = rules.max_waiting_per_analyst
        self._lanes = {
            "query": _Lane(
                "query",
                rules.query_processes or cores,
                rules.queue_per_lane,
                rules.query_cpu_seconds,
                rules.query_wall_seconds,
                0,
            ),
            "fit": _Lane(
                "fit",
                rules.fit_processes,
                rules.queue_per_lane,
                rules.fit_cpu_seconds,
                rules.fit_wall_seconds,
                _FIT_NICE,
            ),
        }
        self._waiting: collections.Counter[str] = collections.Counter()  # admitted, not yet running, any lane
        self._verified: set[tuple[str, int]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ctx = multiprocessing.get_context("forkserver")
        self._closed = False
        self.on_exit: Callable[[int, int | None], None] | None = None  # (pid, exit code) of each worker that ends

    # -- life cycle ---------------------------------------------------------------------------------------------
    async def start(self, *, wait: bool = True) -> None:
        """Start every worker process (the first also starts the fork server, which imports the engine once).

        With ``wait=False`` the processes start in the background: jobs admitted meanwhile wait in their lane's
        queue, so the vault can serve metadata and stored answers at once.
        """
        self._loop = asyncio.get_running_loop()
        for name in _BLAS_ENV:
            os.environ.setdefault(name, "1")
        self._ctx.set_forkserver_preload(_PRELOAD)
        spawns = [self._spawn(lane) for lane in self._lanes.values() for _ in range(lane.processes)]
        started = asyncio.gather(*spawns)
        if wait:
            await started

    async def close(self) -> None:
        """Stop every worker; jobs still running fail with an error saying the vault stopped."""
        self._closed = True
        for lane in self._lanes.values():
            while lane.queue:
                self._fail(lane.queue.popleft(), SandboxError(_STOPPING))
            for w in list(lane.workers):
                if w.pending is not None:
                    self._fail(w.pending, SandboxError(_STOPPING))
                self._stop(w)

    async def _spawn(self, lane: _Lane) -> None:
        assert self._loop is not None
        process, conn = await self._loop.run_in_executor(None, self._start_process, lane)
        worker = _Worker(lane, process, conn)
        lane.workers.append(worker)
        self._loop.add_reader(conn.fileno(), self._on_message, worker)
        self._loop.add_reader(process.sentinel, self._on_exit, worker)
        # libuv (uvloop) makes a polled descriptor non-blocking; Connection.send/recv need it blocking (a message
        # larger than the socket buffer, or one not yet wholly written, would otherwise fail half-read)
        os.set_blocking(conn.fileno(), True)
        lane.idle.append(worker)
        self._dispatch(lane)

    def _start_process(self, lane: _Lane) -> tuple[Any, Connection]:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=worker_main,
            args=(child, self.policy, lane.nice),
            name=f"sandbox-vault-{lane.name}-worker",
            daemon=True,
        )
        process.start()
        child.close()
        return process, parent

    def _stop(self, worker: _Worker) -> None:
        worker.stopping = True
        if worker.process.is_alive():
            worker.process.kill()

    # -- admission ----------------------------------------------------------------------------------------------
    def admit(self, lane_name: str, analyst: str) -> Slot:
        """Take a place for one job of ``analyst`` in a lane, or refuse with :class:`VaultBusyError`.

        The error carries ``status`` (503: the lane is full; 429: this analyst has too many jobs) and
        ``retry_after`` seconds. Nothing is charged before a place is taken.
        """
        lane = self._lanes[lane_name]
        if self._closed:
            raise _busy("The vault is shutting down; ask again when it is back.", 503, 5)
        if self._waiting[analyst] >= self.max_waiting:
            raise _busy(
                f"You have {self._waiting[analyst]} jobs waiting for a worker, the policy's "
                "workers.max_waiting_per_analyst; nothing was charged. Wait for one to start (or cancel one) and ask "
                "again.",
                429,
                lane.retry_after(),
            )
        if lane.admitted >= lane.capacity:
            raise _busy(
                f"All {lane.processes} {lane.name} workers of the vault are busy and {lane.queue_limit} jobs are "
                f"waiting; nothing was charged. Ask again in {lane.retry_after()} s.",
                503,
                lane.retry_after(),
            )
        lane.admitted += 1
        self._waiting[analyst] += 1
        return Slot(self, lane_name, analyst)

    def _release(self, slot: Slot) -> None:
        lane = self._lanes[slot.lane]
        lane.admitted -= 1
        _drop(lane.running_by if slot.running else self._waiting, slot.analyst)
        if slot.running:
            self._dispatch(lane)  # a job of this analyst that waited for its turn may start now

    def _started(self, slot: Slot, started: bool = True) -> None:
        """Count the slot's job as running (``started=False``: as waiting again, its worker having failed)."""
        lane = self._lanes[slot.lane]
        source, target = (self._waiting, lane.running_by) if started else (lane.running_by, self._waiting)
        _drop(source, slot.analyst)
        target[slot.analyst] += 1
        slot.running = started

    def _next(self, lane: _Lane) -> _Pending | None:
        """Take the first waiting job whose analyst runs fewer than ``max_running_per_analyst`` jobs in the lane."""
        for pending in lane.queue:
            if lane.running_by[pending.slot.analyst] < self.max_running:
                lane.queue.remove(pending)
                return pending
        return None

    def limits(self, lane_name: str) -> tuple[float, float]:
        """``(cpu_seconds, wall_seconds)`` of a job in the lane."""
        lane = self._lanes[lane_name]
        return lane.cpu_seconds, lane.wall_seconds

    # -- running ------------------------------------------------------------------------------------------------
    async def run(
        self,
        slot: Slot,
        job_id: str,
        kind: str,
        dataset: Any,
        item: Any,
        *,
        records: Mapping[str, Any] | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> EncodedAnswer:
        """Compute one job in the slot's lane; cancelling the awaiting task stops the job (its worker is killed).

        ``on_start`` is called when a worker takes the job.

        Raises
        ------
        ComputeLimitError
            The job ran over its CPU or wall-time limit.
        SandboxError
            What the engine raised (same type and message as in the vault process).
        """
        assert self._loop is not None, "start() the pool first"
        lane = self._lanes[slot.lane]
        tables = dict(records or {dataset.name: dataset})
        keys = {(r.name, r.version) for r in (dataset, *tables.values())}
        if isinstance(item, Checked):  # the query and its cost, not the schema object: the worker has the schema
            item = (item.item, item.cost)
        verify = not keys <= self._verified
        task = Task(kind, dataset, item, verify, lane.cpu_seconds, tables)  # type: ignore[arg-type]
        future: asyncio.Future[EncodedAnswer] = self._loop.create_future()
        future.add_done_callback(_retrieve)  # an answer nobody awaits any more (cancelled) is not an error
        pending = _Pending(slot, job_id, task, lane.wall_seconds, future, on_start=on_start)
        lane.queue.append(pending)
        self._dispatch(lane)
        try:
            answer = await asyncio.shield(pending.future)
        except asyncio.CancelledError:
            self.cancel(pending, "cancelled")
            raise
        finally:
            slot.release()
        self._verified |= keys
        return answer

    def cancel_job(self, job_id: str) -> bool:
        """Stop the job ``job_id`` if it is waiting or running; ``True`` if it was."""
        for lane in self._lanes.values():
            for p in [*lane.queue, *(w.pending for w in lane.workers if w.pending is not None)]:
                if p.job_id == job_id and not p.future.done():
                    self.cancel(p, "cancelled")
                    return True
        return False

    def cancel(self, pending: _Pending, why: str) -> None:
        lane = self._lanes[pending.slot.lane]
        if pending in lane.queue:
            lane.queue.remove(pending)
        elif pending.worker is not None and pending.worker.pending is pending:
            self._stop(pending.worker)
        self._fail(pending, _Cancelled(why))

    def _dispatch(self, lane: _Lane) -> None:
        while lane.idle and lane.queue:
            worker = lane.idle[0]
            if worker.stopping or worker.ended:  # flags, not is_alive(): that is a system call per job
                lane.idle.popleft()
                continue
            pending = self._next(lane)
            if pending is None:
                return  # every waiting job belongs to an analyst at their limit
            lane.idle.popleft()
            if not pending.slot.running:
                self._started(pending.slot)
            worker.pending, pending.worker = pending, worker
            pending.started = time.monotonic()
            try:
                worker.conn.send((pending.job_id, pending.task))
            except (OSError, ValueError):  # the worker's pipe broke: another worker takes the job
                worker.pending, pending.worker = None, None
                self._started(pending.slot, started=False)
                lane.queue.appendleft(pending)
                self._stop(worker)
                continue
            except Exception as exc:  # the task cannot be sent (a bug): fail it, keep the worker
                worker.pending, pending.worker = None, None
                lane.idle.appendleft(worker)
                self._fail(pending, InternalError(f"The computation could not be handed to a worker ({exc})."))
                continue
            assert self._loop is not None
            pending.timer = self._loop.call_later(pending.wall_seconds, self._timeout, pending)
            if pending.on_start is not None:
                pending.on_start()

    def _timeout(self, pending: _Pending) -> None:
        if pending.future.done() or pending.worker is None:
            return
        cpu = pending.task.cpu_seconds
        self._stop(pending.worker)
        self._fail(
            pending,
            ComputeLimitError(
                f"The computation ran over the policy's wall-time limit of {pending.wall_seconds:g} s "
                f"(workers.{pending.slot.lane}_wall_seconds; CPU limit {cpu:g} s) and was stopped."
            ),
        )

    def _fail(self, pending: _Pending, exc: BaseException) -> None:
        if pending.timer is not None:
            pending.timer.cancel()
        if not pending.future.done():
            pending.future.set_exception(exc)

    def _finish(self, worker: _Worker, pending: _Pending, outcome: EncodedAnswer | BaseException) -> None:
        lane = worker.lane
        worker.pending = None
        if pending.timer is not None:
            pending.timer.cancel()
        if pending.started is not None:
            lane.mean_seconds = 0.8 * lane.mean_seconds + 0.2 * (time.monotonic() - pending.started)
        if not pending.future.done():
            if isinstance(outcome, BaseException):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)

    def _on_message(self, worker: _Worker) -> None:
        try:
            msg = worker.conn.recv()
        except (EOFError, OSError):
            assert self._loop is not None
            worker.ended = True
            self._loop.remove_reader(worker.conn.fileno())
            return
        if msg[0] == "ready":
            return
        pending = worker.pending
        if pending is None or pending.job_id != msg[1]:
            return  # the answer of a job that was cancelled meanwhile
        if msg[0] == "ok":
            self._finish(worker, pending, msg[2])
        elif msg[0] == "error":
            self._finish(worker, pending, error_class(msg[2], 500)(msg[3]))
        else:
            self._finish(worker, pending, InternalError(f"The computation failed inside the vault ({msg[2]})."))
        if not worker.stopping:
            worker.lane.idle.append(worker)
        self._dispatch(worker.lane)

    def _on_exit(self, worker: _Worker) -> None:
        assert self._loop is not None
        worker.ended = True
        self._loop.remove_reader(worker.process.sentinel)
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(worker.conn.fileno())
        worker.process.join(timeout=0)
        code = worker.process.exitcode
        worker.conn.close()
        lane = worker.lane
        if worker in lane.workers:
            lane.workers.remove(worker)
        if worker in lane.idle:
            lane.idle.remove(worker)
        pending = worker.pending
        if pending is not None and not pending.future.done():
            if code == -signal.SIGXCPU:
                error: BaseException = ComputeLimitError(
                    f"The computation ran over the policy's CPU limit of {pending.task.cpu_seconds:g} s "
                    f"(workers.{lane.name}_cpu_seconds) and was stopped."
                )
            else:
                error = InternalError(f"A vault worker ended with exit code {code} during the computation.")
            self._finish(worker, pending, error)
        if self.on_exit is not None:
            self.on_exit(worker.process.pid, code)
        if not self._closed:
            self._loop.create_task(self._spawn(lane))

    # -- what the health endpoint shows an authenticated caller -------------------------------------------------
    def stats(self) -> dict[str, Any]:
        return {
            name: {
                "processes": lane.processes,
                "busy": sum(1 for w in lane.workers if w.pending is not None and not w.pending.future.done()),
                "waiting": len(lane.queue),
                "queue_limit": lane.queue_limit,
                "cpu_seconds": lane.cpu_seconds,
                "wall_seconds": lane.wall_seconds,
            }
            for name, lane in self._lanes.items()
        }

    def worker_pids(self) -> dict[str, list[int]]:
        return {name: [w.process.pid for w in lane.workers] for name, lane in self._lanes.items()}


def _drop(counter: collections.Counter[str], analyst: str) -> None:
    counter[analyst] -= 1
    if counter[analyst] <= 0:
        del counter[analyst]


def _busy(message: str, status: int, retry_after: int) -> VaultBusyError:
    exc = VaultBusyError(message)
    exc.status = status  # type: ignore[attr-defined]
    exc.retry_after = retry_after  # type: ignore[attr-defined]
    return exc


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def is_cancelled(exc: BaseException) -> bool:
    """Whether ``exc`` is the pool's cancellation of a job."""
    return isinstance(exc, _Cancelled)
