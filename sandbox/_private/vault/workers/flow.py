"""How a charged computation runs: admit, reserve, compute in a worker, finalise (or fail, keeping the charge).

:class:`ComputeService` is what the HTTP routes call for queries, fits and audits. For each request:

1. **admit** in the pool (event loop): a full lane or an analyst with too many jobs is refused (503 / 429 with
   ``Retry-After``) before anything is written;
2. **check and reserve** in a thread: the request is validated against the schema and the policy, and the ledger
   either returns the stored answer of the identical question (nothing charged, no job runs) or commits a pending
   charge in a short transaction (it counts as spent from now on);
3. **compute** in a worker process of the lane, under the policy's CPU and wall-time limits; no ledger transaction
   is open meanwhile;
4. **finalise** in a second short transaction (the answer is stored before it is returned), or, when the
   computation failed, ran over a limit or was cancelled because its client went away, **fail** the reservation:
   the charge is kept (the computation may have seen the rows), and the error says so.

A blocking request waits on its job while watching its connection: when the client disconnects, the job is
cancelled at once (its worker is killed). ``fit(..., wait=False)`` returns the job instead (202).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sandbox._private.shared.canonical import canonical_json
from sandbox._private.shared.errors import ComputeLimitError, InternalError, SandboxError
from sandbox._private.shared.query import AggregateQuery

from ..disclosure import completed, deferred_inputs, is_deferred
from ..ledger.ledger import ChargeOutcome, ChargeRecord, ChargeRequest, DatasetRecord, StaleVersions
from ..ledger.records import EncodedAnswer, Reservation
from ..service import VaultService, _outcome_payload, outcome_brief, outcome_json
from ..tokens import TokenInfo
from .jobs import BRIEF_KEYS, Job, JobStore
from .pool import Slot, WorkerPool, is_cancelled, lane_of

__all__ = ["ComputeService", "Charge"]
_In = TypeVar("_In")
_Out = TypeVar("_Out")

Disconnected = Callable[[], Coroutine[Any, Any, None]]
_ToReserve = tuple[Callable[[], "Charge"], TokenInfo, "str | None"]  # a request's check, its caller and run id


@dataclass(frozen=True)
class Charge:
    """A checked request, ready to be reserved: what the ledger records and what the worker computes."""

    kind: str  # "aggregate", "fit" or "audit" (the ledger's kind is "aggregate", "model" or "audit")
    dataset: DatasetRecord
    query_key: str
    query: Mapping[str, Any]
    epsilon: float
    delta: float
    item: Any
    records: Mapping[str, DatasetRecord]  # every table the computation reads, the base table's too

    @property
    def ledger_kind(self) -> str:
        return "model" if self.kind == "fit" else self.kind


class ComputeService:
    """The vault's charged computations, through the worker pool (see the module docstring).

    Parameters
    ----------
    vault : VaultService
        Ledger, policy, registry.
    pool : WorkerPool
        The started worker pool.
    """

    def __init__(self, vault: VaultService, pool: WorkerPool) -> None:
        self.vault = vault
        self.pool = pool
        self.jobs = JobStore()
        self._orphans: set[asyncio.Task[None]] = set()
        # reservations and finalisations go to the ledger's threads in batches (see _Batched)
        self._reserver: _Batched[_ToReserve, tuple[Charge, Reservation | ChargeOutcome]] = _Batched(
            self._reserve_many, orphan=self._abandoned
        )
        self._finaliser: _Batched[tuple[Reservation, EncodedAnswer], ChargeOutcome] = _Batched(
            vault.ledger.finalise_many
        )

    # -- checking (in a thread: reads the ledger) ----------------------------------------------------------------
    def _check_query(self, body: Mapping[str, Any]) -> Charge:
        checked, record, records, schemas = self.vault._prepare_query(body)
        query = checked.item
        assert isinstance(query, AggregateQuery)
        c = checked.cost
        key = query.canonical_key(schemas, {n: r.version for n, r in records.items()})
        return Charge("aggregate", record, key, query.to_dict(), float(c.epsilon), float(c.delta), checked, records)

    def _check_fit(self, body: Mapping[str, Any]) -> Charge:
        checked, fq, record, records = self.vault._prepare_fit(body)
        key = fq.canonical_key({n: r.version for n, r in records.items()})
        return Charge("fit", record, key, fq.to_dict(), fq.epsilon, fq.delta, checked, records)

    def _check_audit(self, model_id: str, protected: Sequence[str] | None, epsilon: float | None) -> Charge:
        from ..dp.fairness_audit import prepare_audit

        job = prepare_audit(self.vault, model_id, protected, epsilon)
        key = canonical_json({"kind": "audit", **job.query})
        records = {job.dataset.name: job.dataset, **self.vault.model_records(job.dataset, job.public)}
        return Charge("audit", job.dataset, key, job.query, job.epsilon, 0.0, job, records)

    # -- the three requests ----------------------------------------------------------------------------------------
    async def query(
        self, body: Mapping[str, Any], caller: TokenInfo, run_id: str | None, disconnected: Disconnected
    ) -> dict[str, Any]:
        job = await self.submit(lambda: self._check_query(body), "aggregate", caller, run_id, detached=False)
        return await self.wait(job, disconnected)

    async def query_json(
        self, body: Mapping[str, Any], caller: TokenInfo, run_id: str | None, disconnected: Disconnected
    ) -> str:
        """:meth:`query`, answered as its response body: ``canonical_json`` of what :meth:`query` returns."""
        job = await self.submit(lambda: self._check_query(body), "aggregate", caller, run_id, detached=False)
        return await self.wait_json(job, disconnected)

    async def fit(
        self, body: Mapping[str, Any], caller: TokenInfo, run_id: str | None, disconnected: Disconnected, *, wait: bool
    ) -> dict[str, Any]:
        job = await self.submit(lambda: self._check_fit(body), "fit", caller, run_id, detached=not wait)
        return await self.wait(job, disconnected) if wait else job.view()

    async def audit(
        self,
        model_id: str,
        protected: Sequence[str] | None,
        epsilon: float | None,
        caller: TokenInfo,
        run_id: str | None,
        disconnected: Disconnected,
    ) -> dict[str, Any]:
        job = await self.submit(
            lambda: self._check_audit(model_id, protected, epsilon), "audit", caller, run_id, detached=False
        )
        return await self.wait(job, disconnected)

    # -- the flow ------------------------------------------------------------------------------------------------
    async def submit(
        self, check: Callable[[], Charge], kind: str, caller: TokenInfo, run_id: str | None, *, detached: bool
    ) -> Job:
        """Admit, check and reserve; start the computation unless the answer is stored. Returns the job."""
        slot = self.pool.admit(lane_of(kind), caller.name)
        try:
            charge, reserved = await self._reserver.submit((check, caller, run_id))
        except BaseException:
            slot.release()
            raise
        job = self.jobs.new(caller.name, kind, charge.dataset.name, detached=detached)
        if isinstance(reserved, ChargeOutcome):
            slot.release()
            job.succeed(_outcome_payload(reserved))
            return job
        job.task = asyncio.create_task(self._compute(job, slot, charge, reserved))
        return job

    def _reserve_many(
        self, items: list[_ToReserve]
    ) -> list[tuple[Charge, Reservation | ChargeOutcome] | BaseException]:
        """Check each request, then reserve those that pass together (:meth:`Ledger.reserve_many`).

        The requests are checked against the versions this vault read last, and the ledger confirms those in the
        statement that looks up the stored answers: one round trip fewer for each batch. Should a new version have
        been registered, the ledger writes nothing and the batch is checked again against versions read now.
        """
        assumed: dict[str, int] = {}
        try:
            return self._reserve_checked(items, assumed)
        except StaleVersions:
            return self._reserve_checked(items, None)

    def _reserve_checked(
        self, items: list[_ToReserve], assumed: dict[str, int] | None
    ) -> list[tuple[Charge, Reservation | ChargeOutcome] | BaseException]:
        checked: list[tuple[Charge, TokenInfo, str | None] | BaseException] = []
        with self.vault.one_moment(assumed):  # each table's version is read (or taken) once for all of them
            for check, caller, run_id in items:
                try:
                    checked.append((check(), caller, run_id))
                except Exception as exc:
                    checked.append(exc)
        requests = [
            ChargeRequest(
                c.dataset, c.ledger_kind, c.query_key, c.query, c.epsilon, c.delta, caller.name, run_id,
                self.vault.policy.budget.epsilon_per_analyst,
            )
            for c, caller, run_id in (x for x in checked if not isinstance(x, BaseException))
        ]  # fmt: skip
        # confirms the assumed versions (StaleVersions if one is not current), even when every check failed
        reserved = iter(self.vault.ledger.reserve_many(requests, current=assumed))
        out: list[tuple[Charge, Reservation | ChargeOutcome] | BaseException] = []
        for x in checked:
            if isinstance(x, BaseException):
                out.append(x)
                continue
            got = next(reserved)
            out.append(got if isinstance(got, Exception) else (x[0], got))
        return out

    def _abandoned(self, reserved: tuple[Charge, Reservation | ChargeOutcome]) -> None:
        """Keep as failed a charge reserved for a request that was cancelled before its computation started."""
        reservation = reserved[1]
        if isinstance(reservation, Reservation):
            why = "cancelled: the request ended before its computation started"
            task = asyncio.get_running_loop().create_task(asyncio.to_thread(self.vault.ledger.fail, reservation, why))
            self._orphans.add(task)  # referenced until it ends
            task.add_done_callback(self._orphans.discard)

    async def _compute(self, job: Job, slot: Slot, charge: Charge, reservation: Reservation) -> None:
        ledger = self.vault.ledger
        try:
            answer = await self.pool.run(
                slot, job.id, charge.kind, charge.dataset, charge.item, records=charge.records, on_start=job.start
            )
        except BaseException as exc:  # also a bug in the pool: the reservation is failed and the job ends
            cancelled = isinstance(exc, asyncio.CancelledError) or is_cancelled(exc)
            reason = "cancelled" if cancelled else f"{type(exc).__name__}: {exc}"
            try:
                await asyncio.shield(asyncio.to_thread(ledger.fail, reservation, reason[:500]))
            finally:
                job.fail(_kept(exc, charge, cancelled), cancelled=cancelled)
            if not isinstance(exc, Exception):
                raise
            return
        try:
            outcome = await asyncio.shield(self._finaliser.submit((reservation, answer)))
        except Exception as exc:
            job.fail(exc if isinstance(exc, SandboxError) else InternalError(f"Storing the answer failed ({exc})."))
            return
        job.succeed(lambda: _outcome_payload(outcome), outcome_json(outcome), outcome_brief(outcome, BRIEF_KEYS))

    async def wait(self, job: Job, disconnected: Disconnected) -> dict[str, Any]:
        """Wait for ``job`` while watching the client's connection; cancel the job if the client goes away."""
        await self._ended(job, disconnected)
        result = job.answer()
        assert result is not None
        job.compact()  # the answer goes back now; the job keeps its id only (GET /v1/results/{id} has the rest)
        return result

    async def wait_json(self, job: Job, disconnected: Disconnected) -> str:
        """:meth:`wait`, the answer as its response body (``canonical_json`` of what :meth:`wait` returns)."""
        await self._ended(job, disconnected)
        text = job.text if job.text is not None else canonical_json(job.answer())
        job.compact()
        return text

    async def _ended(self, job: Job, disconnected: Disconnected) -> None:
        """Wait until ``job`` ends (cancelling it if the client goes away); raise its error if it failed."""
        if not job.done:
            watcher = asyncio.create_task(disconnected())
            # the job's own task ends when the job does (it ends the job last); otherwise wait on the job itself
            ended = job.task if job.task is not None else asyncio.create_task(job.wait())
            try:
                await asyncio.wait({watcher, ended}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                watcher.cancel()
            if not ended.done():
                self.pool.cancel_job(job.id)
                await asyncio.wait({ended})  # the reservation is failed (charge kept) before this request ends
        if job.error is not None:
            raise job.error

    # -- deferred disclosure statistics (for the release gate) ------------------------------------------------------
    async def disclose(self, record: ChargeRecord) -> ChargeRecord:
        """Return a stored answer with its disclosure statistics, computed in a worker (see :mod:`..disclosure`).

        A job of the answer's analyst in the fit lane (it may take seconds on a national table); nothing is
        charged: these are exact statistics for the gate's DP test and the reviewers, never sent to the analyst.
        """
        if not is_deferred(record):
            return record
        query, versions, k = deferred_inputs(record)
        ledger = self.vault.ledger
        records = await asyncio.to_thread(lambda: {n: ledger.dataset(n, v) for n, v in versions.items()})
        slot = self.pool.admit(lane_of("disclosure"), record.analyst)
        job_id = f"disclosure-{record.id}"
        answer = await self.pool.run(slot, job_id, "disclosure", records[query.dataset], (query, k), records=records)
        return completed(record, json.loads(answer.private_json), versions)

    def complete(self, record: ChargeRecord) -> ChargeRecord:
        """:meth:`disclose` for a caller in another thread (the release gate's routes run in threads)."""
        if not is_deferred(record):
            return record
        loop = self.pool._loop
        assert loop is not None, "start() the pool first"
        return asyncio.run_coroutine_threadsafe(self.disclose(record), loop).result()

    def cancel(self, job: Job) -> None:
        """Stop a job of its owner (``DELETE /v1/jobs/{id}``); a finished job stays as it is."""
        if not job.done:
            self.pool.cancel_job(job.id)

    async def close(self) -> None:
        """Stop the pool; wait for every running job to record its failure in the ledger."""
        await self.pool.close()
        tasks = [j.task for j in self.jobs.running() if j.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=30)


class _Batched(Generic[_In, _Out]):
    """Runs ``run_many`` in a ledger thread, one batch at a time: what arrives while a batch runs goes in the next.

    At a few hundred charges a second, the requests that arrive during one batch share the next: one thread hand-off
    for all of them and, for :meth:`Ledger.finalise_many`, one transaction, one sync of the ledger and one journal
    append. ``run_many`` returns one result per item, in order: an exception in that list is raised to that item's
    caller alone; an exception of ``run_many`` itself goes to every caller of its batch.
    """

    def __init__(
        self,
        run_many: Callable[[list[_In]], Sequence[_Out | BaseException]],
        orphan: Callable[[_Out], None] | None = None,
    ) -> None:
        self.run_many = run_many
        self.orphan = orphan  # called (in the event loop) with a result whose caller was cancelled meanwhile
        self._queue: list[tuple[_In, asyncio.Future[_Out]]] = []
        self._running = False
        self._task: asyncio.Task[None] | None = None  # referenced, so the loop cannot drop it while it runs

    async def submit(self, item: _In) -> _Out:
        """Run ``item`` (with any others waiting) and return its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Out] = loop.create_future()
        self._queue.append((item, future))
        if not self._running:
            self._running = True
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    results: Sequence[Any] = await asyncio.to_thread(self.run_many, [item for item, _ in batch])
                except BaseException as exc:  # the batch itself failed: every item of it gets the error
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # its caller was cancelled while the batch ran
                        if self.orphan is not None and not isinstance(result, BaseException):
                            self.orphan(result)
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._running = False


def _kept(exc: BaseException, charge: Charge, cancelled: bool) -> SandboxError:
    """Return the error to report for a computation that did not finish: what happened, and that the charge is kept."""
    where = f"dataset {charge.dataset.name!r} v{charge.dataset.version}"
    kept = f"Its charge of epsilon={charge.epsilon:g} on {where} is kept (the computation may have read the rows)."
    if cancelled:
        return SandboxError(f"The computation was cancelled before it finished. {kept}")
    if not isinstance(exc, SandboxError):
        return InternalError(f"The computation failed inside the vault ({type(exc).__name__}). {kept}")
    if isinstance(exc, ComputeLimitError):
        return ComputeLimitError(
            f"{exc} {kept} Ask for a smaller computation (fewer features or trees, a coarser grouping), or ask the "
            "operator to raise the limit in the policy."
        )
    return type(exc)(f"{exc} {kept}")
