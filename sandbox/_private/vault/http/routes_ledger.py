"""Endpoints that read the ledger: a dataset's budget and a stored result by id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from sandbox._private.vault.tokens import TokenInfo

from .auth import require, service_of
from .bodies import NAME_PATTERN, RESULT_ID_PATTERN

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["ledger"])
_anyone = require("analyst", "reviewer", "admin")


@router.get("/budget/{name}", summary="Budget of a dataset's latest version (and the caller's own spending)")
def get_budget(
    request: Request, name: Annotated[str, Path(pattern=NAME_PATTERN)], caller: Annotated[TokenInfo, Depends(_anyone)]
) -> dict[str, Any]:
    return service_of(request).budget(name, caller)


@router.get("/results/{result_id}", summary="A stored DP result by id (its public part, with its sha256)")
def get_result(
    request: Request,
    result_id: Annotated[str, Path(pattern=RESULT_ID_PATTERN)],
    _: Annotated[TokenInfo, Depends(_anyone)],
) -> dict[str, Any]:
    return service_of(request).result(result_id)
