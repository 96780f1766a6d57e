"""The vault's FastAPI application: one router per concern, JSON errors, a body-size limit.

The release gate's routes (:mod:`.routes_gate`), the reviewer page with its reports (:mod:`.routes_review`) and
the reviewer login (:mod:`.routes_login`) are mounted beside the vault's own; every router reaches the service
through ``request.app.state.service`` and, in a served vault, the worker pool's door through
``request.app.state.compute``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request

from sandbox._private.vault.service import VaultService

from .auth import authenticate
from .errors import BodyLimitMiddleware, install_error_handlers
from .routes_audit import router as audit_router
from .routes_datasets import router as datasets_router
from .routes_dp import router as dp_router
from .routes_gate import router as gate_router
from .routes_jobs import router as jobs_router
from .routes_ledger import router as ledger_router
from .routes_login import router as login_router
from .routes_review import router as review_router
from .sessions import ReviewSessions

if TYPE_CHECKING:
    from sandbox._private.vault.workers.flow import ComputeService

__all__ = ["create_app"]


def create_app(
    service: VaultService, extra_routers: Iterable[APIRouter] = (), *, compute: ComputeService | None = None
) -> FastAPI:
    """Build the HTTP application around ``service``.

    Parameters
    ----------
    service : VaultService
        What the endpoints call.
    extra_routers : iterable of APIRouter
        Further routers (tests mount probes this way); the gate's routes are always mounted.
    compute : ComputeService, optional
        The worker pool's door (:mod:`sandbox._private.vault.workers`); without it queries, fits and audits are
        computed in a thread of this process (for apps built in-process by tests).

    Returns
    -------
    FastAPI
        The application; serve it with :func:`sandbox._private.vault.server.serve`.
    """
    app = FastAPI(
        title="Analysis sandbox vault",
        version="1",
        description="Holds protected rows, the privacy ledger and the DP engine. Nothing here returns rows.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    app.state.compute = compute
    app.state.sessions = ReviewSessions()
    app.state.page_url = None  # the loopback URL of the review page, set by serve() when it listens on TCP
    install_error_handlers(app)

    @app.get("/v1/health", tags=["health"], summary="'up' for anyone; with a token also the policy, pid and workers")
    async def health(request: Request) -> dict[str, Any]:
        if not request.headers.get("authorization"):
            return {"status": "up"}
        caller = authenticate(request)  # a token that is sent must be valid (401 otherwise)
        out = {**service.health(), "pid": os.getpid()}
        if compute is not None:
            out["workers"] = compute.pool.stats()
            if caller.role == "admin":
                out["worker_pids"] = compute.pool.worker_pids()
        return out

    routers = (
        datasets_router,
        dp_router,
        jobs_router,
        ledger_router,
        audit_router,
        gate_router,
        review_router,
        login_router,
    )
    for router in (*routers, *extra_routers):
        app.include_router(router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=service.policy.limits.max_request_bytes)
    return app
