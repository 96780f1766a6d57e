"""Endpoints that compute with protected rows: DP aggregates and DP models, and their cost without spending.

In the served vault each computation runs in a worker process (:mod:`sandbox._private.vault.workers`): the route
admits it, the ledger reserves its charge, a worker computes, the ledger finalises. A client that disconnects
cancels its computation (the charge is kept). ``POST /v1/fit?wait=false`` answers at once with the job (202),
followed with ``GET /v1/jobs/{id}``. Without a pool (an app built in-process for tests) the same service methods
run in a thread, as they always did.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from sandbox._private.shared.canonical import canonical_json
from sandbox._private.vault.tokens import TokenInfo

from .auth import compute_of, disconnected, require, run_id_header, service_of
from .bodies import AggregateRequest, FitRequest

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["differential privacy"])
_analyst = require("analyst", "admin")


@router.post(
    "/query", summary="Answer a DP aggregate; charged in the ledger before the answer returns", response_model=None
)
async def post_query(
    body: AggregateRequest,
    request: Request,
    caller: Annotated[TokenInfo, Depends(_analyst)],
    run_id: Annotated[str | None, Depends(run_id_header)],
) -> dict[str, Any] | Response:
    compute = compute_of(request)
    if compute is None:
        return await run_in_threadpool(service_of(request).query, body.to_query_dict(), caller, run_id)
    text = await compute.query_json(body.to_query_dict(), caller, run_id, disconnected(request))
    return Response(text, media_type="application/json")


def _json(payload: dict[str, Any], status: int = 200) -> Response:
    """Send the answer as JSON text at once: it is plain JSON already (no per-field encoding by the framework)."""
    return Response(canonical_json(payload), status_code=status, media_type="application/json")


@router.post("/cost", summary="What a DP aggregate would cost (ε, δ), without spending")
def post_cost(body: AggregateRequest, request: Request, _: Annotated[TokenInfo, Depends(_analyst)]) -> dict[str, Any]:
    return service_of(request).cost(body.to_query_dict())


@router.post(
    "/fit",
    summary="Fit a DP model in the vault; returns its parameters as JSON (or, with wait=false, the job at once)",
    responses={202: {"description": "wait=false: the job, to follow with GET /v1/jobs/{id}"}},
    response_model=None,
)
async def post_fit(
    body: FitRequest,
    request: Request,
    caller: Annotated[TokenInfo, Depends(_analyst)],
    run_id: Annotated[str | None, Depends(run_id_header)],
    wait: Annotated[bool, Query(description="false: answer at once with the job (202)")] = True,
) -> dict[str, Any] | Response:
    compute = compute_of(request)
    if compute is None:
        return await run_in_threadpool(service_of(request).fit, body.to_fit_dict(), caller, run_id)
    out = await compute.fit(body.to_fit_dict(), caller, run_id, disconnected(request), wait=wait)
    return _json(out, 200 if wait else 202)


@router.post("/fit/cost", summary="What fitting a model would cost (ε, δ), without spending")
def post_fit_cost(body: FitRequest, request: Request, _: Annotated[TokenInfo, Depends(_analyst)]) -> dict[str, Any]:
    return service_of(request).fit_cost(body.to_fit_dict())
