"""Endpoint of the in-vault fairness audit: ``POST /v1/models/{model_id}/audit`` (analyst role).

The body names the protected attributes (``null``: the policy's that the table has) and epsilon (``null``: the
policy's ``fairness.audit_epsilon``). The served vault runs the audit in a fit worker (reserve, compute with
:func:`~sandbox._private.vault.dp.fairness_audit.compute_audit`, finalise); an in-process app calls
:func:`~sandbox._private.vault.dp.fairness_audit.audit_model`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from sandbox._private.vault.dp.fairness_audit import audit_model
from sandbox._private.vault.tokens import TokenInfo

from .auth import compute_of, disconnected, require, run_id_header, service_of
from .bodies import NAME_PATTERN, RESULT_ID_PATTERN, _Body

__all__ = ["router", "AuditRequest"]

router = APIRouter(prefix="/v1", tags=["fairness"])
_analyst = require("analyst", "admin")


class AuditRequest(_Body):
    """Which protected attributes to audit and with what epsilon (``null`` for the policy's defaults)."""

    protected: list[Annotated[str, Field(pattern=NAME_PATTERN)]] | None = Field(None, max_length=32)
    epsilon: float | None = Field(None, gt=0, allow_inf_nan=False)


@router.post(
    "/models/{model_id}/audit",
    summary="Fairness audit of a fitted model on the protected rows; DP counts, charged in the ledger",
)
async def post_audit(
    body: AuditRequest,
    request: Request,
    caller: Annotated[TokenInfo, Depends(_analyst)],
    run_id: Annotated[str | None, Depends(run_id_header)],
    model_id: Annotated[str, Path(pattern=RESULT_ID_PATTERN)],
) -> dict[str, Any]:
    compute = compute_of(request)
    if compute is None:
        return await run_in_threadpool(
            audit_model, service_of(request), model_id, body.protected, body.epsilon, caller, run_id
        )
    return await compute.audit(model_id, body.protected, body.epsilon, caller, run_id, disconnected(request))
