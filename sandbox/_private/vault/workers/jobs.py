"""Jobs: every computation the vault runs for an analyst, visible to that analyst only.

A job is made when a computation is admitted to the pool. A blocking call (``POST /v1/query``, ``POST /v1/fit``,
an audit) waits on its job and is answered when the job ends; ``POST /v1/fit?wait=false`` answers at once (202)
with the job, which the analyst follows with ``GET /v1/jobs/{id}`` (long-polling with ``?wait=SECONDS``) and may
stop with ``DELETE /v1/jobs/{id}``. Only the analyst who started a job sees it: another caller's job id is
answered exactly like an id that never existed (404), so job ids reveal nothing about other analysts' work.

What a job shows is what the blocking call would have returned (the stored answer, or the error type and message),
plus its state and times. Jobs live in the vault's memory: finished ones are kept for :data:`KEEP_SECONDS` (their
answers stay in the ledger for good, by result id); a vault restart forgets them.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sandbox._private.shared.errors import NotFoundError, SandboxError
from sandbox._private.shared.wire import error_body, status_of

__all__ = ["Job", "JobStore", "JOB_ID_PATTERN", "KEEP_SECONDS", "BRIEF_KEYS"]

#: Job ids the vault mints.
JOB_ID_PATTERN = r"^job_[0-9a-f]{24}$"
#: Seconds a finished job stays visible.
KEEP_SECONDS = 3600.0
_KEEP_PER_OWNER = 200
#: What a job keeps of an answer that went back to its waiting caller.
BRIEF_KEYS = ("id", "sha256", "dataset", "kind", "charged_epsilon")
JobState = Literal["queued", "running", "done", "failed", "cancelled"]


def _stamp(seconds: float | None) -> str | None:
    """Return a time (``time.time()``) as the jobs' views show it: ISO 8601 in UTC, to the millisecond."""
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


@dataclass
class Job:
    """One computation of one analyst (see the module docstring)."""

    id: str
    owner: str
    kind: str
    dataset: str
    detached: bool
    state: JobState = "queued"
    created: float = field(default_factory=time.time)  # time.time(); shown as ISO 8601 text by view()
    started: float | None = None
    finished: float | None = None
    result: dict[str, Any] | None = None  # see answer(): built when first asked for, if given as a function
    text: str | None = field(default=None, repr=False)  # the result as its response body (canonical JSON), if known
    _build: Callable[[], dict[str, Any]] | None = field(default=None, repr=False)
    _brief: dict[str, Any] | None = field(default=None, repr=False)
    error: SandboxError | None = None
    ended_at: float | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    _done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def start(self) -> None:
        if self.state == "queued":
            self.state, self.started = "running", time.time()

    def succeed(
        self,
        payload: dict[str, Any] | Callable[[], dict[str, Any]],
        text: str | None = None,
        brief: dict[str, Any] | None = None,
    ) -> None:
        """End the job with its answer.

        ``payload`` is the answer, or a function that builds it when first needed (a blocking caller that takes
        ``text`` never needs it); ``text`` the same answer as its canonical JSON, when already made; ``brief`` what
        :meth:`compact` keeps, when known without building the answer.
        """
        if callable(payload):
            self.result, self._build = None, payload
        else:
            self.result, self._build = payload, None
        self.state, self.text, self._brief = "done", text, brief
        self._end()

    def answer(self) -> dict[str, Any] | None:
        """Return the answer (``None`` unless the job succeeded), building it on first use."""
        if self.result is None and self._build is not None:
            self.result, self._build = self._build(), None
        return self.result

    def fail(self, exc: SandboxError, *, cancelled: bool = False) -> None:
        self.state, self.error = ("cancelled" if cancelled else "failed"), exc
        self._end()

    def _end(self) -> None:
        self.finished, self.ended_at = time.time(), time.monotonic()
        self._done.set()

    def compact(self) -> None:
        """Keep only the result's id and sha256 (its answer went back to a waiting client; the ledger has it)."""
        if self.detached or (self.result is None and self._build is None):
            return
        if self._brief is not None:
            self.result = self._brief
        else:
            full = self.answer() or {}
            self.result = {k: full.get(k) for k in BRIEF_KEYS}
        self._build, self._brief, self.text = None, None, None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until the job ends (at most ``timeout`` seconds); ``True`` if it has."""
        if timeout is None:
            await self._done.wait()
            return True
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def view(self) -> dict[str, Any]:
        """Return what the owner sees: state, times, and the answer or the error."""
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "dataset": self.dataset,
            "state": self.state,
            "detached": self.detached,
            "created": _stamp(self.created),
            "started": _stamp(self.started),
            "finished": _stamp(self.finished),
            "result": self.answer(),
            "error": None,
        }
        if self.error is not None:
            out["error"] = {**error_body(type(self.error).__name__, str(self.error)), "status": status_of(self.error)}
        return out


class JobStore:
    """The jobs of one vault process, by id."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._pruned = 0.0

    def new(self, owner: str, kind: str, dataset: str, *, detached: bool) -> Job:
        if time.monotonic() - self._pruned > 1.0:  # at most once a second: the store may hold thousands of jobs
            self._prune()
            self._pruned = time.monotonic()
        job = Job("job_" + secrets.token_hex(12), owner, kind, dataset, detached)
        self._jobs[job.id] = job
        return job

    def get(self, job_id: str, owner: str) -> Job:
        """Return the job ``job_id`` of ``owner``; any other case is the same 404 (never 403: ids reveal nothing)."""
        job = self._jobs.get(job_id)
        if job is None or job.owner != owner:
            raise NotFoundError(
                f"You have no job {job_id!r}; `GET /v1/jobs` lists yours (finished jobs are kept for "
                f"{KEEP_SECONDS / 3600:g} h and forgotten when the vault restarts; their answers stay in the ledger)."
            )
        return job

    def mine(self, owner: str) -> list[Job]:
        return [j for j in self._jobs.values() if j.owner == owner]

    def running(self) -> list[Job]:
        return [j for j in self._jobs.values() if not j.done]

    def _prune(self) -> None:
        now = time.monotonic()
        for job_id in [k for k, j in self._jobs.items() if j.ended_at is not None and now - j.ended_at > KEEP_SECONDS]:
            del self._jobs[job_id]
        by_owner: dict[str, list[Job]] = {}
        for j in self._jobs.values():
            if j.done:
                by_owner.setdefault(j.owner, []).append(j)
        for done in by_owner.values():
            for j in sorted(done, key=lambda j: j.ended_at or 0.0)[: max(0, len(done) - _KEEP_PER_OWNER)]:
                del self._jobs[j.id]
