"""Endpoints that compute with protected rows: DP aggregates and DP models, and their cost without spending."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from sandbox._private.vault.tokens import TokenInfo

from .auth import require, run_id_header, service_of
from .bodies import AggregateRequest, FitRequest

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["differential privacy"])
_analyst = require("analyst", "admin")


@router.post("/query", summary="Answer a DP aggregate; charged in the ledger before the answer returns")
def post_query(
    body: AggregateRequest,
    request: Request,
    caller: Annotated[TokenInfo, Depends(_analyst)],
    run_id: Annotated[str | None, Depends(run_id_header)],
) -> dict[str, Any]:
    return service_of(request).query(body.to_query_dict(), caller, run_id)


@router.post("/cost", summary="What a DP aggregate would cost (ε, δ), without spending")
def post_cost(body: AggregateRequest, request: Request, _: Annotated[TokenInfo, Depends(_analyst)]) -> dict[str, Any]:
    return service_of(request).cost(body.to_query_dict())


@router.post("/fit", summary="Fit a DP model in the vault; returns its parameters as JSON")
def post_fit(
    body: FitRequest,
    request: Request,
    caller: Annotated[TokenInfo, Depends(_analyst)],
    run_id: Annotated[str | None, Depends(run_id_header)],
) -> dict[str, Any]:
    return service_of(request).fit(body.to_fit_dict(), caller, run_id)


@router.post("/fit/cost", summary="What fitting a model would cost (ε, δ), without spending")
def post_fit_cost(body: FitRequest, request: Request, _: Annotated[TokenInfo, Depends(_analyst)]) -> dict[str, Any]:
    return service_of(request).fit_cost(body.to_fit_dict())
