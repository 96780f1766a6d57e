"""One worker process: receives a computation, runs it on the registered tables read in place, sends the answer back.

The vault's pool (:mod:`.pool`) starts these from a fork server that has imported the engine already, so a new worker
is ready in milliseconds. A worker does one job at a time, under a CPU-time limit set with ``RLIMIT_CPU`` just
before the job (the kernel stops a job that goes over it with ``SIGXCPU``; the pool reports the limit). It never
touches the ledger: it gets a checked request and a dataset record, and returns a
:class:`~..ledger.records.EncodedAnswer` (or the error the engine raised). It dies with the vault: ``PR_SET_PDEATHSIG``
kills it when its parent (the fork server, which exits with the vault) goes, so an orphaned fit never runs on.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import resource
import signal
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Literal

from sandbox._private.shared.errors import SandboxError
from sandbox._private.shared.policy import Policy

from ..dp.engine import DPEngine
from ..ledger.ledger import ComputedAnswer, DatasetRecord, EncodedAnswer
from ..tables import OpenTables

__all__ = ["Task", "worker_main", "run_task"]

_PR_SET_PDEATHSIG = 1
TaskKind = Literal["aggregate", "fit", "audit", "disclosure"]


@dataclass(frozen=True)
class Task:
    """A computation for a worker.

    Attributes
    ----------
    kind : {"aggregate", "fit", "audit"}
        What to compute.
    dataset : DatasetRecord
        The dataset version it is charged to (the base table).
    item : object
        The checked query or fit (sent without its schema: the worker has the record's), or an
        :class:`~..dp.fairness_audit.AuditJob`.
    verify : bool
        Rehash the registered files before reading them (once per vault start).
    cpu_seconds : float
        CPU time the job may use.
    records : Mapping of str to DatasetRecord
        Every table the computation reads, by name (the base table's too; a join or a model's relation reads more).
    """

    kind: TaskKind
    dataset: DatasetRecord
    item: Any
    verify: bool
    cpu_seconds: float
    records: Mapping[str, DatasetRecord]


def run_task(task: Task, engine: DPEngine, tables: OpenTables) -> ComputedAnswer:
    """Compute ``task`` (in this process); the same code the in-process service runs."""
    from ..dp.answers import Checked
    from ..service import _mechanism, vault_answer

    if task.kind in ("aggregate", "fit"):
        item, cost = task.item
        catalog = tables.catalog(task.records, load=True, verify=task.verify)
        checked = Checked(item, cost, catalog.schemas())  # checked in the vault process, against these schemas
        if task.kind == "aggregate":
            return vault_answer(engine, checked, catalog, task.records)
        fitted = engine.fit(checked, catalog)
        return ComputedAnswer(fitted.public, fitted.private, _mechanism(fitted, item.spec.diffprivlib_class))
    if task.kind == "disclosure":  # the deferred statistics of a stored answer, for its release request
        query, k = task.item
        catalog = tables.catalog(task.records, load=True, verify=task.verify)
        return ComputedAnswer({}, engine.disclosure(query, catalog, k), "")
    from ..dp.fairness_audit import compute_audit

    job = task.item
    others = {n: r for n, r in task.records.items() if n != task.dataset.name}
    table = tables.model_table(engine, task.dataset, job.public, job.attributes, others, verify=task.verify)
    return compute_audit(job, table, engine)


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the pipe's EOF ends the worker after its job
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the parent went before the call above took effect
        os._exit(0)


def _limit_cpu(seconds: float | None) -> None:
    """Let the process use ``seconds`` more CPU time from now (``None``: lift the limit to the hard one)."""
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    if seconds is None:
        resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))
        return
    used = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(used.ru_utime + used.ru_stime + seconds)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def worker_main(conn: Connection, policy: Policy, nice: int) -> None:
    """Serve jobs from ``conn`` until the pipe closes (the entry point of a worker process)."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the vault handles Ctrl-C and SIGTERM; it stops its workers
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a job stopped by SIGXCPU leaves no core file of rows
    if nice:
        os.nice(nice)
        with contextlib.suppress(AttributeError, OSError):  # Linux: CPU-bound batch work, preempted by queries
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        threadpool_limits(1)  # one BLAS thread per job: the pool, not BLAS, decides how many cores are busy
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        pass
    engine = DPEngine(policy)
    tables = OpenTables()
    conn.send(("ready", os.getpid()))
    while True:
        try:
            job_id, task = conn.recv()
        except (EOFError, OSError):
            return
        _limit_cpu(task.cpu_seconds)
        try:
            # encoded here, in parallel with the other workers: the vault process stores the texts as they are
            reply: tuple[Any, ...] = ("ok", job_id, EncodedAnswer.of(run_task(task, engine, tables)))
        except SandboxError as exc:
            reply = ("error", job_id, type(exc).__name__, str(exc))
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            reply = ("crash", job_id, type(exc).__name__, "")
        finally:
            _limit_cpu(None)
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
