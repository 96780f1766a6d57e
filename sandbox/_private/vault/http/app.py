"""The vault's FastAPI application: one router per concern, JSON errors, a body-size limit.

The release gate's routes (:mod:`.routes_gate`) and the reviewer page with its reports (:mod:`.routes_review`) are
mounted beside the vault's own; every router reaches the service through ``request.app.state.service``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, FastAPI, Request

from sandbox._private.vault.service import VaultService

from .errors import BodyLimitMiddleware, install_error_handlers
from .routes_audit import router as audit_router
from .routes_datasets import router as datasets_router
from .routes_dp import router as dp_router
from .routes_gate import router as gate_router
from .routes_ledger import router as ledger_router
from .routes_review import router as review_router

__all__ = ["create_app"]


def create_app(service: VaultService, extra_routers: Iterable[APIRouter] = ()) -> FastAPI:
    """Build the HTTP application around ``service``.

    Parameters
    ----------
    service : VaultService
        What the endpoints call.
    extra_routers : iterable of APIRouter
        Further routers (tests mount probes this way); the gate's routes are always mounted.

    Returns
    -------
    FastAPI
        The application; serve it on 127.0.0.1 only (see :func:`sandbox._private.vault.server.serve`).
    """
    app = FastAPI(
        title="Analysis sandbox vault",
        version="1",
        description="Holds protected rows, the privacy ledger and the DP engine. Nothing here returns rows.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    install_error_handlers(app)

    @app.get("/v1/health", tags=["health"], summary="Liveness, policy name and sha256")
    def health(request: Request) -> dict[str, Any]:
        return {**request.app.state.service.health(), "pid": os.getpid()}

    routers = (datasets_router, dp_router, ledger_router, audit_router, gate_router, review_router)
    for router in (*routers, *extra_routers):
        app.include_router(router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=service.policy.limits.max_request_bytes)
    return app
