"""Endpoints for public metadata: the dataset list, each public schema, and schema-generated dummy rows."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from sandbox._private.vault.tokens import TokenInfo

from .auth import require, service_of
from .bodies import NAME_PATTERN

__all__ = ["router"]

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
_anyone = require("analyst", "reviewer", "admin")


@router.get("", summary="Registered datasets (latest version of each)")
def list_datasets(request: Request, _: Annotated[TokenInfo, Depends(_anyone)]) -> list[dict[str, Any]]:
    return service_of(request).datasets()


@router.get("/{name}/schema", summary="The public schema of a dataset (sandbox.schema/1)")
def get_schema(
    request: Request, name: Annotated[str, Path(pattern=NAME_PATTERN)], _: Annotated[TokenInfo, Depends(_anyone)]
) -> dict[str, Any]:
    return service_of(request).schema(name)


@router.get("/{name}/dummy", summary="Dummy rows generated from the public schema alone (never from the rows)")
def get_dummy(
    request: Request,
    name: Annotated[str, Path(pattern=NAME_PATTERN)],
    _: Annotated[TokenInfo, Depends(_anyone)],
    n: Annotated[
        int, Query(ge=1, le=10_000_000, description="Rows; capped by the policy's limits.max_dummy_rows")
    ] = 100,
    seed: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
) -> Response:
    text = service_of(request).dummy(name, n, seed)
    return Response(content=text, media_type="application/json")
