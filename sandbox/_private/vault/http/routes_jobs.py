"""Endpoints of jobs: the caller's own computations (``GET /v1/jobs``, ``GET`` and ``DELETE /v1/jobs/{id}``).

A job is visible to the analyst who started it only; any other caller gets the 404 of an id that never existed.
``GET /v1/jobs/{id}?wait=SECONDS`` waits up to that long (at most 60) for the job to end before answering.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from sandbox._private.shared.errors import NotFoundError
from sandbox._private.vault.tokens import TokenInfo
from sandbox._private.vault.workers.flow import ComputeService
from sandbox._private.vault.workers.jobs import JOB_ID_PATTERN, Job

from .auth import compute_of, require

__all__ = ["router"]

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
_analyst = require("analyst", "admin")
JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN)]


def _compute(request: Request) -> ComputeService:
    compute = compute_of(request)
    if compute is None:
        raise NotFoundError("This vault computes in-process and keeps no jobs; serve it with `sandbox vault serve`.")
    return compute


def _job(request: Request, job_id: str, caller: TokenInfo) -> tuple[ComputeService, Job]:
    compute = _compute(request)
    return compute, compute.jobs.get(job_id, caller.name)


@router.get("", summary="Your jobs (running ones and those finished in the last hour)")
def list_jobs(request: Request, caller: Annotated[TokenInfo, Depends(_analyst)]) -> list[dict[str, Any]]:
    return [j.view() for j in _compute(request).jobs.mine(caller.name)]


@router.get("/{job_id}", summary="One of your jobs: its state, and its answer or error once it has ended")
async def get_job(
    request: Request,
    job_id: JobId,
    caller: Annotated[TokenInfo, Depends(_analyst)],
    wait: Annotated[float, Query(ge=0, le=60, description="Seconds to wait for the job to end")] = 0.0,
) -> dict[str, Any]:
    _, job = _job(request, job_id, caller)
    if wait:
        await job.wait(wait)
    return job.view()


@router.delete("/{job_id}", summary="Cancel one of your jobs (its charge is kept); a finished job stays as it is")
async def cancel_job(
    request: Request, job_id: JobId, caller: Annotated[TokenInfo, Depends(_analyst)]
) -> dict[str, Any]:
    compute, job = _job(request, job_id, caller)
    compute.cancel(job)
    await job.wait(30)
    return job.view()
