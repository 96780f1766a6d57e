"""Role checks for the vault's routers: a FastAPI dependency per set of roles, and the request helpers they share.

The bearer scheme is declared for the OpenAPI schema; the header itself is checked by
:meth:`TokenStore.authenticate` (malformed or unknown token: 401; valid token with the wrong role: 403), or, for a
reviewer's browser session (``sbs_...``, minted by :mod:`.routes_login`), by the vault's session store.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sandbox._private.shared.errors import QueryError
from sandbox._private.shared.wire import Forbidden
from sandbox._private.vault.service import VaultService
from sandbox._private.vault.tokens import Role, TokenInfo

from .bodies import RUN_ID_PATTERN

if TYPE_CHECKING:
    from sandbox._private.vault.workers.flow import ComputeService

__all__ = ["require", "service_of", "compute_of", "authenticate", "disconnected", "run_id_header"]

_bearer = HTTPBearer(auto_error=False, description="A token from `sandbox vault token create`.")
_RUN_ID = re.compile(RUN_ID_PATTERN)


def service_of(request: Request) -> VaultService:
    service: VaultService = request.app.state.service
    return service


def compute_of(request: Request) -> ComputeService | None:
    """Return the worker-pool door of a served vault (``None`` in an app built in-process without a pool)."""
    return getattr(request.app.state, "compute", None)


def authenticate(request: Request) -> TokenInfo:
    """Return the caller of ``request``: a token of the vault's store, or a reviewer's browser session."""
    header = request.headers.get("authorization")
    sessions = getattr(request.app.state, "sessions", None)
    if sessions is not None and header is not None:
        info = sessions.authenticate(header)
        if info is not None:
            return info
    return service_of(request).tokens.authenticate(header)


def require(*roles: Role) -> Callable[..., Coroutine[Any, Any, TokenInfo]]:
    """Build a dependency that authenticates the caller and checks that its role is one of ``roles``."""

    async def dependency(
        request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> TokenInfo:
        info = authenticate(request)  # in the event loop: a cached, in-memory lookup (no thread hop per request)
        if info.role not in roles:
            raise Forbidden(
                f"Token {info.name!r} has role {info.role!r}; this endpoint needs {' or '.join(roles)}. "
                "Use a token with that role."
            )
        return info

    return dependency


def disconnected(request: Request) -> Callable[[], Coroutine[Any, Any, None]]:
    """Return a coroutine function that returns when the client of ``request`` has gone away (its body already read)."""

    async def wait() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    return wait


async def run_id_header(
    x_sandbox_run: str | None = Header(None, description="Run id recorded with each charge", max_length=128),
) -> str | None:
    """Return the ``X-Sandbox-Run`` header, checked against :data:`RUN_ID_PATTERN`."""
    if x_sandbox_run is not None and not _RUN_ID.match(x_sandbox_run):
        raise QueryError(
            f"X-Sandbox-Run {x_sandbox_run[:40]!r} is not a valid run id: use 1-128 letters, digits or '_.:-'."
        )
    return x_sandbox_run
